"""Tests of the dosings: activations, layer norm, gradient clipping and Adam."""

import copy
import math
import random
from functools import partial

import pytest

import main

DOSINGS = [(activation, norm) for activation in main.ACTIVATIONS for norm in ("none", "layer")]
INPUTS = [0.7, -1.2, 0.4]
LESSON_WIDTHS = (8, 16, 16, 16, 16, 4)


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


def dosed_pass(activation, norms, network, inputs, target_class):
    """The trace and the gradients, with the forward and layer_backward a
    dosed_run plugs in for this activation and norm."""
    activation = main.ACTIVATIONS[activation]
    layer_backward = partial(main.dosed_backward, activation)
    if norms:
        layer_backward = partial(main.normed_backward, layer_backward, norms)
    trace = main.dosed_forward(activation, norms, network, inputs)
    return trace, main.backward(network, trace, target_class, layer_backward)


def gradient_checks(network, norms, trace, grads):
    """(list, index, analytic gradient) for every weight, bias, gain and shift."""
    checks = []
    for (weights, biases), grad, layer_input in zip(network, grads, trace["layer_inputs"]):
        for row, g in zip(weights, grad):
            checks += [(row, column, g * x) for column, x in enumerate(layer_input)]
        checks += [(biases, index, g) for index, g in enumerate(grad)]
    for (gain, shift), (gain_grad, shift_grad) in zip(norms, trace["norm_grads"]):
        checks += [(gain, index, d) for index, d in enumerate(gain_grad)]
        checks += [(shift, index, d) for index, d in enumerate(shift_grad)]
    return checks


# Every activation and norm, ReLU without a norm too: the dosed ReLU is
# dosed_backward, not the lesson's relu_backward (checked in test_lesson).
@pytest.mark.parametrize(("activation", "norm"), DOSINGS)
def test_dosed_backward_gives_the_gradient_that_central_finite_differences_measure(
    activation, norm
):
    network, norms = tiny_network(norm)
    target_class = 2
    trace, grads = dosed_pass(activation, norms, network, INPUTS, target_class)
    # Away from the ReLU kink, where a finite difference is meaningless.
    for pre in trace["pre_activations"][:-1]:
        assert all(abs(value) > 1e-3 for value in pre)
    checks = gradient_checks(network, norms, trace, grads)
    weights_and_biases = (3 * 5 + 5) + (5 * 4 + 4) + (4 * 3 + 3)
    assert len(checks) == weights_and_biases + (2 * (5 + 4) if norm == "layer" else 0)

    def loss():
        layer = main.ACTIVATIONS[activation]
        logits = main.dosed_forward(layer, norms, network, INPUTS)["pre_activations"][-1]
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


def plain_backward(network, trace, target_class, derivative):
    """Backprop as the textbook writes it: every column of W^T grad summed in
    full (plainly where fsum cannot), then the activation's derivative below."""
    probabilities = trace["post_activations"][-1]
    grad = [p - (1.0 if i == target_class else 0.0) for i, p in enumerate(probabilities)]
    grads = [grad]
    for layer_index in range(len(network) - 1, 0, -1):
        columns = [list(column) for column in zip(*network[layer_index][0])]
        upstream = main.sturdy_matvec(columns, grad)
        pre = trace["pre_activations"][layer_index - 1]
        post = trace["post_activations"][layer_index - 1]
        grad = [derivative(u, z, a) for u, z, a in zip(upstream, pre, post)]
        grads.append(grad)
    return grads[::-1]


DERIVATIVES = {  # activation: (upstream, its input, its output) -> the gradient below
    "relu": lambda u, z, a: u if z > 0.0 else 0.0,
    "leaky_relu": lambda u, z, a: u if z > 0.0 else main.LEAKY_SLOPE * u,
    "tanh": lambda u, z, a: u * (1.0 - a * a),
}


def same_floats(left, right):
    return len(left) == len(right) and all(
        a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(left, right)
    )


