"""Tests of the treatments: activations, layer norm and gradient clipping."""

import copy
import math
from functools import partial

import pytest

import main

TREATMENTS = [(activation, norm) for activation in main.ACTIVATIONS for norm in ("none", "layer")]
INPUTS = [0.7, -1.2, 0.4]


def tiny_network(norm, seed=5):
    network = main.init_network([3, 5, 4, 3], "kaiming", None, seed=seed)
    norms = []
    if norm == "layer":
        # Gains and shifts away from their 1 and 0, so their gradients are checked in general.
        norms = [
            ([0.8 + 0.1 * i for i in range(width)], [0.05 * i - 0.1 for i in range(width)])
            for width in (5, 4)
        ]
    return network, norms


def treated_pass(activation, norms, network, inputs, target_class):
    """The trace and the gradients, with the forward and layer_backward a
    dosed_run plugs in for this activation and norm."""
    layer_backward = main.ACTIVATIONS[activation]["backward"]
    if norms:
        layer_backward = partial(main.normed_backward, layer_backward, norms)
    trace = main.treated_forward(main.ACTIVATIONS[activation]["layer"], norms, network, inputs)
    return trace, main.backward(network, trace, target_class, layer_backward)


def gradient_checks(network, norms, trace, grads):
    """(list, index, analytic gradient) for every weight, bias, gain and shift."""
    checks = []
    for (weights, biases), grad, layer_input in zip(network, grads, trace["layer_inputs"]):
        for row, g in zip(weights, grad):
            checks += [(row, column, g * x) for column, x in enumerate(layer_input)]
        checks += [(biases, index, g) for index, g in enumerate(grad)]
    for (gain, shift), (gain_grad, shift_grad) in zip(norms, trace.get("norm_grads", ())):
        checks += [(gain, index, d) for index, d in enumerate(gain_grad)]
        checks += [(shift, index, d) for index, d in enumerate(shift_grad)]
    return checks


# ReLU without a norm is the lesson's own backward, checked in test_lesson.
@pytest.mark.parametrize(("activation", "norm"), [t for t in TREATMENTS if t != ("relu", "none")])
def test_treated_backward_gives_the_gradient_that_central_finite_differences_measure(
    activation, norm
):
    network, norms = tiny_network(norm)
    target_class = 2
    trace, grads = treated_pass(activation, norms, network, INPUTS, target_class)
    # Away from the ReLU kink, where a finite difference is meaningless.
    for pre in trace["pre_activations"][:-1]:
        assert all(abs(value) > 1e-3 for value in pre)
    checks = gradient_checks(network, norms, trace, grads)
    weights_and_biases = (3 * 5 + 5) + (5 * 4 + 4) + (4 * 3 + 3)
    assert len(checks) == weights_and_biases + (2 * (5 + 4) if norm == "layer" else 0)

    def loss():
        layer = main.ACTIVATIONS[activation]["layer"]
        logits = main.treated_forward(layer, norms, network, INPUTS)["pre_activations"][-1]
        return main.cross_entropy(logits, target_class)

    step = 1e-6
    for values, index, analytic in checks:
        original = values[index]
        values[index] = original + step
        up = loss()
        values[index] = original - step
        down = loss()
        values[index] = original
        numeric = (up - down) / (2 * step)
        assert abs(analytic - numeric) <= 1e-6 * max(abs(analytic) + abs(numeric), 1e-3)


def test_treated_forward_with_relu_and_no_norm_is_the_lessons_forward_pass():
    # The He experiment runs its ReLU networks through treated_forward.
    network, _ = tiny_network("none")
    relu = main.ACTIVATIONS["relu"]["layer"]
    assert main.treated_forward(relu, [], network, INPUTS) == main.forward_with_trace(
        network, INPUTS
    )


def test_a_dosed_run_with_the_lessons_dosing_gives_the_lessons_reports():
    samples = main.make_training_data(40, 8, 4, seed=7)
    for name in ("healthy", "sick"):
        patient = dict(main.PATIENTS[name], epochs=3, network_seed=11)
        dose = [patient[key] for key in ("init_mode", "weight_scale_override", "learning_rate")]
        network = main.init_network(main.LESSON_WIDTHS, *dose[:2], 11)
        monitor = main.TrainingMonitor(main.LESSON_WIDTHS)
        lesson = list(main.training_run(network, samples, 3, dose[2], 11, monitor))
        dosed = list(main.dosed_run(patient, samples, main.ExamMonitor(main.LESSON_WIDTHS)))
        assert len(dosed) == len(lesson) == 3
        for lesson_report, dosed_report in zip(lesson, dosed):
            assert {key: dosed_report[key] for key in lesson_report} == lesson_report


