"""Tests of the lesson's part of main.py: math, backprop, SGD, monitor, flags, story."""

import copy
import math
import random

import pytest

import main

LESSON_WIDTHS = [8, 16, 16, 16, 16, 4]
LESSON_READINGS = [  # the lesson's report, in its order
    "activation_mean",
    "activation_std",
    "gradient_std",
    "gradient_max",
    "dead_count",
    "saturation_rate",
    "layer_neuron_count",
    "histogram",
]


def close(analytic, numeric):
    """Within 1e-5 of each other, relatively, or both about 0."""
    gap = abs(analytic - numeric)
    return gap < 1e-10 or gap / (abs(analytic) + abs(numeric)) < 1e-5


def test_backward_gives_the_gradient_that_central_finite_differences_measure():
    # backward returns dLoss/d(pre-activation) of every layer: the bias
    # gradients; the weight gradient is their outer product with the layer's
    # input, grad x^T. Every weight and bias of the lesson's healthy network
    # at init is checked, on one sample of the lesson's data.
    network = main.init_network(LESSON_WIDTHS, "kaiming", None, seed=11)
    inputs, target_class = main.make_training_data(80, 8, 4, seed=7)[2]
    trace = main.forward_with_trace(network, inputs)
    # The check is only meaningful away from the ReLU kink and the cap.
    for pre in trace["pre_activations"][:-1]:
        assert all(1e-3 < abs(value) < main.RELU_CAP for value in pre)
    grads = main.backward(network, trace, target_class)
    assert len(grads) == len(network)

    def loss():
        logits = main.forward_with_trace(network, inputs)["pre_activations"][-1]
        return main.cross_entropy(logits, target_class)

    def numerical(values, index, step=1e-5):
        original = values[index]
        values[index] = original + step
        up = loss()
        values[index] = original - step
        down = loss()
        values[index] = original
        return (up - down) / (2 * step)

    checks = []
    for (weights, biases), grad, layer_input in zip(network, grads, trace["layer_inputs"]):
        checks += [
            (row, column, g * x)
            for row, g in zip(weights, grad)
            for column, x in enumerate(layer_input)
        ]
        checks += [(biases, index, g) for index, g in enumerate(grad)]
    assert len(checks) == (8 * 16 + 16) + 3 * (16 * 16 + 16) + (16 * 4 + 4)
    for values, index, analytic in checks:
        assert close(analytic, numerical(values, index))
    # Units that were off pass no gradient; the others do: both were checked.
    assert 0 < sum(g == 0.0 for grad in grads for g in grad) < sum(LESSON_WIDTHS[1:-1])


def plain_backward(network, trace, target_class):
    """Backprop as the textbook writes it: every column of W^T grad summed in
    full, then times ReLU's derivative (1 if the unit was on, else 0) below."""
    probabilities = trace["post_activations"][-1]
    grad = [p - (1.0 if i == target_class else 0.0) for i, p in enumerate(probabilities)]
    grads = [grad]
    for layer_index in range(len(network) - 1, 0, -1):
        columns = [list(column) for column in zip(*network[layer_index][0])]
        upstream = main.matvec(columns, grad)
        pre = trace["pre_activations"][layer_index - 1]
        grad = [u * (1.0 if z > 0.0 else 0.0) for u, z in zip(upstream, pre)]
        grads.append(grad)
    return grads[::-1]


def test_relu_backward_skipping_zero_rows_and_off_columns_changes_no_gradient():
    # The lesson's relu_backward sums W^T grad only over the rows whose grad is
    # not 0, and only for the units that were on: exactly what the dense sum
    # times ReLU's derivative gives, on random networks with dead units.
    rng = random.Random(3)
    skipped_rows = skipped_columns = 0
    for _ in range(500):
        widths = [rng.randint(1, 6) for _ in range(rng.randint(3, 6))]
        scale = rng.choice([0.3, 1.0, 3.0])
        network = main.init_network(widths, "bad", scale, rng.randrange(99))
        for _, biases in network:
            biases[:] = [rng.gauss(-0.5, 1.0) for _ in biases]  # some units stay off
        inputs = [rng.gauss(0.0, 1.0) for _ in range(widths[0])]
        target_class = rng.randrange(widths[-1])
        trace = main.forward_with_trace(network, inputs)
        fast = main.backward(network, trace, target_class)
        plain = plain_backward(network, trace, target_class)
        assert fast == plain
        skipped_rows += any(0.0 in grad for grad in fast[1:])
        skipped_columns += any(
            value <= 0.0 for pre in trace["pre_activations"][:-1] for value in pre
        )
    # Both skips were really taken, in most networks (393 and 489 of the 500).
    assert skipped_rows > 300
    assert skipped_columns > 450