@pytest.mark.parametrize("activation", list(DERIVATIVES))
def test_dosed_backward_skips_change_no_gradient_even_after_a_blow_up(activation):
    # Random small networks, some weights replaced by inf, NaN or 1e308, and
    # some inputs of 1e150: dosed_backward's skipped rows (grad 0 and a finite
    # pre-activation above) and columns (slope 0) must give exactly what the
    # full sum times the derivative gives, NaN for NaN (0 * inf included).
    rng = random.Random(3)
    specials = [math.inf, -math.inf, math.nan, 1e308, -1e308]
    nonfinite_cases = 0
    for case in range(500):
        widths = [rng.randint(1, 5) for _ in range(rng.randint(3, 5))]
        network = main.init_network(widths, "bad", rng.choice([0.5, 3.0, 1e100]), rng.randrange(99))
        for weights, _ in network:
            for row in weights:
                if rng.random() < 0.1:
                    row[rng.randrange(len(row))] = rng.choice(specials)
        inputs = [rng.gauss(0.0, 1.0) * rng.choice([1.0, 1e150]) for _ in range(widths[0])]
        target_class = rng.randrange(widths[-1])
        trace, fast = dosed_pass(activation, [], network, inputs, target_class)
        plain = plain_backward(network, trace, target_class, DERIVATIVES[activation])
        assert all(same_floats(a, b) for a, b in zip(fast, plain)), (case, fast, plain)
        nonfinite_cases += any(not math.isfinite(v) for grad in plain for v in grad)
    # The blow-up paths were really taken (in about 180 of the 500 networks).
    assert nonfinite_cases > 100


def test_sturdy_sums_add_plainly_where_fsum_raises():
    # 1e308 + 1e308 overflows fsum in the second row, midway through the rows;
    # inf - inf is NaN, not an error.
    assert main.sturdy_matvec([[1.0, 2.0], [1e308, 1e308], [3.0, -1.0]], [1.0, 1.0]) == [
        3.0,
        math.inf,
        2.0,
    ]
    assert math.isnan(main.sturdy_sum([math.inf, 1.0, -math.inf]))
    # Where fsum can, it does: exactly rounded, 1e-16 is not lost.
    assert main.sturdy_sum([1.0, 1e-16, -1.0]) == 1e-16


def test_dosed_forward_with_relu_and_no_norm_is_the_lessons_forward_pass():
    # The He experiment and every ReLU patient run through dosed_forward.
    network, _ = tiny_network("none")
    dosed = main.dosed_forward(main.ACTIVATIONS["relu"], [], network, INPUTS)
    lesson = main.forward_with_trace(network, INPUTS)
    assert {key: dosed[key] for key in lesson} == lesson
    # The linear outputs (W x + b) of the hidden layers: the pre-activations, with no norm.
    assert dosed["linear_outputs"] == lesson["pre_activations"][:-1]


def test_dosed_forward_with_a_layer_norm_keeps_both_sides_of_the_norm():
    network, norms = tiny_network("layer")
    trace = main.dosed_forward(main.ACTIVATIONS["tanh"], norms, network, INPUTS)
    for layer, (gain, shift) in enumerate(norms):
        normed, unit, spread = main.layer_norm(trace["linear_outputs"][layer], gain, shift)
        assert trace["pre_activations"][layer] == normed
        assert trace["units"][layer] == unit
        assert trace["spreads"][layer] == spread
        assert trace["post_activations"][layer] == list(map(math.tanh, normed))
    # The output layer is not normed: its logits are W x + b of the last hidden layer.
    weights, biases = network[-1]
    logits = main.add_vectors(main.matvec(weights, trace["post_activations"][1]), biases)
    assert trace["pre_activations"][-1] == logits


def test_a_dosed_run_with_the_lessons_dosing_gives_the_lessons_reports():
    samples = main.make_training_data(40, 8, 4, seed=7)
    for name in ("healthy", "sick"):
        dosing = main.patient(name, epochs=3)
        network = main.init_network(
            LESSON_WIDTHS, dosing.init_mode, dosing.weight_scale_override, 11
        )
        monitor = main.TrainingMonitor(LESSON_WIDTHS)
        lesson = list(main.training_run(network, samples, 3, dosing.learning_rate, 11, monitor))
        dosed = list(main.dosed_run(dosing, samples, main.ExamMonitor(LESSON_WIDTHS)))
        assert len(dosed) == len(lesson) == 3
        for lesson_report, dosed_report in zip(lesson, dosed):
            assert {key: dosed_report[key] for key in lesson_report} == lesson_report