@pytest.mark.parametrize(("activation", "norm"), TREATMENTS)
def test_gradient_norm_is_the_norm_of_every_parameters_gradient(activation, norm):
    network, norms = tiny_network(norm)
    trace, grads = treated_pass(activation, norms, network, INPUTS, 0)
    every_gradient = [g for _, _, g in gradient_checks(network, norms, trace, grads)]
    explicit = math.sqrt(math.fsum(g * g for g in every_gradient))
    assert main.gradient_norm(grads, trace) == pytest.approx(explicit, rel=1e-12)


def test_clip_factor_is_max_norm_over_the_norm_when_that_is_below_1():
    assert main.clip_factor(10.0, 1.0) == pytest.approx(1.0 / (10.0 + 1e-6), rel=1e-15)
    assert main.clip_factor(0.5, 1.0) == 1.0  # a gradient within the limit is left alone
    assert main.clip_factor(math.inf, 1.0) == 0.0


def every_parameter(network, norms):
    values = [v for weights, biases in network for row in [*weights, biases] for v in row]
    return values + [v for gain, shift in norms for v in gain + shift]


def test_a_clipped_step_moves_every_parameter_by_the_scaled_gradient(monkeypatch):
    # One sample, one epoch: dosed_run takes one step. The monitor sees the
    # network, trace and gradients just before it; a spy on treated_forward
    # sees the gains and shifts dosed_run made (both are changed in place).
    seen = {}

    def spying_forward(activate, norms, network, inputs, real=main.treated_forward):
        seen.setdefault("norms", norms)
        return real(activate, norms, network, inputs)

    class StepMonitor(main.ExamMonitor):
        def record_step(self, network, trace, grads, step_size):
            before = copy.deepcopy((network, seen["norms"]))
            seen.update(network=network, before=before, trace=trace, grads=grads, step=step_size)
            super().record_step(network, trace, grads, step_size)

    monkeypatch.setattr(main, "treated_forward", spying_forward)
    widths = [3, 5, 4, 3]
    patient = dict(main.PATIENTS["healthy"], layer_widths=widths, activation="tanh")
    patient.update(norm="layer", clip=0.01, learning_rate=0.5, epochs=1, network_seed=5)
    list(main.dosed_run(patient, [(INPUTS, 2)], StepMonitor(widths, "tanh")))

    network, norms = seen["before"]
    trace, grads = seen["trace"], seen["grads"]
    total = main.gradient_norm(grads, trace)
    assert main.clip_factor(total, 0.01) < 0.1  # the clip really scales
    step = 0.5 * main.clip_factor(total, 0.01)
    assert seen["step"] == step  # the monitor is told the clipped step
    before = every_parameter(network, norms)
    for values, index, g in gradient_checks(network, norms, trace, grads):
        values[index] -= step * g  # the step by hand, on the copy made before it
    expected = every_parameter(network, norms)
    after = every_parameter(seen["network"], seen["norms"])
    assert after == pytest.approx(expected, rel=1e-15, abs=1e-18)
    # The whole step has the clipped length: the learning rate times max_norm
    # (times norm / (norm + 1e-6), torch's guard against dividing by 0).
    length = math.sqrt(math.fsum((a - b) ** 2 for a, b in zip(after, before)))
    assert length == pytest.approx(0.5 * 0.01 * total / (total + 1e-6), rel=1e-9)


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


def test_each_activation_gets_its_own_readings_and_n_a_for_the_meaningless():
    network = main.init_network([2, 3, 2], "xavier", None, seed=1)
    tanh = main.ACTIVATIONS["tanh"]
    trace = main.treated_forward(tanh["layer"], [], network, [1.0, -1.0])
    grads = [[0.1, 0.2, 0.3], [0.0, 0.0]]
    monitor = main.ExamMonitor([2, 3, 2], "tanh")
    monitor.record(trace, grads)
    report = monitor.report()
    # A tanh neuron cannot die; its histogram has tanh's linear buckets.
    assert math.isnan(report["dead_count"][0])
    assert report["histogram"] == [
        main.histogram(trace["post_activations"][0], main.TANH_HISTOGRAM_EDGES)
    ]
    assert len(report["histogram"][0]) == len(tanh["labels"])
    assert main.flag_issues(report) == []  # n/a trips nothing
    assert main.dead_text(report, 0) == "n/a"
    # A leaky ReLU can neither die nor saturate.
    leaky = main.ExamMonitor([2, 3, 2], "leaky_relu")
    leaky.record(trace, grads)
    assert math.isnan(leaky.report()["saturation_rate"][0])
    assert math.isnan(leaky.report()["dead_count"][0])


