"""The founding experiments: their stds beside theory, their findings, their JSON.

The he experiment (~3 s) is measured in a process of its own from this
module's first test on, on the other core: the tests that need it come last.
"""

import contextlib
import inspect
import io
import json
import math
import multiprocessing

import pytest

import main

SEED_PAIRS = (0, 1, 2)  # pair k: data seed 7 + k, network seed 11 + k


def measured_at_init(name, init_mode, k):
    experiment = main.EXPERIMENTS[name]
    widths = experiment.layer_widths
    samples = main.make_training_data(experiment.sample_count, widths[0], widths[-1], 7 + k)
    return main.measure_at_init(experiment, init_mode, samples, 11 + k)


def misses(values, predictions):
    """How far each prediction misses its value, as a share of the value."""
    return [abs(p / v - 1.0) for v, p in zip(values, predictions)]


# The one-layer relation, fed each layer's measured input, holds for any one
# network up to the draw of that layer's weights: about sqrt(2 / width) on a
# variance (25% at width 32, 35% at 16), half that on a std. The bounds below
# hold on seed pairs 0-9 (the default run is pair 0): Glorot and Bengio's
# network misses by at most 10.8% forward (6.6% on the default seeds), with a
# median of at most 8.2% backward; the He network's median layer by at most
# 16.2% forward and 17.5% backward.
GLOROT_BENGIO_FORWARD, GLOROT_BENGIO_BACKWARD_MEDIAN = 0.12, 0.10
HE_MEDIAN = 0.20


