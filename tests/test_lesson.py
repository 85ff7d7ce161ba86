"""Tests of the lesson's part of main.py: math, backprop, monitor, flags, story."""

import copy
import math
import random

import pytest

import main

LESSON_WIDTHS = [8, 16, 16, 16, 16, 4]


def loss_of(network, inputs, target_class):
    trace = main.forward_with_trace(network, inputs)
    return main.cross_entropy(trace["pre_activations"][-1], target_class)


def test_backward_matches_central_finite_differences():
    network = main.init_network([3, 5, 4, 3], "kaiming", None, seed=5)
    inputs, target_class = [0.7, -1.2, 0.4], 2
    trace = main.forward_with_trace(network, inputs)
    # The check is only meaningful away from the ReLU kink and the cap.
    for pre in trace["pre_activations"][:-1]:
        assert all(1e-3 < abs(value) < main.RELU_CAP for value in pre)
    _, weight_grads, bias_grads = main.backward(network, trace, target_class)

    def numerical(set_value, original, step=1e-5):
        set_value(original + step)
        up = loss_of(network, inputs, target_class)
        set_value(original - step)
        down = loss_of(network, inputs, target_class)
        set_value(original)
        return (up - down) / (2 * step)

    def relative_error(a, b):
        return abs(a - b) / max(abs(a) + abs(b), 1e-12)

    checked = 0
    for (weights, biases), layer_weight_grads, layer_bias_grads in zip(
        network, weight_grads, bias_grads
    ):
        for row, grad_row in zip(weights, layer_weight_grads):
            for column, analytic in enumerate(grad_row):
                numeric = numerical(lambda v, r=row, c=column: r.__setitem__(c, v), row[column])
                assert relative_error(analytic, numeric) < 1e-5 or abs(analytic - numeric) < 1e-10
                checked += 1
        for index, analytic in enumerate(layer_bias_grads):
            numeric = numerical(lambda v, i=index, b=biases: b.__setitem__(i, v), biases[index])
            assert relative_error(analytic, numeric) < 1e-5 or abs(analytic - numeric) < 1e-10
            checked += 1
    assert checked == (3 * 5 + 5) + (5 * 4 + 4) + (4 * 3 + 3)


def test_pre_activation_grads_are_the_bias_grads():
    network = main.init_network([3, 4, 2], "xavier", None, seed=1)
    trace = main.forward_with_trace(network, [1.0, 2.0, -1.0])
    pre_grads, _, bias_grads = main.backward(network, trace, 0)
    assert pre_grads == bias_grads
    assert len(pre_grads) == len(network)


def handmade_trace(pre):
    post = [main.safe_relu(value) for value in pre]
    return {
        "layer_inputs": [[1.0, 1.0], post],
        "pre_activations": [pre, [0.0, 0.0]],
        "post_activations": [post, [0.5, 0.5]],
    }


def test_monitor_reduces_a_handmade_epoch_to_hand_worked_values():
    monitor = main.TrainingMonitor([2, 3, 2])
    monitor.record(handmade_trace([-1.0, 2.0, 7.0]), [[0.0, 0.5, -0.25], [0.1, -0.1]])
    monitor.record(handmade_trace([-8.0, 4.0, 0.5]), [[0.0, -0.5, 0.25], [0.1, -0.1]])
    report = monitor.report()
    # post-activations 0, 2, 7, 0, 4, 0.5: mean 13.5 / 6 = 2.25; squared
    # deviations 5.0625 + 0.0625 + 22.5625 + 5.0625 + 3.0625 + 3.0625 = 38.875
    assert report["activation_mean"] == [2.25]
    assert report["activation_std"] == [pytest.approx(math.sqrt(38.875 / 6), rel=1e-15)]
    # gradients 0, 0.5, -0.25, 0, -0.5, 0.25: mean 0, squares sum to 0.625
    assert report["gradient_std"] == [pytest.approx(math.sqrt(0.625 / 6), rel=1e-15)]
    assert report["gradient_max"] == [0.5]
    assert report["dead_count"] == [1]  # neuron 0 never fired
    assert report["saturation_rate"] == [2 / 6]  # 7.0 and -8.0 are past +-6
    assert report["layer_neuron_count"] == [3]
    # two zeros, 0.5 in (0.1, 1], and 2, 4, 7 in (1, 10]
    assert report["histogram"] == [[2, 0, 0, 1, 3, 0, 0, 0, 0, 0]]
    assert report["nonfinite_count"] == [0]
    assert report["sample_count"] == 2


def test_monitor_reset_starts_a_fresh_epoch():
    monitor = main.TrainingMonitor([2, 3, 2])
    monitor.record(handmade_trace([1.0, 2.0, 3.0]), [[0.1, 0.2, 0.3], [0.0, 0.0]])
    monitor.reset()
    monitor.record(handmade_trace([-1.0, -2.0, 3.0]), [[0.1, 0.2, 0.3], [0.0, 0.0]])
    report = monitor.report()
    assert report["dead_count"] == [2]
    assert report["sample_count"] == 1


