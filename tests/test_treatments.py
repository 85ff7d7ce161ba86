"""Tests of the treatments: activations, layer norm and gradient clipping."""

import math

import pytest

import main

TREATMENTS = [(activation, norm) for activation in main.ACTIVATIONS for norm in ("none", "layer")]


def tiny_dosed_network(activation, norm, seed=5):
    network = main.init_network([3, 5, 4, 3], "kaiming", None, seed=seed)
    norms = []
    if norm == "layer":
        # Gains and shifts away from their 1 and 0, so their gradients are checked in general.
        norms = [
            ([0.8 + 0.1 * i for i in range(width)], [0.05 * i - 0.1 for i in range(width)])
            for width in (5, 4)
        ]
    return network, norms


def dosed_loss(network, norms, activation, inputs, target_class):
    trace = main.dosed_forward(network, norms, inputs, activation)
    return main.cross_entropy(trace["pre_activations"][-1], target_class)


def parameters_with_gradients(network, norms, trace, activation, target_class):
    """(list, index, analytic gradient) for every weight, bias, gain and shift."""
    grads, norm_grads = main.dosed_backward(network, norms, trace, target_class, activation)
    checks = []
    for (weights, biases), grad, layer_input in zip(network, grads, trace["layer_inputs"]):
        for row, g in zip(weights, grad):
            checks += [(row, column, g * x) for column, x in enumerate(layer_input)]
        checks += [(biases, index, g) for index, g in enumerate(grad)]
    for (gain, shift), (gain_grad, shift_grad) in zip(norms, norm_grads):
        checks += [(gain, index, d) for index, d in enumerate(gain_grad)]
        checks += [(shift, index, d) for index, d in enumerate(shift_grad)]
    return checks


@pytest.mark.parametrize(("activation", "norm"), TREATMENTS)
def test_dosed_backward_matches_central_finite_differences(activation, norm):
    network, norms = tiny_dosed_network(activation, norm)
    inputs, target_class = [0.7, -1.2, 0.4], 2
    trace = main.dosed_forward(network, norms, inputs, activation)
    # Away from the ReLU kink, where a finite difference is meaningless.
    for pre in trace["pre_activations"][:-1]:
        assert all(abs(value) > 1e-3 for value in pre)
    checks = parameters_with_gradients(network, norms, trace, activation, target_class)
    step = 1e-6
    for values, index, analytic in checks:
        original = values[index]
        values[index] = original + step
        up = dosed_loss(network, norms, activation, inputs, target_class)
        values[index] = original - step
        down = dosed_loss(network, norms, activation, inputs, target_class)
        values[index] = original
        numeric = (up - down) / (2 * step)
        assert abs(analytic - numeric) <= 1e-6 * max(abs(analytic) + abs(numeric), 1e-3)
    weights_and_biases = (3 * 5 + 5) + (5 * 4 + 4) + (4 * 3 + 3)
    assert len(checks) == weights_and_biases + (2 * (5 + 4) if norm == "layer" else 0)


def test_the_lesson_dosing_runs_the_lessons_own_functions():
    network, _ = tiny_dosed_network("relu", "none")
    trace = main.dosed_forward(network, [], [0.7, -1.2, 0.4], "relu")
    assert trace == main.forward_with_trace(network, [0.7, -1.2, 0.4])
    grads, norm_grads = main.dosed_backward(network, [], trace, 1, "relu")
    assert grads == main.pre_activation_gradients(network, trace, 1)
    assert norm_grads == []


def test_a_dosed_run_with_the_lessons_dosing_gives_the_lessons_reports():
    samples = main.make_training_data(40, 8, 4, seed=7)
    for name in ("healthy", "sick"):
        patient = dict(main.PATIENTS[name], epochs=3, network_seed=11)
        dose = [patient[key] for key in ("init_mode", "weight_scale_override", "learning_rate")]
        lesson = [
            report for _, report in main.training_run(main.LESSON_WIDTHS, *dose, 3, samples, 11)
        ]
        dosed = [
            r for _, r in main.dosed_run(patient, samples, main.ExamMonitor(main.LESSON_WIDTHS))
        ]
        for lesson_report, dosed_report in zip(lesson, dosed, strict=True):
            assert {key: dosed_report[key] for key in lesson_report} == lesson_report