@pytest.mark.parametrize(("activation", "norm"), DOSINGS)
def test_gradient_norm_is_the_norm_of_every_parameters_gradient(activation, norm):
    network, norms = tiny_network(norm)
    trace, grads = dosed_pass(activation, norms, network, INPUTS, 0)
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
    # network, trace and gradients just before it; a spy on dosed_forward
    # sees the gains and shifts dosed_run made (both are changed in place).
    seen = {}

    def spying_forward(activation, norms, network, inputs, real=main.dosed_forward):
        seen.setdefault("norms", norms)
        return real(activation, norms, network, inputs)

    class StepMonitor(main.ExamMonitor):
        def record_step(self, network, trace, grads, step_size):
            before = copy.deepcopy((network, seen["norms"]))
            seen.update(network=network, before=before, trace=trace, grads=grads, step=step_size)
            super().record_step(network, trace, grads, step_size)

    monkeypatch.setattr(main, "dosed_forward", spying_forward)
    widths = (3, 5, 4, 3)
    dosing = main.patient(
        "healthy", layer_widths=widths, activation="tanh", norm="layer", clip=0.01,
        learning_rate=0.5, epochs=1, network_seed=5,
    )  # fmt: skip
    list(main.dosed_run(dosing, [(INPUTS, 2)], StepMonitor(widths, "tanh")))

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
        (out,) = activation.layer([value])
        assert math.isfinite(out)
        assert abs(out) <= main.RELU_CAP


def test_nan_passes_through_every_activation():
    for activation in main.ACTIVATIONS.values():
        (out,) = activation.layer([math.nan])
        assert math.isnan(out)


def test_each_activation_and_its_slope():
    relu, leaky, tanh = (main.ACTIVATIONS[name] for name in ("relu", "leaky_relu", "tanh"))
    pre = [-2.0, 0.0, 0.5, 2e6]
    assert relu.layer(pre) == [0.0, 0.0, 0.5, main.RELU_CAP]
    assert leaky.layer(pre) == [-2.0 * main.LEAKY_SLOPE, 0.0, 0.5, main.RELU_CAP]
    assert main.leaky_relu(-1e9) == -main.RELU_CAP  # the leak is clamped too
    # The slopes ignore the clamps (straight-through, as in the lesson).
    assert [relu.slope(z, a) for z, a in zip(pre, relu.layer(pre))] == [None, None, 1.0, 1.0]
    leaky_slopes = [leaky.slope(z, a) for z, a in zip(pre, leaky.layer(pre))]
    assert leaky_slopes == [main.LEAKY_SLOPE, main.LEAKY_SLOPE, 1.0, 1.0]
    # tanh' = 1 - tanh^2, read off the output: 1 at 0, 0.42 at 1.
    assert tanh.slope(0.0, math.tanh(0.0)) == 1.0
    assert tanh.slope(1.0, math.tanh(1.0)) == pytest.approx(1.0 / math.cosh(1.0) ** 2)
    # GELU(x) = x Phi(x) and SiLU(x) = x / (1 + e^-x), as PyTorch's: at 1 and at -1.
    gelu, silu = main.ACTIVATIONS["gelu"], main.ACTIVATIONS["silu"]
    assert gelu.layer([1.0, -1.0]) == pytest.approx([0.8413447460685429, -0.15865525393145707])
    assert silu.layer([1.0, -1.0]) == pytest.approx([0.7310585786300049, -0.2689414213699951])


def test_layer_norm_gives_zero_mean_unit_spread_then_gain_and_shift():
    out, unit, spread = main.layer_norm([1.0, 2.0, 3.0, 6.0], [1.0] * 4, [0.0] * 4)
    assert math.fsum(unit) == pytest.approx(0.0, abs=1e-15)
    # mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
    assert spread == pytest.approx(math.sqrt(3.5 + 1e-5), rel=1e-15)
    assert unit == pytest.approx([-2.0 / spread, -1.0 / spread, 0.0, 3.0 / spread], rel=1e-15)
    assert out == unit
    shifted, _, _ = main.layer_norm([1.0, 2.0, 3.0, 6.0], [2.0] * 4, [0.5] * 4)
    assert shifted == pytest.approx([2.0 * u + 0.5 for u in unit], rel=1e-15)