def healthy_report(**changes):
    """A one-layer report that trips nothing, with some readings changed."""
    report = {
        "activation_mean": [0.5],
        "activation_std": [1.0],
        "gradient_std": [1e-2],
        "gradient_max": [0.1],
        "dead_count": [0],
        "saturation_rate": [0.0],
        "layer_neuron_count": [10],
        "histogram": [[0] * len(main.HISTOGRAM_LABELS)],
        "nonfinite_count": [0],
    }
    report.update({key: [value] for key, value in changes.items()})
    return report


def test_a_healthy_report_trips_nothing():
    assert main.flag_issues(healthy_report()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"dead_count": 3}, "Layer 1: 30% dead neurons (3/10)"),
        ({"gradient_std": 9.9e-5}, "Layer 1: gradient std 9.90e-05 (vanishing)"),
        ({"gradient_std": 10.5}, "Layer 1: gradient std 1.05e+01 (exploding)"),
        (
            {"saturation_rate": 0.31},
            "Layer 1: 31% of pre-activations are saturating (|value| > 6)",
        ),
        ({"activation_std": 9e-4}, "Layer 1: activation std 9.00e-04 (signal collapse)"),
        ({"nonfinite_count": 7}, "Layer 1: 7 non-finite values (NaN/inf)"),
    ],
)
def test_each_threshold_trips_just_above_it(changes, expected):
    assert main.flag_issues(healthy_report(**changes)) == [expected]


@pytest.mark.parametrize(
    "changes",
    [
        {"dead_count": 2},  # exactly 20% is not more than 20%
        {"gradient_std": 1.01e-4},
        {"gradient_std": 9.9},
        {"saturation_rate": 0.30},
        {"activation_std": 1.01e-3},
    ],
)
def test_each_threshold_stays_quiet_just_below_it(changes):
    assert main.flag_issues(healthy_report(**changes)) == []


def test_warnings_name_the_layer():
    report = healthy_report()
    for values in report.values():
        values.append(copy.deepcopy(values[0]))
    report["dead_count"][1] = 10
    assert main.flag_issues(report) == ["Layer 2: 100% dead neurons (10/10)"]


@pytest.mark.parametrize("logits", [[1e6, -1e6, 0.0], [-1e6, -1e6, -1e6], [1e6, 1e6, 1e6]])
def test_softmax_and_loss_are_finite_at_extreme_logits(logits):
    probabilities = main.softmax(logits)
    assert all(math.isfinite(p) for p in probabilities)
    assert math.fsum(probabilities) == pytest.approx(1.0)
    for target_class in range(3):
        assert math.isfinite(main.cross_entropy(logits, target_class))


def test_cross_entropy_of_a_confident_wrong_guess_is_the_logit_gap():
    assert main.cross_entropy([1e6, -1e6], 1) == 2e6
    assert main.cross_entropy([1e6, -1e6], 0) == 0.0


def test_safe_relu_is_relu_clamped_at_the_cap():
    assert main.safe_relu(-3.0) == 0.0
    assert main.safe_relu(2.5) == 2.5
    assert main.safe_relu(main.RELU_CAP * 10) == main.RELU_CAP
    assert main.safe_relu(math.inf) == main.RELU_CAP


def test_matvec_and_add_vectors():
    assert main.matvec([[1.0, 2.0], [3.0, 4.0], [0.0, -1.0]], [10.0, 1.0]) == [12.0, 34.0, -1.0]
    assert main.add_vectors([1.0, 2.0], [0.5, -2.0]) == [1.5, 0.0]


def test_init_network_shapes_and_scales():
    network = main.init_network([8, 64, 4], "kaiming", None, seed=3)
    assert [(len(w), len(w[0]), len(b)) for w, b in network] == [(64, 8, 64), (4, 64, 4)]
    first_layer = [value for row in network[0][0] for value in row]
    assert main.mean_and_std(first_layer)[1] == pytest.approx(math.sqrt(2 / 8), rel=0.15)
    bad = main.init_network([8, 64, 4], "bad", 1.0, seed=3)
    assert main.mean_and_std([v for row in bad[0][0] for v in row])[1] == pytest.approx(
        1.0, rel=0.15
    )


def test_training_data_is_seeded_and_balanced():
    samples = main.make_training_data(sample_count=80, feature_count=8, class_count=4, seed=7)
    assert samples == main.make_training_data(80, 8, 4, 7)
    assert samples != main.make_training_data(80, 8, 4, 8)
    assert [sum(1 for _, c in samples if c == k) for k in range(4)] == [20, 20, 20, 20]
    assert all(len(features) == 8 for features, _ in samples)