@pytest.mark.parametrize(("activation", "norm"), TREATMENTS)
def test_gradient_norm_is_the_norm_of_every_parameters_gradient(activation, norm):
    network, norms = tiny_dosed_network(activation, norm)
    trace = main.dosed_forward(network, norms, [0.7, -1.2, 0.4], activation)
    grads, norm_grads = main.dosed_backward(network, norms, trace, 0, activation)
    checks = parameters_with_gradients(network, norms, trace, activation, 0)
    explicit = math.sqrt(math.fsum(g * g for _, _, g in checks))
    assert main.gradient_norm(grads, trace, norm_grads) == pytest.approx(explicit, rel=1e-12)


def test_clipping_scales_every_gradient_by_max_norm_over_the_norm():
    assert main.clip_factor(10.0, 1.0) == pytest.approx(1.0 / (10.0 + 1e-6), rel=1e-15)
    assert main.clip_factor(0.5, 1.0) == 1.0  # a gradient within the limit is left alone
    assert main.clip_factor(math.inf, 1.0) == 0.0


def every_parameter(network, norms):
    values = [v for weights, biases in network for row in [*weights, biases] for v in row]
    return values + [v for gain, shift in norms for v in gain + shift]


def test_a_clipped_step_moves_every_parameter_by_the_scaled_gradient():
    network, norms = tiny_dosed_network("tanh", "layer")
    trace = main.dosed_forward(network, norms, [0.7, -1.2, 0.4], "tanh")
    grads, norm_grads = main.dosed_backward(network, norms, trace, 2, "tanh")
    total = main.gradient_norm(grads, trace, norm_grads)
    max_norm = total / 4  # so that the clip really scales
    step = 0.5 * main.clip_factor(total, max_norm)
    expected_network = [
        (
            [[w - step * g * x for w, x in zip(row, layer_input)] for row, g in zip(weights, grad)],
            [b - step * g for b, g in zip(biases, grad)],
        )
        for (weights, biases), grad, layer_input in zip(network, grads, trace["layer_inputs"])
    ]
    expected_norms = [
        ([a - step * d for a, d in zip(gain, dg)], [b - step * d for b, d in zip(shift, ds)])
        for (gain, shift), (dg, ds) in zip(norms, norm_grads)
    ]
    before = every_parameter(network, norms)
    main.dosed_sgd_step(network, norms, trace, grads, norm_grads, step)
    after = every_parameter(network, norms)
    expected = every_parameter(expected_network, expected_norms)
    assert after == pytest.approx(expected, rel=1e-15, abs=1e-18)
    # The whole step has the clipped length: the learning rate times max_norm
    # (times norm / (norm + 1e-6), torch's guard against dividing by 0).
    length = math.sqrt(math.fsum((a - b) ** 2 for a, b in zip(after, before)))
    assert length == pytest.approx(0.5 * max_norm * total / (total + 1e-6), rel=1e-12)


@pytest.mark.parametrize("value", [1e300, -1e300, math.inf, -math.inf])
def test_every_activation_keeps_huge_values_finite(value):
    for activation in main.ACTIVATIONS.values():
        (out,) = activation["layer"]([value])
        assert math.isfinite(out)


def test_nan_passes_through_every_activation():
    for activation in main.ACTIVATIONS.values():
        (out,) = activation["layer"]([math.nan])
        assert math.isnan(out)


def test_layer_norm_gives_zero_mean_unit_spread_then_gain_and_shift():
    out, unit, spread = main.layer_norm([1.0, 2.0, 3.0, 6.0], [1.0] * 4, [0.0] * 4)
    assert math.fsum(unit) == pytest.approx(0.0, abs=1e-15)
    # mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
    assert spread == pytest.approx(math.sqrt(3.5 + 1e-5), rel=1e-15)
    assert out == unit
    shifted, _, _ = main.layer_norm([1.0, 2.0, 3.0, 6.0], [2.0] * 4, [0.5] * 4)
    assert shifted == pytest.approx([2.0 * u + 0.5 for u in unit], rel=1e-15)


def test_readings_without_meaning_print_not_applicable():
    monitor = main.ExamMonitor([2, 3, 2], "tanh")
    trace = main.dosed_forward(
        main.init_network([2, 3, 2], "xavier", None, seed=1), [], [1.0, -1.0], "tanh"
    )
    monitor.record(trace, [[0.1, 0.2, 0.3], [0.0, 0.0]])
    report = monitor.report()
    assert math.isnan(report["dead_count"][0])
    assert main.flag_issues(report) == []
    leaky = main.ExamMonitor([2, 3, 2], "leaky_relu")
    leaky.record(trace, [[0.1, 0.2, 0.3], [0.0, 0.0]])
    assert math.isnan(leaky.report()["saturation_rate"][0])
    assert math.isnan(leaky.report()["dead_count"][0])
    assert main.dead_text(report, 0) == "n/a"