class UpdateMonitor:
    """Stands in for the ExamMonitor: keeps the updates Adam reports."""

    num_hidden_layers = 1

    def __init__(self):
        self.updates = []

    def record_update(self, index, update, weights):
        self.updates.append((index, update, [list(row) for row in weights]))


def tiny_adam_case():
    """A 2-1-2 network with a layer norm, and one step's trace and gradients."""
    network = [([[0.5, -1.0]], [0.1]), ([[2.0], [-1.0]], [0.0, 0.0])]
    norms = [([1.0], [0.0])]
    trace = {"layer_inputs": [[1.0, 2.0], [0.7]], "norm_grads": [([0.25], [-0.5])]}
    grads = [[0.5], [0.2, -0.4]]
    return network, norms, trace, grads


def test_one_adam_step_moves_each_parameter_as_worked_out_by_hand():
    # At t = 1, m = 0.1 g and v = 0.001 g^2, so after the bias corrections
    # m / (1 - 0.9) = g and sqrt(v / (1 - 0.999)) = |g|: each parameter moves
    # by lr * g / (|g| + 1e-8), lr times the sign of its gradient; a zero
    # gradient does not move it.
    network, norms, trace, grads = tiny_adam_case()
    monitor = UpdateMonitor()
    step = main.adam(network, norms, None, monitor)
    step(network, trace, grads, 0.01)

    def moved(p, g):
        return p - 0.01 * g / (abs(g) + 1e-8)

    # dLoss/dW is grad x^T: layer 1's weights get 0.5 * (1, 2) = (0.5, 1.0).
    assert network[0][0] == [[pytest.approx(moved(0.5, 0.5), abs=1e-15),
                              pytest.approx(moved(-1.0, 1.0), abs=1e-15)]]  # fmt: skip
    assert network[0][1] == [pytest.approx(0.09, abs=1e-9)]  # 0.1 - 0.01, its gradient 0.5
    assert network[1][0] == [[pytest.approx(1.99, abs=1e-9)], [pytest.approx(-0.99, abs=1e-9)]]
    assert network[1][1] == [pytest.approx(-0.01, abs=1e-9), pytest.approx(0.01, abs=1e-9)]
    assert norms == [([pytest.approx(0.99, abs=1e-9)], [pytest.approx(0.01, abs=1e-9)])]
    # The monitor is told the real update of layer 1's weights, and the
    # weights before it.
    [(index, update, before)] = monitor.updates
    assert index == 0 and before == [[0.5, -1.0]]
    assert update == [pytest.approx(0.01, abs=1e-9), pytest.approx(0.01, abs=1e-9)]


def test_a_few_adam_steps_match_an_independent_recomputation():
    network, norms, trace, grads = tiny_adam_case()
    step = main.adam(network, norms, None, UpdateMonitor())
    # The same parameters, flat, and their gradients, recomputed plainly.
    params = [0.5, -1.0, 0.1, 2.0, -1.0, 0.0, 0.0, 1.0, 0.0]
    m, v = [0.0] * len(params), [0.0] * len(params)
    for t, scale in enumerate([1.0, -0.5, 2.0, 0.25], start=1):
        g = [scale * grad for grad in (0.5, 1.0, 0.5, 0.14, -0.28, 0.2, -0.4, 0.25, -0.5)]
        scaled = [[scale * x for x in layer] for layer in grads]
        norm_grads = [([scale * 0.25], [scale * -0.5])]
        step(network, {**trace, "norm_grads": norm_grads}, scaled, 0.003)
        for i, gi in enumerate(g):
            m[i] = 0.9 * m[i] + (1 - 0.9) * gi
            v[i] = 0.999 * v[i] + (1 - 0.999) * gi * gi
            m_hat, v_hat = m[i] / (1 - 0.9**t), v[i] / (1 - 0.999**t)
            params[i] -= 0.003 * m_hat / (math.sqrt(v_hat) + 1e-8)
    got = [*network[0][0][0], *network[0][1], *(row[0] for row in network[1][0])]
    got += [*network[1][1], *norms[0][0], *norms[0][1]]
    assert got == pytest.approx(params, rel=1e-12, abs=1e-15)


def test_an_adam_patient_trains_and_says_so():
    patient = dict(main.PATIENTS["collapsed"], patient="collapsed", optimizer="adam",
                   learning_rate=main.ADAM_LEARNING_RATE, epochs=3, network_seed=11)  # fmt: skip
    samples = main.make_training_data(80, 8, 4, 7)
    reports, _ = main.examine(patient, samples)
    assert "adam" in main.describe_dosing(patient)
    assert all(0.0 < ratio < 1.0 for report in reports for ratio in report["update_ratio"])
    assert reports[-1]["loss"] < reports[0]["loss"]