def test_sgd_step_matches_hand_worked_values():
    # Powers of two, so every product is exact. Row i of W moves by
    # -lr * grad_i * x, its bias by -lr * grad_i; a row whose grad is 0 stays.
    network = [
        ([[1.0, 2.0], [3.0, 4.0]], [0.5, -0.5]),
        ([[1.0, -1.0]], [0.0]),
    ]
    trace = {"layer_inputs": [[1.0, -2.0], [0.0, 3.0]]}
    grads = [[0.5, 0.0], [0.25]]
    main.sgd_step(network, trace, grads, 0.5)
    # Layer 1, row 1: step 0.5 * 0.5 = 0.25: [1 - 0.25 * 1, 2 - 0.25 * -2], bias 0.5 - 0.25.
    # Layer 2: step 0.5 * 0.25 = 0.125: [1 - 0.125 * 0, -1 - 0.125 * 3], bias 0 - 0.125.
    assert network == [
        ([[0.75, 2.5], [3.0, 4.0]], [0.25, -0.5]),
        ([[1.0, -1.375]], [-0.125]),
    ]


def handmade_trace(pre):
    post = [main.safe_relu(value) for value in pre]
    return {
        "layer_inputs": [[1.0, 1.0], post],
        "pre_activations": [pre, [0.0, 0.0]],
        "post_activations": [post, [0.5, 0.5]],
    }


HANDMADE_EPOCH = [  # (pre-activations of the one hidden layer, gradients of both layers)
    ([-1.0, 2.0, 7.0], [[0.0, 0.5, -1.0], [0.1, -0.1]]),
    ([-8.0, 4.0, 0.5], [[0.0, 0.25, 0.25], [0.1, -0.1]]),
]


def test_monitor_reduces_a_handmade_epoch_to_hand_worked_values():
    monitor = main.TrainingMonitor([2, 3, 2])
    for pre, grads in HANDMADE_EPOCH:
        monitor.record(handmade_trace(pre), grads)
    # Each neuron's largest output, updated sample by sample.
    assert monitor.neuron_max_per_layer == [[0.0, 4.0, 7.0]]
    report = monitor.report()
    assert list(report) == LESSON_READINGS  # the lesson's readings, no more
    # post-activations 0, 2, 7, 0, 4, 0.5: mean 13.5 / 6 = 2.25; squared
    # deviations 5.0625 + 0.0625 + 22.5625 + 5.0625 + 3.0625 + 3.0625 = 38.875
    assert report["activation_mean"] == [2.25]
    assert report["activation_std"] == [pytest.approx(math.sqrt(38.875 / 6), rel=1e-15)]
    # gradients 0, 0.5, -1, 0, 0.25, 0.25: mean 0, squares sum to 1.375; the
    # largest in size is the negative one
    assert report["gradient_std"] == [pytest.approx(math.sqrt(1.375 / 6), rel=1e-15)]
    assert report["gradient_max"] == [1.0]
    assert report["dead_count"] == [1]  # neuron 0 never fired
    assert report["saturation_rate"] == [2 / 6]  # 7.0 and -8.0 are past +-6
    assert report["layer_neuron_count"] == [3]
    # two zeros, 0.5 in (0.1, 1], and 2, 4, 7 in (1, 10]
    assert report["histogram"] == [[2, 0, 0, 1, 3, 0, 0, 0, 0, 0]]


def test_exam_monitor_adds_its_readings_to_the_lessons_on_a_handmade_epoch():
    lesson, exam = main.TrainingMonitor([2, 3, 2]), main.ExamMonitor([2, 3, 2])
    for pre, grads in HANDMADE_EPOCH:
        lesson.record(handmade_trace(pre), grads)
        exam.record(handmade_trace(pre), grads)
    report = exam.report()
    assert list(report) == [
        *LESSON_READINGS,
        "gradient_histogram",
        "nonfinite_count",
        "sample_count",
        "update_ratio",
        "firing_share",
        "pre_histogram",
    ]
    assert {key: report[key] for key in LESSON_READINGS} == lesson.report()
    # Neuron 1 never fired (pre -1, -8); neurons 2 and 3 fired in both samples.
    assert report["firing_share"] == [[0.0, 1.0, 1.0]]
    # Pre-activations -8; -1; 0.5 and 2; 4; 7 in buckets of 2 from -12 to 12 (and beyond).
    assert report["pre_histogram"] == [[0, 0, 1, 0, 0, 0, 1, 2, 1, 0, 1, 0, 0, 0]]  # <= edge
    # |gradients| 0, 0.5, 1, 0, 0.25, 0.25: two exact zeros, 0.25 and 0.25 and
    # 0.5 in (0.1, 1], and 1 too (the buckets are "<= edge")
    assert report["gradient_histogram"] == [[2, *[0] * 10, 4, 0, 0]]
    assert report["nonfinite_count"] == [0]
    assert report["sample_count"] == 2
    assert all(map(math.isnan, report["update_ratio"]))  # no step was recorded


