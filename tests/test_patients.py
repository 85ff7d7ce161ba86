"""Each disease patient shows its own disease, on more seeds than its own, and
--treat cures it; --seeds counts what separate runs give."""

import json

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


def dosed(name, k=0):
    return dict(
        main.PATIENTS[name], patient=name, data_seed=7 + k, network_seed=11 + k, sample_count=80
    )


def reports_of(patient):
    widths = patient["layer_widths"]
    samples = main.make_training_data(80, widths[0], widths[-1], patient["data_seed"])
    monitor = main.ExamMonitor(widths, patient["activation"])
    return [report for _, report in main.dosed_run(patient, samples, monitor)]


def kinds(report):
    return {main.warning_kind(warning) for warning in main.all_warnings(report)}


@pytest.fixture(scope="module")
def default_runs():
    return {name: reports_of(dosed(name)) for name in main.PATIENTS}


@pytest.mark.parametrize("name", OWN_WARNING)
def test_each_disease_patient_trips_its_own_warning_on_other_seeds_too(name, default_runs):
    for k in (0, *OTHER_SEED_PAIRS):
        reports = default_runs[name] if k == 0 else reports_of(dosed(name, k))
        assert any(OWN_WARNING[name] in kinds(report) for report in reports), f"seed pair {k}"


@pytest.mark.parametrize("name", OWN_WARNING)
def test_the_first_sign_of_each_disease_patient_is_its_own_disease(name, default_runs):
    first = next(report for report in default_runs[name] if main.all_warnings(report))
    assert OWN_WARNING[name] in kinds(first)


def test_only_the_lessons_sick_patient_ends_frozen(default_runs):
    # Frozen: every hidden layer's gradient std exactly 0 at the last epoch.
    frozen = [
        name for name, reports in default_runs.items() if not any(reports[-1]["gradient_std"])
    ]
    assert frozen == ["sick"]


def test_the_healthy_patient_trips_no_warning_at_any_epoch(default_runs):
    assert not any(map(main.all_warnings, default_runs["healthy"]))


def test_the_patients_last_charts_differ():
    # The trend lines of no two disease patients are alike: their sets of
    # warning kinds over the run differ.
    seen = {}
    for name in OWN_WARNING:
        found = frozenset(kind for report in reports_of(dosed(name)) for kind in kinds(report))
        assert found not in seen.values(), f"{name} warns like {seen}"
        seen[name] = found


@pytest.mark.parametrize("name", [*OWN_WARNING, "sick"])
def test_treat_cures_each_disease_patient_on_its_default_seeds(name, capsys):
    patient = dosed(name)
    samples = main.make_training_data(80, 8, 4, patient["data_seed"])
    rounds = main.treat(patient, samples, report_every=10)
    assert main.is_well(rounds[-1][2])
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line.startswith("outcome: cured after ")


@pytest.mark.parametrize("name", OWN_WARNING)
def test_treat_cures_each_disease_patient_on_other_seed_pairs(name):
    for k in OTHER_SEED_PAIRS:
        patient = dosed(name, k)
        samples = main.make_training_data(80, 8, 4, patient["data_seed"])
        rounds = main.treat(patient, samples, report_every=None, quiet=True)
        assert main.is_well(rounds[-1][2]), f"seed pair {k}: {rounds[-1][1]}"


def test_seeds_counts_what_separate_runs_give():
    patient = dosed("dead")
    lines = main.seed_summary(patient, 3)
    first_epochs, losses, silent = [], [], 0
    for k in range(3):
        reports = reports_of(dosed("dead", k))
        warned = [report["epoch"] for report in reports if "dead neurons" in kinds(report)]
        first_epochs += warned[:1]
        losses.append(reports[-1]["loss"])
        silent += not any(map(main.all_warnings, reports))
    row = next(line for line in lines if line.startswith("dead neurons"))
    assert row.split("|")[1].strip() == f"{len(first_epochs)}/3"
    assert float(row.split("|")[2]) == sorted(first_epochs)[len(first_epochs) // 2]
    assert f"median final loss: {main.format_loss(sorted(losses)[1])}" in lines
    assert lines[-1] == f"no warning: {silent} of 3 seed pairs"


def test_treat_writes_every_round_to_json(tmp_path, capsys):
    path = tmp_path / "treat.jsonl"
    argv = ["--patient", "collapsed", "--treat", "--epochs", "10", "--json", str(path)]
    assert main.command_line(argv) == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    rounds = sorted({record["round"] for record in records})
    assert rounds[0] == 0 and rounds == list(range(len(rounds)))
    for record in records:
        epochs = [r["epoch"] for r in records if r["round"] == record["round"]]
        assert epochs == list(range(1, 11))
        assert bool(record["treatments"]) == (record["round"] > 0)
    assert records[0]["treatments"] == []
    out = capsys.readouterr().out
    assert sum(line.startswith("outcome: ") for line in out.splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--seeds", "2", "--treat"],
        ["--seeds", "2", "--json", "x.jsonl"],
        ["--seeds", "2", "--report-every", "5"],
        ["--treat", "--timing"],
        ["--list-patients", "--patient", "sick"],
    ],
)
def test_modes_refuse_flags_they_cannot_take(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main.command_line(argv)
    assert stop.value.code == 2
    assert "not allowed with --" in capsys.readouterr().err


def test_treatment_flags_reach_the_label_and_the_run(capsys):
    argv = ["--activation", "tanh", "--norm", "layer", "--clip", "1", "--epochs", "2"]
    assert main.command_line(argv) == 0
    assert "=== CUSTOM (kaiming init, tanh, layer norm, clip=1, lr=0.05, widths " in (
        capsys.readouterr().out
    )


def test_treat_needs_epochs_enough_to_judge_a_cure(capsys):
    with pytest.raises(SystemExit) as stop:
        main.command_line(["--treat", "--epochs", "3"])
    assert stop.value.code == 2
    assert "argument --epochs: 3 is too few to judge a cure" in capsys.readouterr().err


def test_layer_norm_needs_two_neurons_in_every_hidden_layer(capsys):
    with pytest.raises(SystemExit) as stop:
        main.command_line(["--widths", "8,1,4", "--norm", "layer"])
    assert stop.value.code == 2
    assert "argument --norm: layer norm needs 2 or more neurons" in capsys.readouterr().err