@pytest.fixture(scope="module")
def glorot_bengio_run(tmp_path_factory):
    """`main.py experiment glorot-bengio --json PATH`, run once: the arguments and the
    result of its measure_experiment() call, and its JSON records."""
    path = tmp_path_factory.mktemp("experiment") / "experiment.jsonl"
    calls, measure = [], main.measure_experiment

    def recorded(*args, **kwargs):
        arguments = inspect.signature(measure).bind(*args, **kwargs).arguments
        calls.append((arguments, measure(*args, **kwargs)))
        return calls[-1][1]

    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        patch.setattr(main, "measure_experiment", recorded)
        main.command_line(["experiment", "glorot-bengio", "--json", str(path)])
    ((args, measured),) = calls
    return args, measured, [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def glorot_bengio(glorot_bengio_run):
    return glorot_bengio_run[1]


@pytest.fixture(scope="module", autouse=True)
def he_started(request):
    """measure_experiment("he", 7, 11) started at once, if a test selected here
    needs it; a function that waits for it."""
    here = [item for item in request.session.items if item.module is request.module]
    if not any("he" in item.fixturenames for item in here):
        yield None
        return
    with multiprocessing.Pool(1) as pool:
        measured = pool.apply_async(main.measure_experiment, ("he", 7, 11))
        yield lambda: measured.get(timeout=300)


@pytest.fixture(scope="module")
def he(he_started):
    return he_started()


@pytest.mark.parametrize("init_mode", main.EXPERIMENTS["he"].inits)
def test_the_he_experiment_follows_the_one_layer_relation_at_the_median_layer(init_mode):
    for k in SEED_PAIRS:
        report, pre_stds, predicted_pre, predicted_grad = measured_at_init("he", init_mode, k)
        for found in (
            misses(pre_stds, predicted_pre),
            misses(report["gradient_std"], predicted_grad),
        ):
            assert sorted(found)[len(found) // 2] < HE_MEDIAN


@pytest.mark.parametrize("init_mode", main.EXPERIMENTS["glorot-bengio"].inits)
def test_glorot_bengio_follows_the_one_layer_relation_at_every_layer(init_mode):
    # tanh bends, and the relation takes that in: it is fed the bent activation below.
    for k in SEED_PAIRS:
        report, pre_stds, predicted_pre, predicted_grad = measured_at_init(
            "glorot-bengio", init_mode, k
        )
        assert max(misses(pre_stds, predicted_pre)) < GLOROT_BENGIO_FORWARD
        backward = sorted(misses(report["gradient_std"], predicted_grad))
        assert backward[len(backward) // 2] < GLOROT_BENGIO_BACKWARD_MEDIAN


def test_the_one_layer_relation_is_fed_the_mean_of_the_input_too():
    # A layer whose input has a mean: E[x^2] = mean^2 + variance, not the variance alone.
    experiment = main.EXPERIMENTS["he"]._replace(layer_widths=[2, 3, 2])
    monitor = main.ExamMonitor([2, 3, 2])
    monitor.grad_pre_per_layer = [[0.5, -0.5, 0.5]]
    monitor.pre_activations_per_layer = [[1.0, -1.0, 2.0]]
    monitor.post_activations_per_layer = [[1.0, 0.0, 2.0]]
    forward, backward = main.predicted_stds(experiment, "kaiming", monitor, [3.0, 3.0], [1.0, 1.0])
    # Var(W) = 2 / fan_in = 1, fan_in = 2, E[x^2] = 9: sqrt(18).
    assert forward == [pytest.approx(math.sqrt(18.0))]
    # fan_out 2, Var(W) = 2 / 3, E[g above^2] = 1, E[relu'^2] = 2/3: sqrt(8/9).
    assert backward == [pytest.approx(math.sqrt(8.0 / 9.0))]


def test_the_papers_findings_show_in_the_numbers(glorot_bengio, capsys):
    # Standard init: activations shrink going up, gradients going down, and
    # both far more than with Xavier.
    shrink = {}
    for init, (report, *_) in glorot_bengio["at_init"].items():
        activations, gradients = report["activation_std"], report["gradient_std"]
        shrink[init] = (activations[0] / activations[-1], gradients[-1] / gradients[0])
    assert shrink["standard"][0] > 3 * shrink["xavier"][0] > 3
    assert shrink["standard"][1] > 3 * shrink["xavier"][1] > 3
    assert glorot_bengio["losses"] == {}  # this experiment does not train
    main.print_experiment(glorot_bengio)
    assert "finding: standard: activation std shrinks" in capsys.readouterr().out


def test_glorot_bengio_feeds_standardized_inputs():
    samples = main.make_training_data(200, 32, 4, 7)
    for column in zip(*(features for features, _ in main.standardized(samples))):
        mean, std = main.mean_and_std(list(column))
        assert abs(mean) < 1e-12 and std == pytest.approx(1.0, rel=1e-12)


def test_experiment_json_has_one_record_per_init_and_layer(glorot_bengio_run):
    args, measured, records = glorot_bengio_run
    assert args == {"name": "glorot-bengio", "data_seed": 7, "network_seed": 11}  # defaults
    assert [(r["init"], r["layer"]) for r in records] == [
        (init, layer) for init in ("standard", "xavier") for layer in range(1, 6)
    ]
    for record in records:
        assert {"experiment", "init", "layer", "activation_std", "gradient_std"} <= set(record)
        assert record["experiment"] == "glorot-bengio"
    assert records == main.experiment_records(measured)  # the measured numbers


def test_he_xavier_does_not_learn_and_kaiming_does(he, capsys):
    chance = math.log(4)
    assert he["losses"]["xavier"][-1] > main.LEARNS_BELOW * chance
    assert he["losses"]["kaiming"][-1] < main.LEARNS_BELOW * chance
    assert [len(losses) for losses in he["losses"].values()] == [10, 10]
    main.print_experiment(he)
    finding = next(line for line in capsys.readouterr().out.splitlines() if "finding" in line)
    xavier, kaiming, comparison = finding.split("; kaiming")
    assert xavier.endswith("it does not learn")
    assert kaiming.endswith("it learns")
    assert comparison.startswith(" against xavier: the activation std shrinks ")


def test_he_pools_ten_networks_beside_the_papers_chain(he):
    networks = he["over_networks"]["kaiming"]
    assert len(networks.stds) == 10 and networks.stds[0] == he["at_init"]["kaiming"][1]
    assert len(networks.pooled) == len(networks.one_layer) == len(networks.chain) == 30
    # Kaiming's factor is 1: the paper's chain is the same at every layer.
    assert max(networks.chain) == pytest.approx(min(networks.chain), rel=1e-12)
    found = sorted(misses(networks.pooled, networks.one_layer))
    assert found[len(found) // 2] < 0.10  # pooled, the relation holds closer (6% here)
    # Xavier halves the variance at each ReLU layer, in the chain and over networks.
    networks = he["over_networks"]["xavier"]
    assert networks.chain[-1] / networks.chain[0] == pytest.approx(0.5**14.5, rel=1e-9)
    assert networks.pooled[-1] < 1e-3 * networks.pooled[0]