def test_monitor_reset_starts_a_fresh_epoch():
    monitor = main.TrainingMonitor([2, 3, 2])
    monitor.record(handmade_trace([1.0, 2.0, 3.0]), [[0.1, 0.2, 0.3], [0.0, 0.0]])
    monitor.reset()
    assert monitor.neuron_max_per_layer == [[-math.inf] * 3]
    monitor.record(handmade_trace([-1.0, -2.0, 3.0]), [[0.1, 0.2, 0.3], [0.0, 0.0]])
    report = monitor.report()
    assert report["dead_count"] == [2]  # without the reset, every neuron fired once
    assert report["activation_mean"] == [1.0]


def test_the_dead_count_is_the_count_of_neurons_whose_every_output_was_zero():
    # The monitor counts dead neurons from each neuron's running maximum;
    # count them instead from the epoch's outputs, neuron by neuron (the
    # outputs of neuron j are post[j::width]), on the lesson's sick patient,
    # whose layers die.
    samples = main.make_training_data(80, 8, 4, seed=7)
    network = main.init_network(LESSON_WIDTHS, "bad", 1.0, 11)
    monitor = main.TrainingMonitor(LESSON_WIDTHS)
    counted = []
    for report in main.training_run(network, samples, 10, 0.8, 11, monitor):
        # The generator has paused after the epoch's report: the monitor still
        # holds that epoch's outputs.
        independent = [
            sum(1 for j in range(width) if all(value == 0.0 for value in post[j::width]))
            for post, width in zip(monitor.post_activations_per_layer, LESSON_WIDTHS[1:-1])
        ]
        assert report["dead_count"] == independent
        counted += independent
    assert 0 < sum(counted) < 10 * sum(LESSON_WIDTHS[1:-1])  # some dead, some alive


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
    }
    report.update({key: [value] for key, value in changes.items()})
    return report


def test_a_healthy_report_trips_nothing():
    assert main.flag_issues(healthy_report()) == []


@pytest.mark.parametrize(
    ("above", "below", "kind", "text"),
    [
        # exactly 20% is not more than 20%
        ({"dead_count": 3}, {"dead_count": 2}, "dead neurons", "30% dead neurons (3/10)"),
        (
            {"gradient_std": 9.9e-5},
            {"gradient_std": 1.01e-4},
            "vanishing gradients",
            "gradient std 9.90e-05 (vanishing)",
        ),
        (
            {"gradient_std": 10.5},
            {"gradient_std": 9.9},
            "exploding gradients",
            "gradient std 1.05e+01 (exploding)",
        ),
        (
            {"saturation_rate": 0.31},
            {"saturation_rate": 0.30},
            "saturation",
            "31% of pre-activations are saturating (|value| > 6)",
        ),
        (
            {"activation_std": 9e-4},
            {"activation_std": 1.01e-3},
            "signal collapse",
            "activation std 9.00e-04 (signal collapse)",
        ),
    ],
)
def test_each_threshold_trips_just_past_it_and_stays_quiet_just_short_of_it(
    above, below, kind, text
):
    # "Past" is toward the disease: below the vanishing and collapse limits.
    assert main.flag_issues(healthy_report(**above)) == [
        main.HealthWarning(1, kind, f"Layer 1: {text}")
    ]
    assert main.flag_issues(healthy_report(**below)) == []


def test_warnings_name_the_layer():
    report = healthy_report()
    for values in report.values():
        values.append(copy.deepcopy(values[0]))
    report["dead_count"][1] = 10
    assert main.flag_issues(report) == [
        main.HealthWarning(2, "dead neurons", "Layer 2: 100% dead neurons (10/10)")
    ]


def test_softmax_and_cross_entropy_stay_finite_and_exact_at_extreme_logits():
    for logits in ([1e6, -1e6, 0.0], [-1e6, -1e6, -1e6], [1e6, 1e6, 1e6]):
        probabilities = main.softmax(logits)
        assert all(math.isfinite(p) for p in probabilities)
        assert math.fsum(probabilities) == pytest.approx(1.0)
        for target_class in range(3):
            assert math.isfinite(main.cross_entropy(logits, target_class))
    # A confident wrong guess costs exactly the logit gap; a right one nothing.
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
    assert all(b == [0.0] * len(b) for _, b in network)
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


