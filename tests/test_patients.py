"""Each disease patient shows its own disease, on more seeds than its own, and
`treat` cures it; `seeds` counts what separate runs give.

The patients are treated on every core, in the background from this module's
first test on: the tests that need no treatment come first and run meanwhile.
(The slow tests treat on other seed pairs: `python -m pytest -m slow`.)
"""

import json
import math
import multiprocessing

import pytest

import main

OWN_WARNING = {  # patient: the kind of warning that is its disease
    "exploding": "exploding gradients",
    "vanishing": "vanishing gradients",
    "dead": "dead neurons",
    "saturated": "saturation",
    "collapsed": "signal collapse",
}
OTHER_SEED_PAIRS = (1, 2, 3, 4)  # pair k: data seed 7 + k, network seed 11 + k
# The slowest treatments first (~1.1 s down to ~0.35 s), so that the cores end together.
SLOWEST_FIRST = ["saturated", "vanishing", "exploding", "sick", "dead", "collapsed", "healthy"]


def dosed(name, k=0):
    return main.patient(name, data_seed=7 + k, network_seed=11 + k, sample_count=80)


def run(job):
    """One job, ("treat" or "examine", patient, seed pair k): a top-level
    function, so that it can be sent to a worker process."""
    what, name, k = job
    dosing = dosed(name, k)
    samples = main.samples_for(dosing)
    return main.treat(dosing, samples) if what == "treat" else main.examine(dosing, samples)


def kinds(report):
    return {warning.kind for warning in report["warnings"]}


# Every patient treated on its default seeds (7 and 11): round 0 is the
# untreated examination, so each patient trains untreated only once. And the
# dead patient examined on its own on seed pairs 1 and 2.
JOBS = [("treat", name, 0) for name in SLOWEST_FIRST]
JOBS += [("treat", name, 0) for name in main.PATIENTS if name not in SLOWEST_FIRST]
JOBS += [("examine", "dead", k) for k in (1, 2)]


@pytest.fixture(scope="module", autouse=True)
def started(request):
    """JOBS started on every core at this module's first test, if a test selected
    here needs them; a function that waits for them: {job: its result}."""
    here = [item for item in request.session.items if item.module is request.module]
    if not any("finished" in item.fixturenames for item in here):
        yield None
        return
    with multiprocessing.Pool() as pool:
        results = pool.map_async(run, JOBS, chunksize=1)
        yield lambda: dict(zip(JOBS, results.get(timeout=300)))


@pytest.fixture(scope="module")
def finished(started):
    return started()


@pytest.fixture(scope="module")
def treatments(finished):
    return {name: result for (what, name, _), result in finished.items() if what == "treat"}


@pytest.fixture(scope="module")
def default_runs(treatments):
    return {name: rounds[0].reports for name, rounds in treatments.items()}


@pytest.fixture(scope="module")
def treated_on():
    """Each disease patient treated on each other seed pair, on every core, for both
    slow tests: {(name, k): rounds}."""
    jobs = [("treat", name, k) for name in OWN_WARNING for k in OTHER_SEED_PAIRS]
    return {job[1:]: rounds for job, rounds in zip(jobs, list(main.on_every_core(run, jobs)))}


def test_the_seed_summary_counts_runs_and_takes_medians():
    results = [  # (first epoch of each kind, final loss, the last hidden layer ended dead)
        ({"dead neurons": 8}, 0.3, False),
        ({"dead neurons": 20, "saturation": 5}, 0.9, True),
        ({}, 0.5, False),  # it never warned
        ({"dead neurons": 12}, math.nan, False),  # NaN has no place in an order
    ]
    assert main.seed_summary(dosed("dead"), results) == [
        "=== DEAD (lr=0.09) | 4 seed pairs: data seeds 7..10, network seeds 11..14 ===",
        "warning kind        |  runs | median first epoch",
        "dead neurons        |   3/4 | 12",
        "saturation          |   1/4 | 5",
        "median final loss: 0.5000 (1 run ended with a NaN loss)",
        "the last hidden layer dead at the end: 1 of 4",
        "no warning: 1 of 4 seed pairs",
    ]


def test_a_round_that_sets_the_patient_back_is_withdrawn(monkeypatch, capsys):
    # No real patient is set back, so round 1 is declared so: round 2 must
    # start again from the untreated round, with another treatment.
    verdicts = iter([True, False, False])
    monkeypatch.setattr(main, "set_back", lambda treated, before: next(verdicts))
    patient = main.patient("collapsed", epochs=10, sample_count=20)
    rounds = main.treat(patient, main.samples_for(patient))
    assert [round_.withdrawn for round_ in rounds[:3]] == [False, True, False]
    second = rounds[2]
    assert second.treatments == [given.name for given in second.prescription]
    assert second.dosing != rounds[1].dosing
    assert main.kept_round(rounds) is rounds[-1]
    main.print_treatment(rounds, 10)
    assert "round 1 left the patient worse: its treatments are withdrawn" in capsys.readouterr().out