def test_same_seeds_give_identical_reports():
    samples = main.make_training_data(40, 8, 4, seed=7)

    def run():
        return [
            report
            for _, report in main.training_run(
                [8, 16, 16, 4], "kaiming", None, 0.05, 3, samples, network_seed=11
            )
        ]

    assert run() == run()


@pytest.fixture(scope="module")
def lesson_runs():
    samples = main.make_training_data(sample_count=80, feature_count=8, class_count=4, seed=7)
    healthy = main.train(
        "HEALTHY", LESSON_WIDTHS, "kaiming", None, 0.05, 30, samples, 11, report_every=10
    )
    sick = main.train("SICK", LESSON_WIDTHS, "bad", 1.0, 0.8, 30, samples, 11, report_every=10)
    return healthy, sick


def test_healthy_patient_trips_no_warning_and_learns(lesson_runs):
    healthy, _ = lesson_runs
    assert [report["epoch"] for report in healthy] == list(range(1, 31))
    for epoch in (10, 20, 30):
        assert main.flag_issues(healthy[epoch - 1]) == []
    assert healthy[-1]["loss"] < 0.01


def test_sick_patient_shows_the_lessons_diseases(lesson_runs):
    _, sick = lesson_runs
    report = sick[-1]
    warnings = main.flag_issues(report)
    assert report["saturation_rate"][0] >= 0.9
    assert any(w.startswith("Layer 1:") and "saturating" in w for w in warnings)
    assert any(w.startswith("Layer 1:") and "(vanishing)" in w for w in warnings)
    dead_layers = [
        dead / width > 0.2
        for dead, width in zip(report["dead_count"], report["layer_neuron_count"])
    ]
    assert sum(dead_layers) >= 2
    assert any("(signal collapse)" in w for w in warnings)
    assert report["loss"] >= 1.0


def test_train_prints_the_lessons_chart(capsys):
    samples = main.make_training_data(12, 8, 4, seed=7)
    random.seed(0)
    expected_next = random.random()
    random.seed(0)
    main.train("TINY", [8, 6, 4], "kaiming", None, 0.05, 4, samples, 11, report_every=2)
    assert random.random() == expected_next  # seeded generators only: global state untouched
    out = capsys.readouterr().out
    assert out.count("=== TINY | epoch") == 2
    assert "=== TINY | epoch 4 | per-layer health ===" in out
    assert "layer |  act mean |  act std |  grad std |  max grad |  dead | sat %" in out
    assert out.count("activation histogram") == 1


def plain_pre_activation_gradients(network, trace, target_class):
    """Backprop as the textbook writes it: every column of W^T grad summed in full."""
    probabilities = trace["post_activations"][-1]
    grad = [p - (1.0 if i == target_class else 0.0) for i, p in enumerate(probabilities)]
    grads = [grad]
    for layer_index in range(len(network) - 1, 0, -1):
        columns = [list(column) for column in zip(*network[layer_index][0])]
        upstream = main.matvec(columns, grad)
        below = trace["pre_activations"][layer_index - 1]
        grad = [u if pre > 0.0 else 0.0 for u, pre in zip(upstream, below)]
        grads.append(grad)
    return grads[::-1]


def same_floats(left, right):
    return len(left) == len(right) and all(
        a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(left, right)
    )


def test_skipping_zero_rows_and_dead_columns_changes_no_gradient_even_after_a_blow_up():
    # Random small networks, some weights replaced by inf, NaN or 1e308, and
    # some inputs of 1e150: the skips in relu_backward must give exactly what
    # the full sum gives, NaN for NaN (0 * inf included).
    rng = random.Random(3)
    specials = [math.inf, -math.inf, math.nan, 1e308, -1e308]
    nonfinite_cases = 0
    for _ in range(1500):
        widths = [rng.randint(1, 5) for _ in range(rng.randint(3, 5))]
        network = main.init_network(widths, "bad", rng.choice([0.5, 3.0, 1e100]), rng.randrange(99))
        for weights, _ in network:
            for row in weights:
                if rng.random() < 0.1:
                    row[rng.randrange(len(row))] = rng.choice(specials)
        inputs = [rng.gauss(0.0, 1.0) * rng.choice([1.0, 1e150]) for _ in range(widths[0])]
        trace = main.forward_with_trace(network, inputs)
        target_class = rng.randrange(widths[-1])
        fast = main.pre_activation_gradients(network, trace, target_class)
        plain = plain_pre_activation_gradients(network, trace, target_class)
        assert all(same_floats(a, b) for a, b in zip(fast, plain))
        nonfinite_cases += any(not math.isfinite(v) for grad in plain for v in grad)
    assert nonfinite_cases > 300  # the blow-up paths were really taken