def test_same_seeds_give_identical_reports_and_another_seed_other_ones():
    samples = main.make_training_data(40, 8, 4, seed=7)
    widths = [8, 16, 16, 4]

    def run(network_seed):
        network = main.init_network(widths, "kaiming", None, network_seed)
        monitor = main.TrainingMonitor(widths)
        return list(main.training_run(network, samples, 3, 0.05, network_seed, monitor))

    first = run(11)
    assert [report["epoch"] for report in first] == [1, 2, 3]
    assert run(11) == first
    assert run(12) != first


@pytest.fixture(scope="module")
def lesson_runs():
    """The lesson's two train() calls, exactly as main() makes them."""
    samples = main.make_training_data(sample_count=80, feature_count=8, class_count=4, seed=7)
    healthy = main.train(
        "HEALTHY", LESSON_WIDTHS, "kaiming", None, 0.05, 30, samples, 11, report_every=10
    )
    sick = main.train("SICK", LESSON_WIDTHS, "bad", 1.0, 0.8, 30, samples, 11, report_every=10)
    return healthy, sick


def test_healthy_patient_trips_no_warning_and_learns(lesson_runs):
    healthy, _ = lesson_runs
    assert [report["epoch"] for report in healthy] == list(range(1, 31))
    for epoch in (10, 20, 30):  # the epochs the lesson charts
        assert main.flag_issues(healthy[epoch - 1]) == []
    assert healthy[-1]["loss"] < 0.01


def test_sick_patient_shows_the_lessons_diseases(lesson_runs):
    _, sick = lesson_runs
    report = sick[-1]
    found = {(warning.layer, warning.kind) for warning in main.flag_issues(report)}
    assert report["saturation_rate"][0] >= 0.9
    assert (1, "saturation") in found
    assert (1, "vanishing gradients") in found
    dead_layers = [
        dead / width > 0.2
        for dead, width in zip(report["dead_count"], report["layer_neuron_count"])
    ]
    assert sum(dead_layers) >= 2
    assert any(kind == "signal collapse" for _, kind in found)
    assert report["loss"] >= 1.0


def test_train_prints_the_lessons_chart_and_leaves_the_global_random_alone(capsys):
    samples = main.make_training_data(12, 8, 4, seed=7)
    random.seed(0)
    expected_next = random.random()
    random.seed(0)
    reports = main.train("TINY", [8, 6, 4], "kaiming", None, 0.05, 4, samples, 11, report_every=2)
    assert random.random() == expected_next  # seeded generators only: global state untouched
    assert [report["epoch"] for report in reports] == [1, 2, 3, 4]
    out = capsys.readouterr().out
    assert out.count("=== TINY | epoch") == 2
    assert "=== TINY | epoch 4 | per-layer health ===" in out
    assert "layer |  act mean |  act std |  grad std |  max grad |  dead | sat %" in out
    assert out.count("activation histogram") == 1


# Readings that survive NaN and overflow


@pytest.mark.parametrize("position", [None, 0, 1, 2, 3])
def test_a_neuron_is_dead_when_every_finite_output_is_zero(position):
    # neuron 0 never fires, neuron 1 fires once, neuron 2 has only NaN outputs
    # (not dead, just diverged); a NaN anywhere in neuron 0's outputs changes nothing.
    outputs = [[0.0, 0.0, math.nan], [0.0, 3.0, math.nan], [0.0, 0.0, math.nan]]
    if position is not None:
        outputs.insert(position, [math.nan, 0.0, math.nan])
    monitor = main.TrainingMonitor([2, 3, 2])
    for post in outputs:
        monitor.record({"pre_activations": [post], "post_activations": [post]}, [[0.1] * 3])
    assert monitor.report()["dead_count"] == [1]
    assert main.TrainingMonitor([2, 3, 2]).report()["dead_count"] == [0]  # no outputs: none dead


def test_std_survives_values_whose_squares_overflow():
    centre, spread = main.mean_and_std([1e200, -1e200, 3e200])
    assert centre == pytest.approx(1e200)
    assert spread == pytest.approx(1e200 * (8 / 3) ** 0.5)


def test_largest_size_is_the_largest_absolute_value():
    assert main.largest_size([-3.0, 2.0, 0.5]) == 3.0
    assert main.largest_size([0.5, 2.0]) == 2.0
    assert math.copysign(1.0, main.largest_size([-0.0, -0.0])) == 1.0  # prints 0, never -0
    assert math.isnan(main.largest_size([]))