def test_each_activation_gets_its_own_readings_and_n_a_for_the_meaningless():
    network = main.init_network([2, 3, 2], "xavier", None, seed=1)
    tanh = main.ACTIVATIONS["tanh"]
    trace = main.dosed_forward(tanh, [], network, [1.0, -1.0])
    grads = [[0.1, 0.2, 0.3], [0.0, 0.0]]
    monitor = main.ExamMonitor([2, 3, 2], "tanh")
    monitor.record(trace, grads)
    report = monitor.report()
    # A tanh neuron cannot die; its histogram has tanh's linear buckets.
    assert math.isnan(report["dead_count"][0])
    assert report["histogram"] == [main.histogram(trace["post_activations"][0], main.TANH_EDGES)]
    assert len(report["histogram"][0]) == len(tanh.labels) == len(main.TANH_EDGES) + 1
    assert main.flag_issues(report) == []  # n/a trips nothing
    assert main.dead_text(report["dead_count"][0], 3) == "n/a"
    # A leaky ReLU can neither die nor saturate.
    leaky = main.ExamMonitor([2, 3, 2], "leaky_relu")
    leaky.record(trace, grads)
    assert math.isnan(leaky.report()["saturation_rate"][0])
    assert math.isnan(leaky.report()["dead_count"][0])


class UpdateMonitor:
    """Stands in for the ExamMonitor: keeps the sums Adam reports."""

    num_hidden_layers = 1

    def __init__(self):
        self.updates = []

    def record_update(self, index, update_sums, weight_sums):
        self.updates.append((index, update_sums, weight_sums))


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
    # The monitor is told the (sum, sum of squares) of Adam's real update of
    # layer 1's weights, 0.01 and 0.01, and of the weights before it, 0.5 and -1.
    [(index, update_sums, weight_sums)] = monitor.updates
    assert index == 0
    assert update_sums == (pytest.approx(0.02, abs=1e-9), pytest.approx(2e-4, rel=1e-6))
    assert weight_sums == (-0.5, pytest.approx(1.25, rel=1e-15))


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


def scaled_step(trace, grads, scale):
    """A trace and gradients with every gradient (the norms' too) times scale."""
    norm_grads = [
        tuple([scale * d for d in vector] for vector in pair) for pair in trace["norm_grads"]
    ]
    return {**trace, "norm_grads": norm_grads}, [[scale * g for g in grad] for grad in grads]


def test_a_clipped_adam_step_sees_the_clipped_gradients():
    # Clipping scales each step's gradients by its own clip_factor before
    # Adam's moments see them. Adam cannot tell a constant scale, so the
    # steps' gradients differ in size: the clip bites on some, not others.
    network, norms, trace, grads = tiny_adam_case()
    clipped_network, clipped_norms = copy.deepcopy((network, norms))
    unclipped_network, unclipped_norms = copy.deepcopy((network, norms))
    by_hand = main.adam(network, norms, None, UpdateMonitor())
    clipped = main.adam(clipped_network, clipped_norms, 0.1, UpdateMonitor())
    unclipped = main.adam(unclipped_network, unclipped_norms, None, UpdateMonitor())
    factors = []
    for size in (3.0, 0.01, 1.0, 0.05):
        step_trace, step_grads = scaled_step(trace, grads, size)
        factors.append(main.clip_factor(main.gradient_norm(step_grads, step_trace), 0.1))
        by_hand(network, *scaled_step(step_trace, step_grads, factors[-1]), 0.01)
        clipped(clipped_network, step_trace, step_grads, 0.01)
        unclipped(unclipped_network, step_trace, step_grads, 0.01)
    assert factors[1] == factors[3] == 1.0 and factors[0] < factors[2] < 0.2
    expected = every_parameter(network, norms)
    assert every_parameter(clipped_network, clipped_norms) == pytest.approx(expected, rel=1e-12)
    # Without the clip the parameters end elsewhere: the check has teeth.
    unclipped_parameters = every_parameter(unclipped_network, unclipped_norms)
    assert unclipped_parameters != pytest.approx(expected, rel=1e-3)


def test_an_adam_patient_trains_and_says_so():
    dosing = main.patient(
        "collapsed", optimizer="adam", learning_rate=main.ADAM_LEARNING_RATE, epochs=3
    )
    reports = main.examine(dosing, main.samples_for(dosing))
    assert "adam" in main.describe_dosing(dosing)
    assert all(0.0 < ratio < 1.0 for report in reports for ratio in report["update_ratio"])
    assert reports[-1]["loss"] < reports[0]["loss"]