def test_treat_writes_every_round_to_json(tmp_path, capsys):
    path = tmp_path / "treat.jsonl"
    main.command_line(
        ["treat", "collapsed", "--epochs", "10", "--samples", "20", "--json", str(path)]
    )
    records = [json.loads(line) for line in path.read_text().splitlines()]
    rounds = sorted({record["round"] for record in records})
    assert len(rounds) > 1 and rounds == list(range(len(rounds)))
    for record in records:
        epochs = [r["epoch"] for r in records if r["round"] == record["round"]]
        assert epochs == list(range(1, record["epochs"] + 1))  # a round may train longer
        assert bool(record["treatments"]) == (record["round"] > 0)
    out = capsys.readouterr().out
    assert sum(line.startswith("outcome: ") for line in out.splitlines()) == 1


def test_treatment_flags_reach_the_label_and_the_run(tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    argv = ["examine", "--activation", "tanh", "--norm", "layer", "--clip", "1", "--epochs", "2"]
    main.command_line([*argv, "--json", str(path)])
    assert "=== CUSTOM (kaiming init, tanh, layer norm, clip=1, lr=0.05, widths " in (
        capsys.readouterr().out
    )
    record = json.loads(path.read_text().splitlines()[0])
    assert (record["activation"], record["norm"], record["clip"]) == ("tanh", "layer", 1.0)


@pytest.mark.parametrize("name", OWN_WARNING)
def test_the_first_sign_of_each_disease_patient_is_its_own_disease(name, default_runs):
    first = next(report for report in default_runs[name] if report["warnings"])
    assert OWN_WARNING[name] in kinds(first)


@pytest.mark.slow
@pytest.mark.parametrize("name", OWN_WARNING)
def test_each_disease_patient_trips_its_own_warning_on_other_seeds_too(name, treated_on):
    for k in OTHER_SEED_PAIRS:
        reports = treated_on[name, k][0].reports  # round 0: untreated
        assert any(OWN_WARNING[name] in kinds(report) for report in reports), f"seed pair {k}"


def test_only_the_lessons_sick_patient_ends_frozen(default_runs):
    # Frozen: every hidden layer's gradient std exactly 0 at the last epoch.
    frozen = [
        name for name, reports in default_runs.items() if not any(reports[-1]["gradient_std"])
    ]
    assert frozen == ["sick"]


def test_the_dead_patients_words_are_its_maps_most_dead_neurons_fire_again_a_few_never(
    default_runs,
):
    # "knocks neurons off, epoch after epoch; most fire again later, a few never do": in
    # each layer that has dead neurons, a neuron dead in some epoch and in every one after
    # it stays dead; the others fire again. (Layers 2-4: 4 of 13, 3 of 16, 2 of 14 stay.)
    reports = default_runs["dead"]
    for layer in range(len(reports[0]["firing_share"])):
        dead = [[share == 0.0 for share in r["firing_share"][layer]] for r in reports]
        ever = [n for n in range(len(dead[0])) if any(epoch[n] for epoch in dead)]
        first = {n: next(e for e, epoch in enumerate(dead) if epoch[n]) for n in ever}
        stay = [n for n in ever if all(epoch[n] for epoch in dead[first[n] :])]
        assert not ever or 0 < len(stay) < len(ever) - len(stay), (layer, len(stay), len(ever))
    assert any(report["dead_count"][1] for report in reports)  # layer 2 has dead neurons


def test_the_healthy_patient_trips_no_warning_at_any_epoch(default_runs):
    # Every warning the examination counts, the seventh reading's included.
    assert all(report["warnings"] == [] for report in default_runs["healthy"])


def test_the_disease_patients_charts_differ(default_runs):
    # No two disease patients warn alike: their sets of warning kinds over
    # the run differ.
    seen = {}
    for name in OWN_WARNING:
        found = frozenset(kind for report in default_runs[name] for kind in kinds(report))
        assert found not in seen.values(), f"{name} warns like {seen}"
        seen[name] = found


@pytest.mark.parametrize("name", [*OWN_WARNING, "sick"])
def test_treat_cures_each_disease_patient_on_its_default_seeds(name, treatments):
    rounds = treatments[name]
    kept = main.kept_round(rounds)
    assert kept is not rounds[0]  # it took a treatment
    assert main.is_well(kept.reports)
    assert main.outcome(rounds, kept).startswith("outcome: cured after ")


def test_the_healthy_patient_needs_no_treatment(treatments):
    (only,) = treatments["healthy"]
    assert main.outcome([only], only).startswith("outcome: healthy: nothing to treat")


@pytest.mark.slow
@pytest.mark.parametrize("name", OWN_WARNING)
def test_treat_cures_each_disease_patient_on_other_seed_pairs(name, treated_on):
    for k in OTHER_SEED_PAIRS:
        kept = main.kept_round(treated_on[name, k])
        assert main.is_well(kept.reports), f"seed pair {k}: {kept.treatments}"


def test_seeds_counts_what_separate_runs_give(default_runs, finished):
    # The seed pairs shared out on every core give what each pair examined
    # on its own gives (pair 0 is the default run): the first epoch of each
    # kind of warning, and the final loss.
    patient = dosed("dead")
    results = list(main.on_every_core(main.first_signs, main.seed_pairs(patient, 3)))
    separate = []
    for k in range(3):
        reports = default_runs["dead"] if k == 0 else finished["examine", "dead", k]
        first = {}
        for report in reports:
            for kind in kinds(report):
                first.setdefault(kind, report["epoch"])
        last = reports[-1]
        separate.append((first, last["loss"], last["dead_count"][-1] == 16))
    assert results == separate
    assert all("dead neurons" in first for first, *_ in results)
