"""Training health monitor: read a network's chart, not only its temperature.

The runnable companion to the lesson "Activation and Gradient Health". It trains
two small list-based networks on the same toy task -- a healthy patient (Kaiming
init, learning rate 0.05) and a sick one (oversized init, learning rate 0.8) --
and every 10 epochs prints each hidden layer's six readings and the warnings
they trip, with a tiny histogram of its activations at the last epoch.

    python main.py                           the lesson's two patients
    python main.py --patient dead            one patient's full examination
    python main.py --patient dead --treat    ... then a prescription, and the cure
    python main.py --help                    everything else
    python -m pytest                         the tests

Pure Python, standard library only. The first part of this file is the lesson,
whole and in the lesson's order; everything after the "Beyond the lesson"
banner is extra, so a reader beside the lesson can stop there.

Contents
  The lesson: list math; data and network; the diagnostic forward pass,
    backprop and SGD; the monitor; the chart; training the two patients.
  Beyond the lesson: treatments (other activations, layer norm, clipping);
    the patients; the seventh reading and the examination's warnings; the
    chart over time; the verdict; one full examination; prescribe, treat and
    prove the cure; seeds or dose; the founding experiments (Glorot and
    Bengio 2010, He et al. 2015); JSON export; the command line.
"""

import argparse
import errno
import json
import math
import os
import random
import signal
import stat
import statistics
import sys
import tempfile
from bisect import bisect_right
from functools import reduce
from itertools import pairwise
from operator import add, mul, sub
from time import perf_counter

# safe_relu pins a positive activation here, so an exploded layer stays finite
# (and readable in the chart) instead of overflowing to inf.
RELU_CAP = 1e6
# A pre-activation beyond +-6 sits on the flat shoulder of any squashing curve
# (tanh(6) = 0.99999, sigmoid(6) = 0.9975): the gradient through it is ~0.
SATURATION_LIMIT = 6.0

# The five thresholds of flag_issues, as the lesson states them.
DEAD_PERCENT_LIMIT = 20.0  # more than this share of a layer never fired
VANISHING_GRAD_STD = 1e-4  # gradients too small to move the weights
EXPLODING_GRAD_STD = 10.0  # gradients large enough to throw the weights away
SATURATED_PERCENT_LIMIT = 30.0  # share of pre-activations past +-SATURATION_LIMIT
COLLAPSED_ACT_STD = 1e-3  # the layer gives (nearly) the same output for every input

# Histogram buckets for post-activations: exact zeros (a ReLU that is off),
# then one bucket per decade up to the cap, so a healthy layer (values ~0.1-10)
# and an exploded one (values ~1e5-1e6) land on the same fixed axis.
HISTOGRAM_EDGES = (0.0, 1e-2, 1e-1, 1.0, 10.0, 1e2, 1e3, 1e4, 1e5)
HISTOGRAM_LABELS = ["= 0"] + [f"<= {edge:g}" for edge in HISTOGRAM_EDGES[1:]]
HISTOGRAM_LABELS.append(f"> {HISTOGRAM_EDGES[-1]:g}")

CLUSTER_SPREAD = 1.0  # std of the class centres; each sample adds unit noise

HealthReport = dict[str, list[float] | list[list[float]] | list[int] | int]


# ----------------------------------------------------------------------------
# List math


def exact_sum(values):
    """Sum a list of floats, rounded the same way on every Python.

    Python 3.12 changed sum() of floats to compensated summation, so sum()
    prints different last digits on 3.11 and 3.12; math.fsum is exactly
    rounded everywhere. fsum raises where plain IEEE arithmetic would give
    inf or NaN (a diverged network), so then we add left to right and let the
    monitor count the inf/NaN that come out.
    """
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):
        return reduce(add, values, 0.0)


def matvec(weights, vector):
    """Multiply a matrix (a list of rows, or any iterable of rows) by a vector."""
    # The fallback reads the rows a second time; an iterator of rows, like the
    # columns zip(*weights) of backprop, can be read only once: keep its rows.
    rows = weights if isinstance(weights, list) else list(weights)
    try:
        return [math.fsum(map(mul, row, vector)) for row in rows]
    except (OverflowError, ValueError):  # see exact_sum
        return [exact_sum(list(map(mul, row, vector))) for row in rows]


def add_vectors(left, right):
    return list(map(add, left, right))


def softmax(logits):
    # Subtracting the largest logit makes every exp() at most 1: no overflow,
    # even for logits of 1e6.
    top = max(logits)
    exps = [math.exp(value - top) for value in logits]
    total = exact_sum(exps)
    return [value / total for value in exps]


def cross_entropy(logits, target_class):
    """-log softmax(logits)[target_class], via log-sum-exp: finite for huge logits."""
    top = max(logits)
    log_total = math.log(exact_sum([math.exp(value - top) for value in logits]))
    return top + log_total - logits[target_class]


def safe_relu(value):
    # ReLU, clamped at RELU_CAP. The NaN of a diverged network passes through
    # (it is neither <= 0 nor > RELU_CAP).
    if value <= 0.0:
        return 0.0
    return RELU_CAP if value > RELU_CAP else value


def mean_and_std(values):
    """Mean and population standard deviation; NaN for no values.

    Two passes, so a large mean cannot cancel away a small spread: the mean,
    then the root of the summed squared deviations from it. math.dist computes
    that root in C, scaling as it goes so squares of huge values cannot
    overflow (and gives the same bits on every Python from 3.10 to 3.13).
    """
    if not values:
        return math.nan, math.nan
    centre = exact_sum(values) / len(values)
    if math.isinf(centre) and all(map(math.isfinite, values)):
        # Finite values whose sum overflows: average them scaled down.
        scale = max(map(abs, values))
        centre = exact_sum([value / scale for value in values]) / len(values) * scale
    return centre, math.dist(values, [centre] * len(values)) / math.sqrt(len(values))


# ----------------------------------------------------------------------------
# Data and network


def make_training_data(sample_count, feature_count, class_count, seed):
    """A seeded toy classification set: one Gaussian cluster per class.

    Class centres are drawn with std CLUSTER_SPREAD; each sample is its class
    centre plus unit Gaussian noise. Classes take turns, so they are balanced.
    Returns a list of (features, class_index) pairs.
    """
    rng = random.Random(seed)
    centres = [
        [rng.gauss(0.0, CLUSTER_SPREAD) for _ in range(feature_count)] for _ in range(class_count)
    ]
    samples = []
    for index in range(sample_count):
        class_index = index % class_count
        samples.append(([rng.gauss(centre, 1.0) for centre in centres[class_index]], class_index))
    return samples


def init_network(layer_widths, init_mode, weight_scale_override, seed):
    """Random weights and zero biases: a list of (weights, biases) per layer.

    weights has fan_out rows of fan_in floats, so matvec(weights, signal) maps
    a layer's input to its pre-activation; init_std gives their std.
    """
    rng = random.Random(seed)
    network = []
    for fan_in, fan_out in pairwise(layer_widths):
        scale = init_std(fan_in, fan_out, init_mode, weight_scale_override)
        weights = [[rng.gauss(0.0, scale) for _ in range(fan_in)] for _ in range(fan_out)]
        network.append((weights, [0.0] * fan_out))
    return network


def init_std(fan_in, fan_out, init_mode, weight_scale_override):
    """The weight std of one layer:
      "kaiming":  sqrt(2 / fan_in), which keeps a ReLU layer's variance steady;
      "xavier":   sqrt(2 / (fan_in + fan_out)), Glorot's choice for tanh;
      "standard": sqrt(1 / (3 fan_in)), the std of the uniform [-1/sqrt(fan_in),
                  1/sqrt(fan_in)] that Glorot and Bengio call standard;
      "bad":      weight_scale_override, whatever dose you give it.
    A weight_scale_override replaces the std of any mode.
    """
    if weight_scale_override is not None:
        return weight_scale_override
    if init_mode == "kaiming":
        return math.sqrt(2.0 / fan_in)
    if init_mode == "xavier":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if init_mode == "standard":
        return math.sqrt(1.0 / (3.0 * fan_in))
    raise ValueError(f"init_mode {init_mode!r} needs a weight_scale_override")


# ----------------------------------------------------------------------------
# The diagnostic forward pass, backprop and the SGD step


def forward_with_trace(network, inputs):
    layer_inputs = []
    pre_activations = []
    post_activations = []
    signal = list(inputs)
    last_index = len(network) - 1
    for layer_index, (weights, biases) in enumerate(network):
        layer_inputs.append(list(signal))
        pre = add_vectors(matvec(weights, signal), biases)
        pre_activations.append(pre)
        if layer_index == last_index:
            post = softmax(pre)
        else:
            post = [safe_relu(value) for value in pre]
        post_activations.append(post)
        signal = post
    return {
        "layer_inputs": layer_inputs,
        "pre_activations": pre_activations,
        "post_activations": post_activations,
    }


def pre_activation_gradients(network, trace, target_class):
    """dLoss/d(pre-activation) of every layer, hidden and output, for one sample.

    The ReLU derivative is 1 for any positive pre-activation and 0 otherwise,
    as the lesson states it, also above RELU_CAP: the cap only keeps forward
    values finite (a straight-through choice). That is what lets the sick
    patient's exploded layers be pushed down until they die.
    """
    probabilities = trace["post_activations"][-1]
    pre_activations = trace["pre_activations"]
    # Softmax followed by cross-entropy has the famously simple gradient p - y.
    grad = [p - (1.0 if index == target_class else 0.0) for index, p in enumerate(probabilities)]
    grads = [grad]
    for layer_index in range(len(network) - 1, 0, -1):
        weights, _ = network[layer_index]
        grad = relu_backward(
            weights, grad, pre_activations[layer_index], pre_activations[layer_index - 1]
        )
        grads.append(grad)
    return grads[::-1]


def relu_backward(weights, grad, pre, below):
    """dLoss/d(pre-activation below): W^T grad, times the ReLU derivative below.

    A unit below whose ReLU was off gets 0 without its column being summed.
    """
    live = [j for j, value in enumerate(below) if value > 0.0]
    result = [0.0] * len(below)
    for j, total in zip(live, column_sums(weights, grad, pre, live)):
        result[j] = total
    return result


def column_sums(weights, grad, pre, columns):
    """(W^T grad)[j] for each j in columns: the gradient unit j passed on.

    A row whose gradient is exactly 0 adds exactly 0 and is left out --
    unless its pre-activation is not finite, the mark of an inf or NaN
    weight in that row, whose 0 * inf = NaN plain backprop would spread.
    """
    rows = [
        i for i, (g, value) in enumerate(zip(grad, pre)) if g != 0.0 or not math.isfinite(value)
    ]
    if not rows:
        return [0.0] * len(columns)
    transposed = list(zip(*[weights[i] for i in rows]))
    return matvec([transposed[j] for j in columns], [grad[i] for i in rows])


def backward(network, trace, target_class):
    """Backprop the cross-entropy loss of one sample through the traced pass.

    Returns (pre_activation_grads, weight_grads, bias_grads): dLoss/dpre for
    every layer and the gradient of every weight and bias. A layer computes
    pre = W x + b, so dLoss/dW is the outer product (dLoss/dpre) x^T and
    dLoss/db is dLoss/dpre itself.
    """
    pre_activation_grads = pre_activation_gradients(network, trace, target_class)
    weight_grads = [
        [[g * x for x in layer_input] for g in grad]
        for grad, layer_input in zip(pre_activation_grads, trace["layer_inputs"])
    ]
    bias_grads = [list(grad) for grad in pre_activation_grads]
    return pre_activation_grads, weight_grads, bias_grads


def sgd_step(network, trace, pre_activation_grads, learning_rate):
    """One SGD step, in place, without building the weight gradients.

    Row i of dLoss/dW is grad_i * x (see backward), so row i of W moves by
    -learning_rate * grad_i * x, and its bias by -learning_rate * grad_i. A
    neuron that was off for this sample has grad_i = 0 exactly: neither moves,
    and we skip it.
    """
    for (weights, biases), grad, layer_input in zip(
        network, pre_activation_grads, trace["layer_inputs"]
    ):
        for row_index, g in enumerate(grad):
            if g != 0.0:
                step = learning_rate * g
                weights[row_index] = [w - step * x for w, x in zip(weights[row_index], layer_input)]
                biases[row_index] -= step


# ----------------------------------------------------------------------------
# The monitor: six readings per hidden layer per epoch


class TrainingMonitor:
    """Accumulates one epoch of traces, then reduces them to a HealthReport."""

    histogram_edges = HISTOGRAM_EDGES

    def __init__(self, layer_widths):
        self.num_hidden_layers = len(layer_widths) - 2
        self.layer_widths = layer_widths
        self.reset()

    def reset(self):
        hidden = range(self.num_hidden_layers)
        self.pre_activations_per_layer = [[] for _ in hidden]
        self.post_activations_per_layer = [[] for _ in hidden]
        self.grad_pre_per_layer = [[] for _ in hidden]
        self.sample_count = 0

    def record(self, trace, pre_activation_grads):
        for layer_index in range(self.num_hidden_layers):
            pre = trace["pre_activations"][layer_index]
            post = trace["post_activations"][layer_index]
            grad_pre = pre_activation_grads[layer_index]
            self.pre_activations_per_layer[layer_index].extend(pre)
            self.post_activations_per_layer[layer_index].extend(post)
            self.grad_pre_per_layer[layer_index].extend(grad_pre)
        # The lesson also updates each neuron's running maximum here, at every
        # sample; report() takes the same maximum once per epoch instead.
        self.sample_count += 1

    def report(self) -> HealthReport:
        """Reduce the epoch to one summary number (or histogram) per hidden layer.

        Statistics are taken over a layer's finite values; the inf and NaN of
        a diverged network are counted in "nonfinite_count" instead.
        """
        report = {key: [] for key in REPORT_KEYS}
        for layer_index, width in enumerate(self.layer_widths[1:-1]):
            pre = self.pre_activations_per_layer[layer_index]
            post = self.post_activations_per_layer[layer_index]
            grads = self.grad_pre_per_layer[layer_index]
            finite_pre, finite_post, finite_grads = finite(pre), finite(post), finite(grads)
            activation_mean, activation_std = mean_and_std(finite_post)
            report["activation_mean"].append(activation_mean)
            report["activation_std"].append(activation_std)
            report["gradient_std"].append(mean_and_std(finite_grads)[1])
            report["gradient_max"].append(largest_size(finite_grads))
            report["dead_count"].append(count_dead_neurons(post, width))
            report["saturation_rate"].append(saturation_rate(finite_pre))
            report["layer_neuron_count"].append(width)
            report["histogram"].append(histogram(finite_post, self.histogram_edges))
            nonfinite = len(pre) + len(post) + len(grads)
            nonfinite -= len(finite_pre) + len(finite_post) + len(finite_grads)
            report["nonfinite_count"].append(nonfinite)
        report["sample_count"] = self.sample_count
        return report


REPORT_KEYS = (
    "activation_mean",
    "activation_std",
    "gradient_std",
    "gradient_max",
    "dead_count",
    "saturation_rate",
    "layer_neuron_count",
    "histogram",
    "nonfinite_count",
)


def count_dead_neurons(post, width):
    """Neurons whose maximum finite output over the epoch stayed 0: they never fired.

    post holds the layer's outputs sample after sample, so neuron j's outputs
    are post[j::width]; a ReLU output is never below 0. A NaN output (of a
    diverged network) says nothing about firing, and max() with a NaN depends
    on where the NaN stands, so only finite outputs count; a neuron with none
    is not called dead (nonfinite_count reports it).
    """
    return sum(1 for neuron in range(width) if never_fired(finite(post[neuron::width])))


def never_fired(outputs):
    """Whether a neuron had outputs and all of them were 0."""
    return bool(outputs) and max(outputs) <= 0.0


def finite(values):
    """The list of finite values, in order. One inf or NaN makes the sum inf
    or NaN, so a finite sum means the list is its own answer: found about
    three times as fast as by filtering. (Finite values whose sum overflows
    take the filter too.)"""
    if math.isfinite(sum(values)):
        return values
    return list(filter(math.isfinite, values))


def largest_size(values):
    """The largest |value|, NaN for no values: it is one of the two extremes."""
    return max(abs(max(values)), abs(min(values))) if values else math.nan


def saturation_rate(values):
    """Share of values beyond +-SATURATION_LIMIT; NaN if there are none."""
    if not values:
        return math.nan
    return len([value for value in values if abs(value) > SATURATION_LIMIT]) / len(values)


def histogram(values, edges=HISTOGRAM_EDGES):
    """Count values per bucket: = 0, <= 0.01, <= 0.1, ..., <= 1e5, > 1e5.

    Sorted once, the count at or below each edge is one bisection.
    """
    ordered = sorted(values)
    at_or_below = [bisect_right(ordered, edge) for edge in edges]
    at_or_below.append(len(ordered))
    return [high - low for low, high in zip([0, *at_or_below], at_or_below)]


def bucket_shares(counts):
    """Each bucket's share of a layer's histogram, from 0 to 1."""
    total = max(sum(counts), 1)
    return [count / total for count in counts]


def plural(count, noun):
    """ "1 epoch", "2 epochs": a count and its noun, in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def flag_issues(report):
    warnings = []
    for layer_index in range(len(report["activation_mean"])):
        layer_label = f"Layer {layer_index + 1}"
        neuron_count = report["layer_neuron_count"][layer_index]
        dead_count = report["dead_count"][layer_index]
        dead_percent = 100.0 * dead_count / neuron_count
        if dead_percent > DEAD_PERCENT_LIMIT:
            warnings.append(
                f"{layer_label}: {dead_percent:.0f}% dead neurons ({dead_count}/{neuron_count})"
            )
        gradient_std = report["gradient_std"][layer_index]
        if gradient_std < VANISHING_GRAD_STD:
            warnings.append(f"{layer_label}: gradient std {gradient_std:.2e} (vanishing)")
        elif gradient_std > EXPLODING_GRAD_STD:
            warnings.append(f"{layer_label}: gradient std {gradient_std:.2e} (exploding)")
        saturated_percent = 100.0 * report["saturation_rate"][layer_index]
        if saturated_percent > SATURATED_PERCENT_LIMIT:
            warnings.append(
                f"{layer_label}: {saturated_percent:.0f}% of pre-activations are saturating "
                f"(|value| > {SATURATION_LIMIT:g})"
            )
        activation_std = report["activation_std"][layer_index]
        if activation_std < COLLAPSED_ACT_STD:
            warnings.append(f"{layer_label}: activation std {activation_std:.2e} (signal collapse)")
        nonfinite_count = report["nonfinite_count"][layer_index]
        if nonfinite_count:
            warnings.append(
                f"{layer_label}: {plural(nonfinite_count, 'non-finite value')} (NaN/inf)"
            )
    return warnings


# ----------------------------------------------------------------------------
# The chart


def readable(value, spec):
    # A layer with no finite values to reduce has NaN statistics: say so plainly.
    return "n/a" if math.isnan(value) else format(value, spec)


def format_activation(value):
    # Three decimals for a healthy layer; one for an exploded one in the 1e5s;
    # scientific from a million on, so the column keeps its width.
    if abs(value) >= 1e6:
        return readable(value, ".2e")
    return readable(value, ".3f" if abs(value) < 1000.0 else ".1f")


def format_loss(value):
    # Four decimals for a loss that means something; scientific for an exploded
    # one or one too small for four decimals; NaN, the loss of a diverged
    # network, said as such.
    if math.isnan(value):
        return "NaN"
    return format(value, ".4f" if 1e-4 <= abs(value) < 1e4 or value == 0.0 else ".3e")


def health_table(report):
    """The lesson's per-layer table, one row per hidden layer.

    The dead column is 5 wide, as in the lesson, unless a count like
    1000/1000 needs more: then it widens for the whole table.
    """
    deads = [dead_text(report, index) for index in range(len(report["dead_count"]))]
    dead_width = max([5, *map(len, deads)])
    lines = [
        f"layer |  act mean |  act std |  grad std |  max grad | {'dead':>{dead_width}} | sat %",
        f"----- | --------- | -------- | --------- | --------- | {'-' * dead_width} | -----",
    ]
    for index, dead in enumerate(deads):
        saturation = readable(report["saturation_rate"][index], ".0%")
        lines.append(
            f"{index + 1:>5} | {format_activation(report['activation_mean'][index]):>9} | "
            f"{format_activation(report['activation_std'][index]):>8} | "
            f"{readable(report['gradient_std'][index], '.2e'):>9} | "
            f"{readable(report['gradient_max'][index], '.2e'):>9} | "
            f"{dead:>{dead_width}} | {saturation:>5}"
        )
    return lines


def dead_text(report, index):
    # A reading that has no meaning for the activation (tanh) is NaN: n/a.
    dead = report["dead_count"][index]
    return "n/a" if math.isnan(dead) else f"{dead}/{report['layer_neuron_count'][index]}"


def histogram_chart(report, labels=HISTOGRAM_LABELS, bar_width=10):
    """The activation histogram as bars: one row per bucket, one column per layer.

    Each '#' is 10% of the layer's values; a '.' marks a bucket that holds
    some values, but fewer than 5%.
    """
    label_width = max(map(len, labels))
    header = [f"{'bucket':<{label_width}}"]
    header += [f"layer {index + 1:<{bar_width - 1}}" for index in range(len(report["histogram"]))]
    rows = [header]
    layer_shares = [bucket_shares(counts) for counts in report["histogram"]]
    for bucket, label in enumerate(labels):
        row = [f"{label:<{label_width}}"]
        for shares in layer_shares:
            share = shares[bucket]
            bar = "#" * round(share * bar_width) or ("." if share else "")
            row.append(f"{bar:<{bar_width}} {100.0 * share:3.0f}%")
        rows.append(row)
    lines = ["activation histogram (share of post-activations per bucket):"]
    lines += [("  " + " | ".join(row)).rstrip() for row in rows]
    return lines


def chart_lines(label, report, show_histogram=False, labels=HISTOGRAM_LABELS):
    lines = [
        f"=== {label} | epoch {report['epoch']} | per-layer health ===",
        f"loss: {format_loss(report['loss'])}",
    ]
    lines += health_table(report)
    if show_histogram:
        lines += histogram_chart(report, labels)
    return lines


def warning_lines(warnings):
    if not warnings:
        return ["no warnings: every layer is healthy."]
    return ["WARNINGS:"] + [f"- {warning}" for warning in warnings]


def print_health_chart(label, report, show_histogram=False):
    print(
        "\n".join(chart_lines(label, report, show_histogram) + warning_lines(flag_issues(report)))
    )
    print()


# ----------------------------------------------------------------------------
# Training the two patients


def training_run(
    layer_widths,
    init_mode,
    weight_scale_override,
    learning_rate,
    epochs,
    samples,
    network_seed,
    monitor=None,
):
    """Per-sample SGD on cross-entropy; yields (network, report) after each epoch.

    The network_seed draws the initial weights and the order in which the
    samples are visited each epoch. The report is the monitor's HealthReport
    plus the epoch number and the epoch's mean loss.
    """
    network = init_network(layer_widths, init_mode, weight_scale_override, network_seed)
    shuffler = random.Random(network_seed)
    if monitor is None:
        monitor = TrainingMonitor(layer_widths)
    order = list(range(len(samples)))
    for epoch in range(1, epochs + 1):
        monitor.reset()
        shuffler.shuffle(order)
        losses = []
        for sample_index in order:
            inputs, target_class = samples[sample_index]
            trace = forward_with_trace(network, inputs)
            losses.append(cross_entropy(trace["pre_activations"][-1], target_class))
            pre_activation_grads = pre_activation_gradients(network, trace, target_class)
            monitor.record(trace, pre_activation_grads)
            sgd_step(network, trace, pre_activation_grads, learning_rate)
        report = monitor.report()
        report["epoch"] = epoch
        report["loss"] = exact_sum(losses) / len(losses)
        yield network, report


def train(
    label,
    layer_widths,
    init_mode,
    weight_scale_override,
    learning_rate,
    epochs,
    samples,
    network_seed,
    report_every,
):
    """Train one patient, print its chart every report_every epochs (with the
    histogram at the last of them) and return the reports of all epochs."""
    reports = []
    last_charted = epochs - epochs % report_every
    for _, report in training_run(
        layer_widths, init_mode, weight_scale_override, learning_rate, epochs, samples, network_seed
    ):
        reports.append(report)
        if report["epoch"] % report_every == 0:
            print_health_chart(label, report, show_histogram=report["epoch"] == last_charted)
    return reports


def main():
    samples = make_training_data(sample_count=80, feature_count=8, class_count=4, seed=7)
    train(
        label="HEALTHY (kaiming init, lr=0.05)",
        layer_widths=[8, 16, 16, 16, 16, 4],
        init_mode="kaiming",
        weight_scale_override=None,
        learning_rate=0.05,
        epochs=30,
        samples=samples,
        network_seed=11,
        report_every=10,
    )
    train(
        label="SICK (oversized init, lr=0.8)",
        layer_widths=[8, 16, 16, 16, 16, 4],
        init_mode="bad",
        weight_scale_override=1.0,
        learning_rate=0.8,
        epochs=30,
        samples=samples,
        network_seed=11,
        report_every=10,
    )


# ============================================================================
# Beyond the lesson: treatments, a patient for every disease, a seventh
# reading, the chart over time, a verdict, prescriptions and cures, seeds, the
# founding experiments, export, and a command line.
# Everything above is the lesson; a reader beside the lesson can stop here.
# ============================================================================

# ----------------------------------------------------------------------------
# Treatments: other activations, layer normalization, gradient clipping
#
# A patient's dosing may change more than the lesson's init and learning rate.
# dosed_run trains such a patient; with the lesson's dosing (ReLU, no norm,
# no clipping) it runs the lesson's own forward_with_trace,
# pre_activation_gradients and sgd_step, so the plain path stays as it was.

LEAKY_SLOPE = 0.01  # Maas, Hannun and Ng (2013): below 0 the ReLU leaks 1%
NORM_EPSILON = 1e-5  # layer norm divides by sqrt(var + this), never by 0
CLIP_EPSILON = 1e-6  # as in torch.nn.utils.clip_grad_norm_


def leaky_relu(value):
    # Clamped to +-RELU_CAP like safe_relu, so values stay finite; NaN passes.
    if value > 0.0:
        return RELU_CAP if value > RELU_CAP else value
    leak = LEAKY_SLOPE * value
    return -RELU_CAP if leak < -RELU_CAP else leak


def relu_layer(pre):
    return [safe_relu(value) for value in pre]


def leaky_relu_layer(pre):
    return [leaky_relu(value) for value in pre]


def tanh_layer(pre):
    return list(map(math.tanh, pre))


# Each backprop turns the gradient arriving at a layer's outputs into the
# gradient at the activation's input. Like the lesson's ReLU, the clamps are
# straight-through: the derivative ignores RELU_CAP.
def relu_backprop(upstream, pre, post):
    return [u if value > 0.0 else 0.0 for u, value in zip(upstream, pre)]


def leaky_relu_backprop(upstream, pre, post):
    return [u if value > 0.0 else LEAKY_SLOPE * u for u, value in zip(upstream, pre)]


def tanh_backprop(upstream, pre, post):
    # tanh'(x) = 1 - tanh(x)^2, read off the output the forward pass kept.
    return [u * (1.0 - t * t) for u, t in zip(upstream, post)]


# Tanh lives in (-1, 1): its histogram buckets are linear, with the outer two
# for outputs pinned near +-1, where Glorot and Bengio saw saturation.
TANH_HISTOGRAM_EDGES = (-0.99, -0.5, -0.1, 0.1, 0.5, 0.99)


def bucket_labels(edges):
    return [f"<= {edge:g}" for edge in edges] + [f"> {edges[-1]:g}"]


ACTIVATIONS = {
    # layer / backprop: the activation of one layer and its gradient;
    # edges / labels: the histogram's buckets; not_applicable: readings with
    # no meaning here, printed n/a. A tanh neuron is never "off", so it
    # cannot die (its disease is saturation). A leaky ReLU has no flat part
    # at all: below 0 it still passes 1% of the gradient, so a neuron that
    # never went above 0 is not dead (it can come back), and nothing
    # saturates.
    "relu": dict(
        layer=relu_layer,
        backprop=relu_backprop,
        edges=HISTOGRAM_EDGES,
        labels=HISTOGRAM_LABELS,
        not_applicable=(),
    ),
    "leaky_relu": dict(
        layer=leaky_relu_layer,
        backprop=leaky_relu_backprop,
        edges=HISTOGRAM_EDGES,
        labels=bucket_labels(HISTOGRAM_EDGES),
        not_applicable=("dead_count", "saturation_rate"),
    ),
    "tanh": dict(
        layer=tanh_layer,
        backprop=tanh_backprop,
        edges=TANH_HISTOGRAM_EDGES,
        labels=bucket_labels(TANH_HISTOGRAM_EDGES),
        not_applicable=("dead_count",),
    ),
}


def is_plain(activation, norms):
    """The lesson's network: ReLU and no layer norm."""
    return activation == "relu" and not norms


def layer_norm(values, gain, shift):
    """Ba, Kiros and Hinton (2016), over one sample's layer: returns
    gain * unit + shift, unit = (values - mean) / spread, and unit and spread
    (spread = sqrt(var + NORM_EPSILON), computed without squaring the std,
    so a huge layer cannot overflow it)."""
    mean, std = mean_and_std(values)
    spread = math.hypot(std, math.sqrt(NORM_EPSILON))
    unit = [(value - mean) / spread for value in values]
    return [a * u + b for a, u, b in zip(gain, unit, shift)], unit, spread


def layer_norm_backprop(grad, unit, spread, gain):
    """Back through layer_norm: dLoss/d(values), dLoss/d(gain), dLoss/d(shift).

    With d = grad * gain (the gradient at unit), the mean and spread both
    depend on every value, which gives
      dLoss/d(value_i) = (d_i - mean(d) - unit_i * mean(d * unit)) / spread.
    """
    d_unit = list(map(mul, grad, gain))
    mean_d = exact_sum(d_unit) / len(d_unit)
    mean_d_unit = exact_sum(list(map(mul, d_unit, unit))) / len(d_unit)
    d_values = [(d - mean_d - u * mean_d_unit) / spread for d, u in zip(d_unit, unit)]
    return d_values, list(map(mul, grad, unit)), list(grad)


def dosed_forward(network, norms, inputs, activation):
    """forward_with_trace for any activation, with a layer norm between each
    hidden layer's W x + b and its activation when norms are given.

    "pre_activations" holds what goes into the activation (after the norm),
    where saturation is read; with a norm, "linear_outputs" keeps W x + b,
    and "units" and "spreads" what the norm's backprop needs.
    """
    if is_plain(activation, norms):
        return forward_with_trace(network, inputs)
    activate = ACTIVATIONS[activation]["layer"]
    keys = ["layer_inputs", "pre_activations", "post_activations"]
    keys += ["linear_outputs", "units", "spreads"] if norms else []
    trace = {key: [] for key in keys}
    signal = list(inputs)
    for layer_index, (weights, biases) in enumerate(network):
        trace["layer_inputs"].append(signal)
        pre = add_vectors(matvec(weights, signal), biases)
        if layer_index == len(network) - 1:
            post = softmax(pre)
        else:
            if norms:
                trace["linear_outputs"].append(pre)
                pre, unit, spread = layer_norm(pre, *norms[layer_index])
                trace["units"].append(unit)
                trace["spreads"].append(spread)
            post = activate(pre)
        trace["pre_activations"].append(pre)
        trace["post_activations"].append(post)
        signal = post
    return trace


def dosed_backward(network, norms, trace, target_class, activation):
    """pre_activation_gradients for any activation and layer norm.

    Returns dLoss/dz for every layer, z = W x + b (before any norm: the
    gradient the weights get), and dLoss/d(gain), dLoss/d(shift) of every
    hidden layer's norm.
    """
    if is_plain(activation, norms):
        return pre_activation_gradients(network, trace, target_class), []
    backprop = ACTIVATIONS[activation]["backprop"]
    pre_activations, post_activations = trace["pre_activations"], trace["post_activations"]
    probabilities = post_activations[-1]
    grad = [p - (1.0 if index == target_class else 0.0) for index, p in enumerate(probabilities)]
    grads, norm_grads = [grad], []
    for layer_index in range(len(network) - 1, 0, -1):
        below = layer_index - 1
        weights, _ = network[layer_index]
        every_column = range(len(pre_activations[below]))
        upstream = column_sums(weights, grad, pre_activations[layer_index], every_column)
        grad = backprop(upstream, pre_activations[below], post_activations[below])
        if norms:
            unit, spread = trace["units"][below], trace["spreads"][below]
            grad, gain_grad, shift_grad = layer_norm_backprop(grad, unit, spread, norms[below][0])
            norm_grads.append((gain_grad, shift_grad))
        grads.append(grad)
    return grads[::-1], norm_grads[::-1]


def gradient_norm(grads, trace, norm_grads):
    """The global norm of the gradient over every parameter, in O(n).

    A layer's weight gradient is the outer product g x^T (see backward),
    whose norm is |g| |x|; its bias gradient is g itself.
    """
    pieces = [math.hypot(*g) * math.hypot(*x) for g, x in zip(grads, trace["layer_inputs"])]
    pieces += [math.hypot(*g) for g in grads]
    pieces += [math.hypot(*d) for gain_and_shift in norm_grads for d in gain_and_shift]
    return math.hypot(*pieces)


def clip_factor(total_norm, max_norm):
    """Pascanu, Mikolov and Bengio (2013), as torch.nn.utils.clip_grad_norm_
    does it: scale every gradient by max_norm / (norm + 1e-6) when that is
    below 1. Scaling every gradient is scaling the step, so the SGD step
    takes learning_rate * clip_factor."""
    factor = max_norm / (total_norm + CLIP_EPSILON)
    return factor if factor < 1.0 else 1.0


def dosed_sgd_step(network, norms, trace, grads, norm_grads, step_size):
    sgd_step(network, trace, grads, step_size)
    for (gain, shift), (gain_grad, shift_grad) in zip(norms, norm_grads):
        gain[:] = [a - step_size * d for a, d in zip(gain, gain_grad)]
        shift[:] = [b - step_size * d for b, d in zip(shift, shift_grad)]


def dosed_run(patient, samples, monitor):
    """training_run with a patient's whole dosing; yields (network, report).

    Besides the lesson's init and learning rate: "activation", "norm"
    ("layer": gain 1 and shift 0 at the start, learned by SGD) and "clip"
    (a maximum gradient norm, or None). The monitor is an ExamMonitor: it
    also sees each step's size, for the update/weight ratio.
    """
    widths, activation, clip = patient["layer_widths"], patient["activation"], patient["clip"]
    network = init_network(
        widths, patient["init_mode"], patient["weight_scale_override"], patient["network_seed"]
    )
    norms = [([1.0] * w, [0.0] * w) for w in widths[1:-1]] if patient["norm"] == "layer" else []
    shuffler = random.Random(patient["network_seed"])
    order = list(range(len(samples)))
    for epoch in range(1, patient["epochs"] + 1):
        monitor.reset()
        shuffler.shuffle(order)
        losses = []
        for sample_index in order:
            inputs, target_class = samples[sample_index]
            trace = dosed_forward(network, norms, inputs, activation)
            losses.append(cross_entropy(trace["pre_activations"][-1], target_class))
            grads, norm_grads = dosed_backward(network, norms, trace, target_class, activation)
            step_size = patient["learning_rate"]
            if clip is not None:
                step_size *= clip_factor(gradient_norm(grads, trace, norm_grads), clip)
            monitor.record(trace, grads)
            monitor.record_step(network, trace, grads, step_size)
            dosed_sgd_step(network, norms, trace, grads, norm_grads, step_size)
        report = monitor.report()
        report["epoch"] = epoch
        report["loss"] = exact_sum(losses) / len(losses)
        yield network, report


# ----------------------------------------------------------------------------
# The patients

LESSON_WIDTHS = [8, 16, 16, 16, 16, 4]

# Every patient gets the lesson's data (seed 7), network seed (11) and 30
# epochs; only the dosing differs. Each disease patient shows its own disease,
# with the activation where that disease is real: ReLUs die, tanh saturates,
# and a leaky ReLU, which cannot die, keeps an explosion in view.
# fmt: off
DOSES = {  # name: init mode, weight std override, learning rate, layer widths, activation
    "healthy":   ("kaiming", None,  0.05, LESSON_WIDTHS,  "relu"),
    "sick":      ("bad",     1.0,   0.8,  LESSON_WIDTHS,  "relu"),
    "exploding": ("kaiming", None,  0.3,  LESSON_WIDTHS,  "leaky_relu"),
    "vanishing": ("bad",     0.03,  0.05, LESSON_WIDTHS,  "tanh"),
    "dead":      ("kaiming", None,  0.09, LESSON_WIDTHS,  "relu"),
    "saturated": ("bad",     2.0,   0.02, LESSON_WIDTHS,  "tanh"),
    "collapsed": ("bad",     0.006, 0.02, [8, 16, 16, 4], "tanh"),
}
# fmt: on
DIAGNOSES = {  # name: (what the label says of the dose, the disease it shows)
    "healthy": ("kaiming init, lr=0.05", "no disease: the lesson's healthy patient"),
    "sick": (
        "oversized init, lr=0.8",
        "the lesson's sick patient: saturation, dead layers, vanishing, collapse",
    ),
    "exploding": (
        "leaky ReLU, lr=0.3",
        "exploding gradients: a learning rate 6x the healthy one; leaky ReLUs cannot "
        "die, so the explosion stays in every chart",
    ),
    "vanishing": (
        "tanh, init std=0.03",
        "vanishing gradients: tanh with weights far below Xavier's; the gradient "
        "shrinks layer by layer on its way down",
    ),
    "dead": (
        "lr=0.09",
        "dying ReLUs: a learning rate 1.8x the healthy one knocks neurons off for good",
    ),
    "saturated": (
        "tanh, init std=2",
        "saturation: tanh with weights 8x Xavier's std; its inputs sit past +-6, on "
        "the flat shoulder",
    ),
    "collapsed": (
        "tanh, init std=0.006, 2 hidden layers",
        "signal collapse: tanh with weights 1/40 of Xavier's std; layer 2 gives the "
        "same output for every input",
    ),
}
PATIENTS = {
    name: dict(
        label=f"{name.upper()} ({DIAGNOSES[name][0]})",
        init_mode=init_mode,
        weight_scale_override=weight_std,
        learning_rate=learning_rate,
        layer_widths=widths,
        activation=activation,
        norm="none",
        clip=None,
        epochs=30,
        disease=DIAGNOSES[name][1],
    )
    for name, (init_mode, weight_std, learning_rate, widths, activation) in DOSES.items()
}

# ----------------------------------------------------------------------------
# The seventh reading, and the examination's warnings

# The seventh reading. Karpathy's rule of thumb (CS231n course notes, "Neural
# Networks Part 3: Learning and Evaluation"): an update should be about 1e-3
# of the size of the weights it changes. Two decades either side is far off.
UPDATE_RATIO_HIGH = 1e-1  # each step rewrites a tenth of the weights: too fast
UPDATE_RATIO_LOW = 1e-5  # the weights are effectively frozen


class ExamMonitor(TrainingMonitor):
    """The lesson's monitor for any activation, plus the seventh reading.

    record_step() is told every SGD step before it is taken; for each hidden
    layer it divides the std of the step's update of the weights feeding that
    layer by the std of those weights before the step. The report gives each
    layer's epoch mean of that ratio. Two stopwatches keep the time spent in
    the lesson's six readings and in the seventh, so that training time can
    be told apart from examination time.
    """

    def __init__(self, layer_widths, activation="relu"):
        self.histogram_edges = ACTIVATIONS[activation]["edges"]
        self.not_applicable = ACTIVATIONS[activation]["not_applicable"]
        self.lesson_seconds = 0.0
        self.ratio_seconds = 0.0
        super().__init__(layer_widths)

    def reset(self):
        super().reset()
        hidden = self.num_hidden_layers
        self.ratio_sum_per_layer = [0.0] * hidden
        self.ratio_count_per_layer = [0] * hidden
        # (sum, sum of squares) of the weights feeding each hidden layer:
        # summed in full at the epoch's first step, then carried from step to
        # step by the step's own algebra (see record_step).
        self.weight_sums = [None] * hidden

    def record(self, trace, pre_activation_grads):
        start = perf_counter()
        super().record(trace, pre_activation_grads)
        self.lesson_seconds += perf_counter() - start

    def record_step(self, network, trace, pre_activation_grads, step_size):
        """Add this step's update/weight ratio of every hidden layer. A step
        whose weights have no finite spread left has no ratio and is skipped."""
        start = perf_counter()
        # z = W x + b of each hidden layer (before any layer norm).
        linear = trace.get("linear_outputs", trace["pre_activations"])
        for index in range(self.num_hidden_layers):
            weights, biases = network[index]
            grad, layer_input = pre_activation_grads[index], trace["layer_inputs"][index]
            if len(grad) * len(layer_input) < 2:
                continue  # one weight has no spread: its ratio means nothing
            if self.weight_sums[index] is None:
                self.weight_sums[index] = matrix_sums(weights)
            total, squares = self.weight_sums[index]
            count = len(grad) * len(layer_input)
            # The step moves W by -step * dW, dW = grad x^T (see backward).
            gradient_total, gradient_squares = outer_product_sums(grad, layer_input)
            step_total = step_size * gradient_total
            step_squares = step_size * step_size * gradient_squares
            weight_std = std_from_sums(total, squares, count)
            ratio = (
                std_from_sums(step_total, step_squares, count) / weight_std
                if weight_std
                else math.nan
            )
            if not math.isnan(ratio):
                self.ratio_sum_per_layer[index] += ratio
                self.ratio_count_per_layer[index] += 1
            # The sums of W - step * dW follow: the squares change by
            # -2 step <W, dW> + step^2 |dW|^2, and <W, dW> = grad . (W x), where
            # W x = z - b is already in the trace.
            cross = step_size * exact_sum(list(map(mul, grad, map(sub, linear[index], biases))))
            new_squares = squares - 2.0 * cross + step_squares
            # A step that cancels most of the weights leaves a difference with
            # few correct digits: then sum them in full again at the next step.
            carried = new_squares > 1e-6 * (squares + step_squares)
            self.weight_sums[index] = (total - step_total, new_squares) if carried else None
        self.ratio_seconds += perf_counter() - start

    def report(self):
        """The lesson's report, n/a (NaN) where a reading has no meaning for
        the activation, plus "update_ratio": each layer's arithmetic mean over
        the epoch's steps. The arithmetic mean is dominated by its largest
        terms, so one step that rewrites the weights shows in it."""
        start = perf_counter()
        report = super().report()
        for key in self.not_applicable:
            report[key] = [math.nan] * self.num_hidden_layers
        report["update_ratio"] = [
            total / count if count else math.nan
            for total, count in zip(self.ratio_sum_per_layer, self.ratio_count_per_layer)
        ]
        self.lesson_seconds += perf_counter() - start
        return report


def matrix_sums(weights):
    """(sum, sum of squares) of every entry of a matrix, row by row in C."""
    total = exact_sum([exact_sum(row) for row in weights])
    norm = math.hypot(*[math.hypot(*row) for row in weights])
    return total, norm * norm  # a huge norm squares to inf, where ** 2 would raise


def std_from_sums(total, squares, count):
    """The std of count numbers from their sum and their sum of squares."""
    mean = total / count
    # Rounding can leave a zero variance a hair below 0; NaN passes max().
    return math.sqrt(max(squares / count - mean * mean, 0.0))


def outer_product_sums(column, row):
    """(sum, sum of squares) of the entries of the matrix column * row^T, in
    O(n) instead of O(n^2): entry (i, j) is c_i r_j, so the entries sum to
    sum(c) sum(r), and their squares to |c|^2 |r|^2 (math.hypot is |c|)."""
    norm = math.hypot(*column) * math.hypot(*row)
    return exact_sum(column) * exact_sum(row), norm * norm  # inf where ** 2 would raise


def flag_update_ratio(report):
    warnings = []
    for layer_index, ratio in enumerate(report.get("update_ratio", [])):
        if ratio > UPDATE_RATIO_HIGH:
            warnings.append(f"Layer {layer_index + 1}: update/weight ratio {ratio:.2e} (too large)")
        elif ratio < UPDATE_RATIO_LOW:
            warnings.append(f"Layer {layer_index + 1}: update/weight ratio {ratio:.2e} (too small)")
    return warnings


# The words that mark each kind of warning, in flag_issues' and
# flag_update_ratio's own wording.
WARNING_KINDS = {
    "dead neurons": "dead neurons",
    "vanishing gradients": "(vanishing)",
    "exploding gradients": "(exploding)",
    "saturation": "saturating",
    "signal collapse": "(signal collapse)",
    "non-finite values": "non-finite value",
    "update too large": "(too large)",
    "update too small": "(too small)",
}
# Below this loss the network has fit its data, and its gradients and steps
# are small by nature: the lesson's fixed thresholds would call that calm
# "vanishing" and "too small", so the examination does not count them then.
FITTED_LOSS = 0.01
CALM_WHEN_FITTED = ("vanishing gradients", "update too small")


def all_warnings(report):
    """flag_issues' warnings and the seventh reading's, ordered by layer, but
    the calm of a fitted network (see FITTED_LOSS)."""
    warnings = every_warning(report)
    if report["loss"] < FITTED_LOSS:
        warnings = [w for w in warnings if warning_kind(w) not in CALM_WHEN_FITTED]
    return warnings


def every_warning(report):
    return sorted(flag_issues(report) + flag_update_ratio(report), key=warning_layer)


def fitted_calm(report):
    """The warnings all_warnings leaves out as a fitted network's calm."""
    counted = all_warnings(report)
    return [warning for warning in every_warning(report) if warning not in counted]


def warning_kind(warning):
    return next(kind for kind, words in WARNING_KINDS.items() if words in warning)


def warning_layer(warning):
    """The layer number a warning names: "Layer 3: ..." -> 3."""
    return int(warning.split(":")[0].split()[1])


def update_ratio_lines(report):
    ratios = "  ".join(
        f"{index + 1}: {readable(ratio, '.1e')}"
        for index, ratio in enumerate(report["update_ratio"])
    )
    return [f"update/weight ratio per layer (rule of thumb ~1e-3): {ratios}"]


# ----------------------------------------------------------------------------
# The chart over time: trend lines and a histogram heatmap, one column per epoch

SPARK_LEVELS = {"unicode": "▁▂▃▄▅▆▇█", "ascii": ".:-=+*#@"}
SHADE_LEVELS = {"unicode": " ░▒▓█", "ascii": " .:*#"}
ZERO_MARK, NONFINITE_MARK = "_", "!"


def sparkline(values, low, high, log_scale, charset):
    """One character per value, from the lowest level (at low) to the highest (at high).

    An exact zero prints ZERO_MARK (a log scale has no place for it); NaN or
    inf prints NONFINITE_MARK.
    """
    levels = SPARK_LEVELS[charset]
    marks = []
    for value in values:
        if not math.isfinite(value):
            marks.append(NONFINITE_MARK)
        elif log_scale and value <= 0.0:
            marks.append(ZERO_MARK)
        else:
            position = scale_position(value, low, high, log_scale)
            marks.append(levels[min(int(position * len(levels)), len(levels) - 1)])
    return "".join(marks)


def scale_position(value, low, high, log_scale):
    """Where value sits between low and high, from 0 to 1."""
    if log_scale:
        value, low, high = math.log10(value), math.log10(low), math.log10(high)
    return 0.0 if high <= low else min(max((value - low) / (high - low), 0.0), 1.0)


TRENDS = (
    # report key, title, log scale, per-neuron share (dead count / width)
    ("activation_std", "activation std", True, False),
    ("gradient_std", "gradient std", True, False),
    ("dead_count", "dead share", False, True),
    ("saturation_rate", "saturation share", False, False),
    ("update_ratio", "update/weight ratio", True, False),
)


def trend_lines(reports, charset, not_applicable=()):
    """Each reading of each layer across the epochs, one character per epoch
    (but the readings not_applicable to the activation).

    Log-scaled readings share one scale across the layers, from the smallest
    to the largest positive value of the run; shares run from 0 to 1.
    """
    lines = [
        f"trends over {plural(len(reports), 'epoch')} (one column per epoch; "
        f"{ZERO_MARK} = exactly 0, {NONFINITE_MARK} = NaN/inf):"
    ]
    layer_count = len(reports[0]["activation_std"])
    for key, title, log_scale, per_neuron in TRENDS:
        if key in not_applicable:
            continue
        rows = [[report[key][layer] for report in reports] for layer in range(layer_count)]
        if per_neuron:
            widths = reports[0]["layer_neuron_count"]
            rows = [[count / width for count in row] for row, width in zip(rows, widths)]
        if log_scale:
            positive = [v for row in rows for v in row if math.isfinite(v) and v > 0.0]
            low, high = (min(positive), max(positive)) if positive else (1.0, 1.0)
            span = f"{low:.1e} .. {high:.1e}" if positive else "no finite value above 0"
            lines.append(f"  {title} (log scale, {span})")
        else:
            low, high = 0.0, 1.0
            lines.append(f"  {title} (0 .. 1)")
        for layer, row in enumerate(rows):
            lines.append(
                f"    layer {layer + 1:>2} {sparkline(row, low, high, log_scale, charset)}"
            )
    return lines


def histogram_heatmap(reports, charset, labels=HISTOGRAM_LABELS):
    """The activation histogram over time, like fastai's 'colorful dimension'
    plot: per layer one row per bucket (largest values on top), one column per
    epoch, darker = larger share. Buckets never used in the run are left out."""
    shades = SHADE_LEVELS[charset]
    layer_count = len(reports[0]["histogram"])
    used = [
        any(r["histogram"][layer][bucket] for r in reports for layer in range(layer_count))
        for bucket in range(len(labels))
    ]
    label_width = max(map(len, labels))
    lines = [f"activation histogram over time (darker = larger share: '{shades[1:]}'):"]
    for layer in range(layer_count):
        lines.append(f"  layer {layer + 1}")
        epoch_shares = [bucket_shares(report["histogram"][layer]) for report in reports]
        for bucket in reversed(range(len(labels))):
            if not used[bucket]:
                continue
            # Any share above zero gets at least the lightest shade.
            cells = [
                shades[math.ceil(shares[bucket] * (len(shades) - 1))] for shares in epoch_shares
            ]
            lines.append(f"    {labels[bucket]:>{label_width}} |{''.join(cells)}|")
    return lines


# ----------------------------------------------------------------------------
# The verdict: when did the chart first see the disease?


def verdict(reports):
    """One line: whether and when the run diverged, and the first epoch with a
    warning, the loss then (beside the loss at epoch 1: had the loss curve
    noticed?) and where its diseases start; or that no warning was raised."""
    warned = next((report for report in reports if all_warnings(report)), None)
    if warned is None:
        last = reports[-1]
        final_loss = format_loss(last["loss"])
        return f"verdict: no warning in {plural(last['epoch'], 'epoch')}; final loss {final_loss}."
    warnings = all_warnings(warned)
    since = f" (epoch 1: {format_loss(reports[0]['loss'])})" if warned["epoch"] > 1 else ""
    line = (
        f"first warning at epoch {warned['epoch']}, loss then {format_loss(warned['loss'])}"
        f"{since}: {first_of(warnings)}."
    )
    line = " ".join([line, *origins(warned, warnings)])
    diverged = next((report for report in reports if diverged_in(report)), None)
    if diverged:
        nonfinite = sum(diverged["nonfinite_count"])
        signs = [f"loss {format_loss(diverged['loss'])}"]
        if nonfinite:
            signs.insert(0, f"{plural(nonfinite, 'non-finite value')} in the hidden layers")
        line = f"training diverged at epoch {diverged['epoch']} ({', '.join(signs)}); {line}"
    return f"verdict: {line}"


def first_of(warnings):
    """The first warning, and how many more: "Layer 1: ... (+2 more warnings)"."""
    others = len(warnings) - 1
    return warnings[0] + (f" (+{plural(others, 'more warning')})" if others else "")


# A forward disease is carried up by the activations, so it starts at the
# lowest layer showing it; a backward one is carried down by the gradients,
# so it starts at the top and is worst at layer 1.
FORWARD_DISEASES = ("dead neurons", "saturation", "signal collapse")
BACKWARD_DISEASES = ("vanishing gradients", "exploding gradients")


def origins(report, warnings):
    """Where each family of disease in these warnings starts, in words."""
    kinds = {warning_kind(warning) for warning in warnings}
    sentences = []
    forward = [kind for kind in FORWARD_DISEASES if kind in kinds]
    if forward:
        lowest = min(warning_layer(w) for w in warnings if warning_kind(w) in forward)
        many = len(forward) > 1 or forward[0].endswith("s")
        sentences.append(
            f"{' and '.join(forward).capitalize()} "
            + ("travel forward: they start" if many else "travels forward: it starts")
            + f" at layer {lowest}, the lowest layer showing {'them' if many else 'it'}."
        )
    backward = [kind for kind in BACKWARD_DISEASES if kind in kinds]
    top, bottom = report["gradient_std"][-1], report["gradient_std"][0]
    # A backward disease builds up on its way down, and only then is the top
    # its origin: vanishing gradients shrink toward layer 1, exploding ones grow.
    built_up = {"vanishing gradients": bottom < top, "exploding gradients": bottom > top}
    if len(backward) == 1 and len(report["gradient_std"]) > 1 and built_up[backward[0]]:
        sentences.append(
            f"{backward[0].capitalize()} travel backward, from the top: the gradient std "
            f"{change(top, bottom)} from layer {len(report['gradient_std'])} down to layer 1."
        )
    return sentences


def change(start, end):
    """How a positive reading changes from start to end, in words:
    'shrinks 18x', 'grows 2.5x', 'falls to 0'."""
    if not (math.isfinite(start) and math.isfinite(end)) or start <= 0.0 or end < 0.0:
        return "cannot be compared (n/a)"
    if end == 0.0:
        return "falls to 0"
    if start >= end:
        return f"shrinks {start / end:.3g}x"
    return f"grows {end / start:.3g}x"


def diverged_in(report):
    return sum(report["nonfinite_count"]) > 0 or not math.isfinite(report["loss"])


# ----------------------------------------------------------------------------
# One full examination


def examine(patient, samples, report_every, halt_on_warning=False, charset="unicode", timing=False):
    """Train one patient under the ExamMonitor and print its charts: every
    report_every epochs, at the first sign of disease (the first epoch with a
    warning) and at the last; then trends, heatmap and the verdict. Returns
    the reports."""
    label, widths = patient["label"], patient["layer_widths"]
    labels = ACTIVATIONS[patient["activation"]]["labels"]
    monitor = ExamMonitor(widths, patient["activation"])
    reports = []
    busy = 0.0
    tick = perf_counter()
    for _, report in dosed_run(patient, samples, monitor):
        busy += perf_counter() - tick
        warnings = all_warnings(report)
        first_sign = bool(warnings) and not any(map(all_warnings, reports))
        reports.append(report)
        halting = halt_on_warning and bool(warnings)
        last = halting or report["epoch"] == patient["epochs"]
        if report["epoch"] % report_every == 0 or last or first_sign:
            lines = chart_lines(label, report, show_histogram=last, labels=labels)
            if first_sign:
                lines.insert(1, "first sign: the first epoch with a warning")
            lines += update_ratio_lines(report) + warning_lines(warnings)
            calm = fitted_calm(report)
            if calm:
                lines.append(
                    f"(not counted: {plural(len(calm), 'warning')} of small gradients or steps; "
                    f"with the loss below {FITTED_LOSS:g} the network has fit its data)"
                )
            print("\n".join(lines) + "\n")
        if halting:
            print(f"halted at epoch {report['epoch']}: the first warning stops the visit.\n")
            break
        tick = perf_counter()
    print(
        "\n".join(
            trend_lines(reports, charset, ACTIVATIONS[patient["activation"]]["not_applicable"])
        )
    )
    print("\n".join(histogram_heatmap(reports, charset, labels)))
    print(verdict(reports))
    if timing:
        print(timing_line(busy, monitor))
    print()
    return reports


def timing_line(busy, monitor):
    training = busy - monitor.lesson_seconds - monitor.ratio_seconds
    return (
        f"timing: training {training:.2f}s; the lesson's six readings {monitor.lesson_seconds:.2f}s"
        f" ({100.0 * monitor.lesson_seconds / training:.0f}% of training); the update/weight "
        f"ratio {monitor.ratio_seconds:.2f}s ({100.0 * monitor.ratio_seconds / training:.0f}%)"
    )


# ----------------------------------------------------------------------------
# The doctor's other half: prescribe a treatment, apply it, prove the cure

# Cured: the last epoch trips no warning and the final loss is below CURED_LOSS.
CURED_LOSS = 0.1
TREATMENT_ROUNDS = 3  # prescribe again while it is not well, at most this often
TREATMENTS_PER_ROUND = 2  # the least change that answers the warnings
# Fewer epochs cannot tell a slow start from a patient that makes no progress.
TREAT_MIN_EPOCHS = 10


# The prescription table. prescribe reads a run's first sign of disease (its
# first epoch with a warning: later warnings are most often that disease's
# aftermath) and, for each kind of warning there, goes down that kind's rows:
# the first row whose condition holds and whose treatment the dosing has not
# had (or tried) yet is given. When nothing answers the first sign, it reads
# the last epoch's warnings, and then "no progress": a final loss not below
# CURED_LOSS.
# fmt: off
PRESCRIPTIONS = (
    # kind of warning        condition           treatment
    ("non-finite values",    "init too large",   "the activation's init"),
    ("non-finite values",    "always",           "steady learning rate"),
    ("exploding gradients",  "init too large",   "the activation's init"),
    ("exploding gradients",  "fast steps",       "steady learning rate"),
    ("exploding gradients",  "always",           "gradient clipping"),
    ("update too large",     "always",           "steady learning rate"),
    ("saturation",           "init too large",   "the activation's init"),
    ("saturation",           "fast steps",       "steady learning rate"),
    ("saturation",           "always",           "layer norm"),
    ("dead neurons",         "init off by 2x",   "the activation's init"),
    ("dead neurons",         "fast steps",       "steady learning rate"),
    ("dead neurons",         "ReLU",             "leaky ReLU"),
    ("dead neurons",         "always",           "layer norm"),
    ("signal collapse",      "init too small",   "the activation's init"),
    ("signal collapse",      "fast steps",       "steady learning rate"),
    ("signal collapse",      "always",           "layer norm"),
    ("vanishing gradients",  "init too small",   "the activation's init"),
    ("vanishing gradients",  "always",           "layer norm"),
    ("update too small",     "slow steps",       "steady learning rate"),
    ("no progress",          "init off by 2x",   "the activation's init"),
    ("no progress",          "always",           "steady learning rate"),
    ("no progress",          "always",           "learning rate x 2"),
    ("no progress",          "always",           "learning rate x 0.5"),
    ("no progress",          "always",           "layer norm"),
)
# fmt: on
# Within each family one kind speaks for the rest, the first listed: an
# explosion saturates, a collapse starves the updates.
FAMILIES = (
    ("non-finite values", "exploding gradients", "update too large", "saturation"),
    ("dead neurons",),
    ("signal collapse", "vanishing gradients", "update too small", "no progress"),
)
RECOMMENDED_INIT = {"relu": "kaiming", "leaky_relu": "kaiming", "tanh": "xavier"}
# The learning rate is titrated by its effect, the update/weight ratio:
# toward an epoch-1 ratio (the largest layer's) of STEADY_STEPS, a value
# chosen on the tuning seeds of tests/cure_rate.py. Karpathy's ~1e-3 is for a
# minibatch step; ours see one sample each and move more (the healthy
# patient reads 2.0e-2).
STEADY_STEPS = 7e-3
STEADY_BAND = 2.0  # within this factor of STEADY_STEPS the steps are steady
LR_NUDGE = 2.0  # a round that moves the learning rate moves it at least 2x...
LR_FACTOR_LIMIT = 30.0  # ...and at most 30x
CLIP_NORM = 1.0  # Pascanu et al. clip at a norm near the gradients' usual size


def init_scale(dosing):
    """The dosing's weight std over the one its activation should have (their
    geometric mean over the layers): above 1 too large, below 1 too small."""
    best = RECOMMENDED_INIT[dosing["activation"]]
    logs = [
        math.log(
            init_std(fan_in, fan_out, dosing["init_mode"], dosing["weight_scale_override"])
            / init_std(fan_in, fan_out, best, None)
        )
        for fan_in, fan_out in pairwise(dosing["layer_widths"])
    ]
    return math.exp(exact_sum(logs) / len(logs))


def steady_factor(reports, nudge=1.0):
    """What the learning rate should be multiplied by for steady steps: at
    least nudge times up or down, at most LR_FACTOR_LIMIT times."""
    # The largest layer's epoch-1 ratio; with none (weights without a finite
    # spread) the steps have blown up: as if it were inf.
    steps = max((r for r in reports[0]["update_ratio"] if not math.isnan(r)), default=math.inf)
    factor = STEADY_STEPS / steps if steps else math.inf
    factor = max(factor, nudge) if factor >= 1.0 else min(factor, 1.0 / nudge)
    return min(max(factor, 1.0 / LR_FACTOR_LIMIT), LR_FACTOR_LIMIT)


CONDITIONS = {  # condition: whether it holds for a dosing and its run's reports
    "always": lambda dosing, reports: True,
    "init too large": lambda dosing, reports: init_scale(dosing) > 1.1,
    "init too small": lambda dosing, reports: init_scale(dosing) < 0.9,
    "init off by 2x": lambda dosing, reports: not 0.5 < init_scale(dosing) < 2.0,
    "fast steps": lambda dosing, reports: steady_factor(reports) < 1.0 / STEADY_BAND,
    "slow steps": lambda dosing, reports: steady_factor(reports) > STEADY_BAND,
    "ReLU": lambda dosing, reports: dosing["activation"] == "relu",
}
INIT_SOURCES = {"kaiming": "He et al. 2015", "xavier": "Glorot and Bengio 2010"}


def recommended_init(dosing, reports):
    init = RECOMMENDED_INIT[dosing["activation"]]
    return f"{init} init", {"init_mode": init, "weight_scale_override": None}, INIT_SOURCES[init]


def scaled_learning_rate(factor):
    def treatment(dosing, reports):
        change = {"learning_rate": dosing["learning_rate"] * factor}
        return f"learning rate x {factor:g}", change, "Bengio 2012"

    return treatment


def steady_learning_rate(dosing, reports):
    factor = steady_factor(reports, LR_NUDGE)
    change = {"learning_rate": dosing["learning_rate"] * factor}
    return f"learning rate x {factor:.2g}", change, "Karpathy, CS231n notes"


TREATMENTS = {  # treatment: (dosing, reports) -> (its name, its change to the dosing, its source)
    "the activation's init": recommended_init,
    "steady learning rate": steady_learning_rate,
    "learning rate x 2": scaled_learning_rate(2.0),
    "learning rate x 0.5": scaled_learning_rate(0.5),
    "gradient clipping": lambda dosing, reports: (
        f"gradient clipping at {CLIP_NORM:g}",
        {"clip": CLIP_NORM},
        "Pascanu et al. 2013",
    ),
    "layer norm": lambda dosing, reports: (
        "layer norm",
        {"norm": "layer"},
        "Ba, Kiros and Hinton 2016",
    ),
    "leaky ReLU": lambda dosing, reports: (
        "leaky ReLU",
        {"activation": "leaky_relu"},
        "Maas, Hannun and Ng 2013",
    ),
}


def prescribe(reports, dosing, tried=()):
    """At most TREATMENTS_PER_ROUND treatments for a run's first sign of
    disease, by the PRESCRIPTIONS table: a list of dicts with the treatment's
    "name", its "dosing" change and the "reason" (the warning it answers and
    the remedy's source). When the table has nothing left for the first sign,
    it answers the last epoch's warnings, then "no progress" (a final loss
    not below CURED_LOSS). A treatment that would give a dosing in tried (the
    ones already examined) is passed over like one already given. Reads the
    reports and the dosing, never the name."""
    first = next((report for report in reports if all_warnings(report)), None)
    last = reports[-1]
    signs = [
        (f"at epoch {report['epoch']}", {warning_kind(w) for w in all_warnings(report)})
        for report in (first, last)
        if report is not None and all_warnings(report)
    ]
    if not last["loss"] < CURED_LOSS:  # NaN too
        signs.append((f"in {last['epoch']} epochs", {"no progress"}))
    for where, kinds in signs:
        prescription = answer(kinds, where, reports, dosing, tried)
        if prescription:
            return prescription
    return []


def answer(kinds, where, reports, dosing, tried):
    """The treatments for one sign's kinds of warning: for each family, its
    most urgent kind's first row that holds and is neither given nor tried."""
    prescription = []
    for family in FAMILIES:
        kind = next((kind for kind in family if kind in kinds), None)
        if kind is None or len(prescription) == TREATMENTS_PER_ROUND:
            continue
        for row_kind, condition, treatment in PRESCRIPTIONS:
            if row_kind != kind or not CONDITIONS[condition](dosing, reports):
                continue
            name, change, source = TREATMENTS[treatment](dosing, reports)
            if all(dosing[key] == value for key, value in change.items()):
                continue  # already given
            if any(same_dosing({**dosing, **change}, other) for other in tried):
                continue  # examined in an earlier round: never twice
            if not any(key in given["dosing"] for given in prescription for key in change):
                prescription.append(
                    dict(name=name, dosing=change, reason=f"answers {kind} {where} ({source})")
                )
            break
    return prescription


DOSING_KEYS = ("init_mode", "weight_scale_override", "learning_rate", "activation", "norm", "clip")


def same_dosing(one, other):
    return all(one[key] == other[key] for key in DOSING_KEYS)


def set_back(treated, before):
    """Whether a treatment left a run worse than before: before, the last
    epoch warned nothing; after, the final loss is no lower."""
    return not all_warnings(before[-1]) and not treated[-1]["loss"] < before[-1]["loss"]


def is_well(reports):
    """The cure's definition: the last epoch trips no warning and the final
    loss is below CURED_LOSS."""
    return not all_warnings(reports[-1]) and reports[-1]["loss"] < CURED_LOSS


def apply_treatments(patient, prescription):
    """The patient with its dosing changed as prescribed; the task (data,
    widths, epochs, seeds) stays the same."""
    treated = dict(patient)
    for treatment in prescription:
        treated.update(treatment["dosing"])
    treated["label"] = f"{patient['patient'].upper()} ({describe_dosing(treated)})"
    return treated


def treat(patient, samples, report_every, charset="unicode", quiet=False):
    """Examine the patient; while it is not well (see is_well), prescribe
    from its chart, apply the prescription to the same patient and examine
    again, up to TREATMENT_ROUNDS rounds. Ends with the before/after
    comparison and one outcome line; quiet, it trains and prints nothing.
    Returns every round: (dosing, treatments given so far, reports)."""

    def examined(dosing):
        if quiet:
            monitor = ExamMonitor(dosing["layer_widths"], dosing["activation"])
            return [report for _, report in dosed_run(dosing, samples, monitor)]
        return examine(dosing, samples, report_every, charset=charset)

    reports = examined(patient)
    rounds = [(patient, [], reports)]
    base = rounds[0]  # the round the next prescription starts from
    while not is_well(reports) and len(rounds) <= TREATMENT_ROUNDS:
        dosing, given, base_reports = base
        prescription = prescribe(base_reports, dosing, [tried for tried, _, _ in rounds])
        if not prescription:
            break
        if not quiet:
            print(f"prescription, round {len(rounds)}:")
            print("\n".join(f"- {t['name']}: {t['reason']}" for t in prescription) + "\n")
        patient = apply_treatments(dosing, prescription)
        reports = examined(patient)
        rounds.append((patient, given + [t["name"] for t in prescription], reports))
        if not set_back(reports, base_reports):
            base = rounds[-1]
        elif not quiet:
            print(f"round {len(rounds) - 1} left the patient worse: its treatments are withdrawn\n")
    if not quiet:
        if base is not rounds[0]:
            print("\n".join(comparison_lines(rounds[0], base)))
        print(outcome(rounds, base) + "\n")
    return rounds


def comparison_lines(before, after):
    """Untreated beside treated, each layer's readings at the last epoch:
    before -> after, each column as wide as its widest cell."""
    (_, _, untreated), (patient, treatments, treated) = before, after
    first, last = untreated[-1], treated[-1]
    header = ["layer", "act std", "grad std", "dead", "sat %"]
    rows = [
        [str(index + 1)]
        + [
            f"{old} -> {new}"
            for old, new in zip(*(layer_cells(report, index) for report in (first, last)))
        ]
        for index in range(len(last["activation_std"]))
    ]
    widths = [max(map(len, column)) for column in zip(header, *rows)]
    return [
        f"=== before and after treatment | epoch {last['epoch']} ===",
        f"untreated: {describe_dosing(before[0])}",
        f"treated:   {describe_dosing(patient)} ({', '.join(treatments)})",
        f"loss: {format_loss(first['loss'])} -> {format_loss(last['loss'])}",
        *(" | ".join(f"{cell:>{w}}" for cell, w in zip(row, widths)) for row in [header, *rows]),
    ]


def layer_cells(report, index):
    """One layer's act std, grad std, dead and sat % as the chart prints them."""
    return (
        format_activation(report["activation_std"][index]),
        readable(report["gradient_std"][index], ".2e"),
        dead_text(report, index),
        readable(report["saturation_rate"][index], ".0%"),
    )


def outcome(rounds, final):
    """The one line that ends a treatment: healthy, cured or not cured. The
    patient ends on final, the last round whose treatments were kept."""
    (_, _, untreated), (_, treatments, reports) = rounds[0], final
    final_loss = format_loss(reports[-1]["loss"])
    if len(rounds) == 1 and is_well(reports):
        warned = sum(1 for report in reports if all_warnings(report))
        note = f" (it warned in {plural(warned, 'epoch')}, none at the last)" if warned else ""
        return f"outcome: healthy: nothing to treat{note}; final loss {final_loss}."
    loss = f"loss {format_loss(untreated[-1]['loss'])} before, {final_loss} after"
    if is_well(reports):
        after = plural(len(rounds) - 1, "round")
        return f"outcome: cured after {after} ({', '.join(treatments)}); {loss}."
    warnings = all_warnings(reports[-1])
    if warnings:
        still = f"still warns: {first_of(warnings)}"
    else:
        still = f"no warning, but the final loss is not below {CURED_LOSS:g}"
    if len(rounds) == 1:
        return f"outcome: not cured: nothing in the prescription table answers it; {still}."
    after = plural(len(rounds) - 1, "round")
    kept = ", ".join(treatments) or "every treatment withdrawn"
    return f"outcome: not cured after {after} ({kept}); {still}; {loss}."


# ----------------------------------------------------------------------------
# Seeds or dose? The same patient over many seed pairs


def seed_range(first, count):
    return f"seed {first}" if count == 1 else f"seeds {first}..{first + count - 1}"


def first_signs(run):
    """Train one run without charts: (the first epoch of each kind of warning
    it gave, its final loss)."""
    widths = run["layer_widths"]
    samples = make_training_data(run["sample_count"], widths[0], widths[-1], run["data_seed"])
    first = {}
    for _, report in dosed_run(run, samples, ExamMonitor(widths, run["activation"])):
        for warning in all_warnings(report):
            first.setdefault(warning_kind(warning), report["epoch"])
    return first, report["loss"]


def leave_signals_to_parent():
    """In a worker: ignore Ctrl-C and the terminal's hangup, and die at once
    on SIGTERM, the signal the parent stops its workers with."""
    for stop_signal in [signal.SIGINT, *STOP_SIGNALS]:
        signal.signal(stop_signal, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def seed_summary(patient, seed_count):
    """Train the patient on seed_count seed pairs, pair k being its data and
    network seeds plus k, without charts. Returns the summary's lines: per
    warning kind, on how many runs it fired and the median epoch it first
    did; the median final loss; and how many runs never warned."""
    runs = [
        dict(patient, data_seed=patient["data_seed"] + k, network_seed=patient["network_seed"] + k)
        for k in range(seed_count)
    ]
    # The seed pairs are independent: train them on every core at once, one
    # run at a time so the cores stay evenly busy. The workers leave Ctrl-C to
    # this process, which stops them all on leaving. (Imported here: only
    # --seeds needs it, and importing it costs every run about 1% of its time.)
    import multiprocessing

    workers = min(seed_count, os.cpu_count() or 1)
    with multiprocessing.Pool(workers, initializer=leave_signals_to_parent) as pool:
        results = pool.map(first_signs, runs, chunksize=1)
    first_epochs = {
        kind: [first[kind] for first, _ in results if kind in first] for kind in WARNING_KINDS
    }
    final_losses = [loss for _, loss in results]
    silent = sum(not first for first, _ in results)
    data_seeds = seed_range(patient["data_seed"], seed_count)
    network_seeds = seed_range(patient["network_seed"], seed_count)
    lines = [
        f"=== {patient['label']} | {plural(seed_count, 'seed pair')}: data "
        f"{data_seeds}, network {network_seeds} ==="
    ]
    fired = {kind: epochs for kind, epochs in first_epochs.items() if epochs}
    if fired:
        lines.append("warning kind        |  runs | median first epoch")
    for kind, epochs in fired.items():
        fired_on = f"{len(epochs)}/{seed_count}"
        lines.append(f"{kind:<19} | {fired_on:>5} | {statistics.median(epochs):g}")
    # NaN has no place in an order (median() of it depends on where it
    # stands): the runs whose loss became NaN are counted apart.
    ordered = [loss for loss in final_losses if not math.isnan(loss)]
    median = format_loss(statistics.median(ordered)) if ordered else "n/a"
    nan_runs = len(final_losses) - len(ordered)
    lost = f" ({plural(nan_runs, 'run')} ended with a NaN loss)" if nan_runs else ""
    lines.append(f"median final loss: {median}{lost}")
    lines.append(f"no warning: {silent} of {plural(seed_count, 'seed pair')}")
    return lines


# ----------------------------------------------------------------------------
# The founding experiments: Glorot and Bengio (2010), He et al. (2015)
#
# Both papers start from one fact: a layer z = W x with fan_in inputs and
# weights of variance Var(W), drawn independently of x, gives
#   Var(z) = fan_in * Var(W) * E[x^2].
# In tanh's linear regime E[x^2] = Var(z below); after a ReLU only the positive
# half passes, so E[x^2] = Var(z below) / 2. Gradients flow back the same way,
# through fan_out instead of fan_in. Each layer thus multiplies the variance by
# fan * Var(W) (halved for ReLU): below 1 the signal dies out layer by layer,
# above 1 it explodes.

LINEAR_REGIME_GAIN = {"tanh": 1.0, "relu": 0.5}  # E[x^2] / Var(z below)
LEARNS_BELOW = 0.9  # "learns": the final loss is under 90% of chance, ln(classes)

EXPERIMENTS = {
    "glorot-bengio": dict(
        title="Glorot and Bengio (2010): a 5-layer tanh network at initialization",
        activation="tanh",
        layer_widths=[32] * 6 + [4],  # 32 features, 5 hidden layers of 32, 4 classes
        sample_count=200,
        inits=("standard", "xavier"),
        epochs=0,
        learning_rate=None,
        paper="Glorot and Bengio (2010), Sec. 4.2: with the standard initialization, "
        "activations shrink from layer to layer going up and back-propagated gradients "
        "shrink going down; their normalized (Xavier) initialization keeps both about "
        "the same at every layer.",
    ),
    "he": dict(
        title="He et al. (2015): a 30-layer ReLU network, Xavier against Kaiming",
        activation="relu",
        layer_widths=[8] + [16] * 30 + [4],  # the toy task, 30 hidden layers of 16
        sample_count=80,
        inits=("xavier", "kaiming"),
        epochs=10,
        learning_rate=0.005,
        paper="He et al. (2015), Sec. 2.2 and Fig. 3: a 30-layer ReLU network with Xavier "
        "initialization stalls and does not learn; with their initialization it converges.",
    ),
}


def measure_at_init(experiment, init_mode, samples, network_seed):
    """Forward and backward every sample through a fresh network, without a
    step. Returns the lesson's report of the readings, each hidden layer's
    pre-activation std, and the theory's prediction of both stds."""
    widths, activation = experiment["layer_widths"], experiment["activation"]
    network = init_network(widths, init_mode, None, network_seed)
    monitor = TrainingMonitor(widths)
    output_grads = []
    for inputs, target_class in samples:
        trace = dosed_forward(network, [], inputs, activation)
        grads, _ = dosed_backward(network, [], trace, target_class, activation)
        monitor.record(trace, grads)
        output_grads += grads[-1]
    report = monitor.report()
    pre_stds = [mean_and_std(finite(pre))[1] for pre in monitor.pre_activations_per_layer]
    inputs = [value for features, _ in samples for value in features]
    predicted_pre, predicted_grad = predicted_stds(
        experiment,
        init_mode,
        mean_square(inputs),
        pre_stds,
        report["gradient_std"],
        mean_square(output_grads),
    )
    return report, pre_stds, predicted_pre, predicted_grad


def mean_square(values):
    return exact_sum([value * value for value in values]) / len(values)


def predicted_stds(experiment, init_mode, input_mean_square, pre_stds, grad_stds, top_mean_square):
    """What the variance law predicts for each hidden layer, one layer at a
    time from the measured layer before it (below for the forward pass, above
    for the gradients), so that every row tests the law on its own."""
    widths = experiment["layer_widths"]
    gain = LINEAR_REGIME_GAIN[experiment["activation"]]
    weight_variance = [
        init_std(fan_in, fan_out, init_mode, None) ** 2 for fan_in, fan_out in pairwise(widths)
    ]
    # Forward: the data feeds layer 1; layer l gets the activation of l - 1.
    below = [input_mean_square] + [gain * std * std for std in pre_stds[:-1]]
    forward = [
        math.sqrt(fan_in * variance * mean_sq)
        for fan_in, variance, mean_sq in zip(widths, weight_variance, below)
    ]
    # Backward: layer l gets the gradient of l + 1 (the output's for the top
    # one) through the weights above it, fan_out wide, then the activation.
    above = [std * std for std in grad_stds[1:]] + [top_mean_square]
    backward = [
        math.sqrt(gain * fan_out * variance * mean_sq)
        for fan_out, variance, mean_sq in zip(widths[2:], weight_variance[1:], above)
    ]
    return forward, backward


def run_experiment(name, data_seed, network_seed):
    """Print one experiment; return its JSON records, one per init and layer."""
    experiment = EXPERIMENTS[name]
    widths = experiment["layer_widths"]
    samples = make_training_data(experiment["sample_count"], widths[0], widths[-1], data_seed)
    hidden = widths[1:-1]
    print(f"=== {experiment['title']} ===")
    print(
        f"{experiment['activation']} network, widths {widths[0]}-{hidden[0]}x{len(hidden)}-"
        f"{widths[-1]}, {len(samples)} samples of the toy task (data seed {data_seed}, "
        f"network seed {network_seed})"
    )
    print(
        "theory, one layer at a time: Var(z) = fan_in * Var(W) * Var(z below)"
        + (
            ", halved after a ReLU"
            if experiment["activation"] == "relu"
            else " (tanh ~ linear; where it bends it passes on less)"
        )
        + "; gradients likewise going down, with fan_out"
    )
    gain = LINEAR_REGIME_GAIN[experiment["activation"]]
    records, shrink = [], {}
    for init_mode in experiment["inits"]:
        report, pre_stds, predicted_pre, predicted_grad = measure_at_init(
            experiment, init_mode, samples, network_seed
        )
        # A typical hidden layer's factor: fan * Var(W), halved after a ReLU.
        factor = gain * widths[2] * init_std(widths[1], widths[2], init_mode, None) ** 2
        print()
        print(
            f"{init_mode} init, at initialization: in theory each layer multiplies the "
            f"variance by {factor:.2f}"
        )
        print("layer |  act std |  pre std |   theory |  grad std |    theory")
        for index, pre_std in enumerate(pre_stds):
            print(
                f"{index + 1:>5} | {readable(report['activation_std'][index], '8.2e')} | "
                f"{readable(pre_std, '8.2e')} | {readable(predicted_pre[index], '8.2e')} | "
                f"{readable(report['gradient_std'][index], '9.2e')} | "
                f"{readable(predicted_grad[index], '9.2e')}"
            )
            records.append(
                dict(
                    experiment=name,
                    init=init_mode,
                    layer=index + 1,
                    activation_std=report["activation_std"][index],
                    gradient_std=report["gradient_std"][index],
                    pre_activation_std=pre_std,
                    predicted_pre_activation_std=predicted_pre[index],
                    predicted_gradient_std=predicted_grad[index],
                )
            )
        shrink[init_mode] = (
            change(report["activation_std"][0], report["activation_std"][-1]),
            change(report["gradient_std"][-1], report["gradient_std"][0]),
        )
    print()
    losses = train_experiment(experiment, samples, network_seed) if experiment["epochs"] else {}
    print(experiment_finding(experiment, shrink, losses))
    print(f"paper: {experiment['paper']}")
    print()
    return records


def train_experiment(experiment, samples, network_seed):
    """Train one network per init; print the loss of every epoch side by side."""
    widths = experiment["layer_widths"]
    losses = {}
    for init_mode in experiment["inits"]:
        patient = dict(
            layer_widths=widths,
            init_mode=init_mode,
            weight_scale_override=None,
            learning_rate=experiment["learning_rate"],
            activation=experiment["activation"],
            norm="none",
            clip=None,
            epochs=experiment["epochs"],
            network_seed=network_seed,
        )
        runs = dosed_run(patient, samples, ExamMonitor(widths, experiment["activation"]))
        losses[init_mode] = [report["loss"] for _, report in runs]
    inits = experiment["inits"]
    print(
        f"training, lr={experiment['learning_rate']:g} (chance: ln {widths[-1]} = "
        f"{math.log(widths[-1]):.3f}):"
    )
    print("epoch | " + " | ".join(f"{init_mode + ' loss':>12}" for init_mode in inits))
    for epoch in range(experiment["epochs"]):
        print(
            f"{epoch + 1:>5} | "
            + " | ".join(f"{format_loss(losses[init_mode][epoch]):>12}" for init_mode in inits)
        )
    print()
    return losses


def experiment_finding(experiment, shrink, losses):
    """The finding in words, every number from this run."""
    last = len(experiment["layer_widths"]) - 2
    parts = []
    for init_mode, (activation_change, gradient_change) in shrink.items():
        part = (
            f"{init_mode}: activation std {activation_change} from layer 1 to {last}, "
            f"gradient std {gradient_change} from layer {last} down to 1"
        )
        if init_mode in losses:
            chance = math.log(experiment["layer_widths"][-1])
            learned = losses[init_mode][-1] < LEARNS_BELOW * chance
            part += (
                f", and after {len(losses[init_mode])} epochs the loss is "
                f"{format_loss(losses[init_mode][-1])}: "
                + ("it learns" if learned else "it does not learn")
            )
        parts.append(part)
    return "finding: " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------
# Export: JSON Lines


def json_records(patient, reports):
    """One JSON-ready dict per epoch: the run's label and dosing, then the report.
    NaN and inf have no JSON spelling, so they are written as null."""
    dosing = {key: json_safe(patient[key]) for key in RUN_KEYS}
    return [
        {**dosing, **{key: json_safe(value) for key, value in report.items()}} for report in reports
    ]


RUN_KEYS = (
    "patient",
    "label",
    "init_mode",
    "weight_scale_override",
    "learning_rate",
    "layer_widths",
    "activation",
    "norm",
    "clip",
    "epochs",
    "data_seed",
    "network_seed",
)


def json_safe(value):
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_lines(path, records):
    """Write all records or nothing: a temporary file in the same folder,
    renamed over the path only once it is complete. The file gets the mode
    open(path, "w") would give it, not the temporary file's private 0600."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".health-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            for record in records:
                file.write(json.dumps(record, allow_nan=False) + "\n")
        os.chmod(temporary, file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def file_mode(path):
    """The mode open(path, "w") leaves: a file that exists keeps its own; a new
    one gets read-write for everyone less the umask (which can only be read by
    setting it, so it is set back at once)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


# ----------------------------------------------------------------------------
# The command line


# Upper bounds that keep one run within memory (under ~2.5 GB even with every
# bound reached at once) and, with the lesson's other values, within a few
# minutes; a run with several bounds reached at once takes much longer, and
# Ctrl-C stops it cleanly. Measured in pure Python: a float kept in a list
# costs ~32 bytes; a sample costs ~0.2 us per weight and ~5 us per hidden neuron.
MAX_EPOCHS = 1_000  # ~30 s at the lesson's size; every epoch's report is kept for the trends
MAX_SAMPLES = 10_000  # ~1.5 minutes at the lesson's size: 30 epochs of ~3 s
MAX_WIDTH = 1_024  # any one layer; the data keeps samples x features floats: <= 330 MB
MAX_HIDDEN_NEURONS = 1_024  # the monitor keeps samples x this x 3 floats an epoch: <= 1 GB
MAX_WEIGHTS = 300_000  # ~60 ms a sample: the lesson's 80 samples x 30 epochs in ~2.5 minutes
MAX_SEED_PAIRS = 1_000  # --seeds: a thousand runs of the lesson's size take ~10 minutes


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument gets one line on stderr (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def whole_number(low, high=None):
    """An argparse type: a whole number from low to high (or up from low)."""
    allowed = f"{low} or above" if high is None else f"from {low} to {high}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not allowed: give a whole number {allowed}"
            )
        return value

    return parse


def number_above_zero(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0.0):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give a finite number above 0")
    return value


def layer_widths(text):
    try:
        widths = [int(part) for part in text.split(",")]
    except ValueError:
        widths = []
    problem = widths_problem(widths)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {problem}")
    return widths


def widths_problem(widths):
    """What is wrong with these layer widths, or "" if nothing."""
    if len(widths) < 2 or not all(1 <= width <= MAX_WIDTH for width in widths):
        return (
            f"give whole numbers from 1 to {MAX_WIDTH}, comma-separated: the feature "
            "count, one or more hidden widths, the class count, like 8,16,16,4"
        )
    if len(widths) == 2:
        return "there is no hidden layer to examine: give one or more hidden widths, like 8,16,4"
    if widths[-1] < 2:
        return "one class is nothing to learn: give 2 or more classes (the last width)"
    hidden = sum(widths[1:-1])
    if hidden > MAX_HIDDEN_NEURONS:
        return f"{hidden} hidden neurons: give at most {MAX_HIDDEN_NEURONS} in all"
    weights = sum(map(mul, widths, widths[1:]))
    if weights > MAX_WEIGHTS:
        return f"{weights} weights: give widths with at most {MAX_WEIGHTS} in all"
    return ""


# The lesson's run, flag by flag: main() trains the lesson's two patients with
# their own dosing (no --patient, no dosing flag) on data seed 7 and network
# seed 11 with 80 samples, charts every 10 epochs, and shows none of the
# examination's own views. These are the parser's defaults. A command line
# asking for exactly this run gets main()'s output; any other, the full
# examination. A new flag adds one entry: its value in the lesson's run.
LESSON_RUN = {
    "patient": None,
    "init": None,
    "scale": None,
    "lr": None,
    "epochs": None,
    "widths": None,
    "activation": None,
    "norm": None,
    "clip": None,
    "samples": 80,
    "data_seed": 7,
    "network_seed": 11,
    "report_every": 10,
    "halt_on_warning": False,
    "json": None,
    "timing": False,
    "treat": False,
    "seeds": None,
    "experiment": None,
}
# Flags that leave the lesson's run as it is: --ascii only changes the
# examination's trend and heatmap characters, and --list-patients runs nothing.
LESSON_NEUTRAL_FLAGS = ("ascii", "list_patients")


def asks_for_the_lesson(args):
    """Whether the arguments ask for exactly the lesson's run (LESSON_RUN)."""
    asked = {name: value for name, value in vars(args).items() if name not in LESSON_NEUTRAL_FLAGS}
    return asked == LESSON_RUN


def build_parser():
    healthy = PATIENTS["healthy"]
    parser = OneLineParser(
        prog="main.py",
        description="Train patients and print their per-layer health charts. With no "
        "arguments, or only flags that repeat the lesson's values (data seed "
        f"{LESSON_RUN['data_seed']}, network seed {LESSON_RUN['network_seed']}, "
        f"{LESSON_RUN['samples']} samples, a chart every {LESSON_RUN['report_every']} epochs; "
        "--ascii too), you get the lesson's run: the healthy and the sick patient, exactly as "
        "the lesson prints them. Anything else (a patient, a dosing, another seed, --json, "
        "--timing, --halt-on-warning) gets the full examination: charts, trends, heatmap and "
        "verdict. --treat, --seeds, --experiment and --list-patients do what their help says.",
    )
    parser.add_argument(
        "--patient",
        action="append",
        choices=list(PATIENTS),
        metavar="NAME",
        help=f"run this patient (repeatable): {', '.join(PATIENTS)}; see --list-patients",
    )
    parser.add_argument(
        "--list-patients",
        action="store_true",
        help="list the patients, their dosing and their disease, then stop",
    )
    dosing = parser.add_argument_group(
        "your own experiment",
        "these set a custom patient's dosing (starting from healthy's), or override the "
        "dosing of every --patient; a default 'the patient's' is the --patient's own dosing, "
        "or healthy's for a custom patient. An --init without --scale drops a patient's std.",
    )
    dosing.add_argument(
        "--init",
        choices=["kaiming", "xavier", "standard", "bad"],
        help="weight init: kaiming sqrt(2/fan_in), xavier sqrt(2/(fan_in+fan_out)), standard "
        "sqrt(1/(3 fan_in)) (Glorot and Bengio's uniform), bad (needs --scale) "
        f"(default: the patient's; healthy's {healthy['init_mode']})",
    )
    dosing.add_argument(
        "--scale",
        type=number_above_zero,
        help="weight std, overriding the init mode's (default: the patient's, if any; "
        "healthy has none)",
    )
    dosing.add_argument(
        "--lr",
        type=number_above_zero,
        help=f"learning rate (default: the patient's; healthy's {healthy['learning_rate']:g})",
    )
    dosing.add_argument(
        "--epochs",
        type=whole_number(1, MAX_EPOCHS),
        help=f"epochs to train, at most {MAX_EPOCHS} (default: the patient's; healthy's "
        f"{healthy['epochs']})",
    )
    dosing.add_argument(
        "--widths",
        type=layer_widths,
        metavar="8,16,...,4",
        help="layer widths; the data follows them: the feature count, one or more hidden "
        f"widths, the class count (2 or more). Each at most {MAX_WIDTH}, the hidden ones at "
        f"most {MAX_HIDDEN_NEURONS} in all, and at most {MAX_WEIGHTS} weights (default: the "
        f"patient's; healthy's {','.join(map(str, healthy['layer_widths']))})",
    )
    dosing.add_argument(
        "--activation",
        choices=list(ACTIVATIONS),
        help=f"the hidden layers' activation (default: the patient's; healthy's "
        f"{healthy['activation']})",
    )
    dosing.add_argument(
        "--norm",
        choices=["none", "layer"],
        help="'layer': layer norm before each hidden activation (default: the patient's; "
        f"healthy's {healthy['norm']})",
    )
    dosing.add_argument(
        "--clip",
        type=number_above_zero,
        metavar="MAX_NORM",
        help="clip every step's gradient to this global norm (default: the patient's; "
        "healthy has none)",
    )
    dosing.add_argument(
        "--samples",
        type=whole_number(1, MAX_SAMPLES),
        default=LESSON_RUN["samples"],
        help=f"training samples, at least one per class, at most {MAX_SAMPLES} "
        "(default %(default)s)",
    )
    dosing.add_argument(
        "--data-seed",
        type=whole_number(0),
        default=LESSON_RUN["data_seed"],
        help="data seed, 0 or above (default %(default)s)",
    )
    dosing.add_argument(
        "--network-seed",
        type=whole_number(0),
        default=LESSON_RUN["network_seed"],
        help="seed of the initial weights and the sample order, 0 or above (default %(default)s)",
    )
    view = parser.add_argument_group("what to show")
    view.add_argument(
        "--report-every",
        type=whole_number(1),
        default=LESSON_RUN["report_every"],
        help="print the chart every N epochs, and at the last (default %(default)s)",
    )
    view.add_argument(
        "--halt-on-warning",
        action="store_true",
        help="stop training at the first warning and print that epoch's chart",
    )
    view.add_argument(
        "--ascii",
        action="store_true",
        help="plain characters for trends and heatmap (automatic when the "
        "terminal cannot print Unicode)",
    )
    view.add_argument(
        "--json", metavar="PATH", help="also write every epoch's report as JSON Lines to PATH"
    )
    view.add_argument(
        "--timing",
        action="store_true",
        help="after each run, print the seconds spent training and monitoring",
    )
    modes = parser.add_argument_group("beyond one examination")
    modes.add_argument(
        "--treat",
        action="store_true",
        help="treat each patient that is not well (a warning at its last epoch, or a final "
        f"loss not below {CURED_LOSS:g}): prescribe from its chart, apply, examine again, up to "
        f"{TREATMENT_ROUNDS} rounds; ends with before/after and one outcome line; needs "
        f"{TREAT_MIN_EPOCHS} or more epochs",
    )
    modes.add_argument(
        "--seeds",
        type=whole_number(1, MAX_SEED_PAIRS),
        metavar="N",
        help="run each patient on N seed pairs (data and network seed + k, k = 0..N-1) "
        "without charts, on every core, and print what warned how often: a disease of the dose "
        "or of the seed?",
    )
    modes.add_argument(
        "--experiment",
        choices=list(EXPERIMENTS),
        help="rerun a founding experiment at initialization, beside theory; takes "
        "--data-seed, --network-seed and --json, no dosing",
    )
    return parser


def describe_dosing(patient):
    init = f"{patient['init_mode']} init"
    if patient["weight_scale_override"] is not None:  # it overrides any init mode's std
        init = f"init std={patient['weight_scale_override']:g}"
    treatments = [patient["activation"]] if patient["activation"] != "relu" else []
    treatments += ["layer norm"] if patient["norm"] == "layer" else []
    treatments += [f"clip={patient['clip']:g}"] if patient["clip"] is not None else []
    widths = "-".join(map(str, patient["layer_widths"]))
    epochs = plural(patient["epochs"], "epoch")
    return ", ".join(
        [init, *treatments, f"lr={patient['learning_rate']:g}", f"widths {widths}", epochs]
    )


def patient_runs(args, parser):
    """The runs the arguments ask for, each a patient dict with its seeds, or a
    parser error for a combination no single argument can judge."""
    overrides = {
        key: value
        for key, value in (
            ("init_mode", args.init),
            ("weight_scale_override", args.scale),
            ("learning_rate", args.lr),
            ("epochs", args.epochs),
            ("layer_widths", args.widths),
            ("activation", args.activation),
            ("norm", args.norm),
            ("clip", args.clip),
        )
        if value is not None
    }
    if args.init is not None and args.scale is None:
        # An init mode given on the command line brings its own std: a
        # patient's std override (sick's 1.0) must not silently outlive it.
        overrides["weight_scale_override"] = None
    names = args.patient or (["custom"] if overrides else ["healthy", "sick"])
    runs = []
    for name in names:
        run = dict(PATIENTS.get(name, PATIENTS["healthy"]), patient=name, **overrides)
        run.update(
            data_seed=args.data_seed, network_seed=args.network_seed, sample_count=args.samples
        )
        if overrides or name == "custom":
            run["label"] = f"{name.upper()} ({describe_dosing(run)})"
        if run["init_mode"] == "bad" and run["weight_scale_override"] is None:
            parser.error("argument --init: 'bad' has no std of its own: give --scale too")
        if run["norm"] == "layer" and min(run["layer_widths"][1:-1]) < 2:
            parser.error(
                "argument --norm: layer norm needs 2 or more neurons in every hidden layer "
                "(a layer of one always puts out its shift)"
            )
        if args.treat and run["epochs"] < TREAT_MIN_EPOCHS:
            parser.error(
                f"argument --epochs: {run['epochs']} is too few to judge a cure: --treat "
                f"needs {TREAT_MIN_EPOCHS} or more"
            )
        if run["sample_count"] < run["layer_widths"][-1]:
            parser.error(
                f"argument --samples: {run['sample_count']} is fewer than the "
                f"{run['layer_widths'][-1]} classes (the last width): give at least one "
                "sample per class"
            )
        runs.append(run)
    return runs


# The flags each mode cannot take: --list-patients runs nothing, an experiment
# builds its own networks, and --seeds and --treat each run a patient in a way
# of their own.
MODE_CONFLICTS = {
    "list_patients": " ".join(name for name in LESSON_RUN),
    "experiment": (
        "patient init scale lr epochs widths activation norm clip samples report_every "
        "halt_on_warning timing treat seeds"
    ),
    "seeds": "treat halt_on_warning json timing report_every",
    "treat": "halt_on_warning timing",
}


def check_mode(args, parser):
    """A parser error for a flag the chosen mode cannot take."""
    for mode, conflicts in MODE_CONFLICTS.items():
        if getattr(args, mode) in (None, False):
            continue
        for name in conflicts.split():
            if name != mode and getattr(args, name) != LESSON_RUN[name]:
                flag, with_flag = (f"--{key.replace('_', '-')}" for key in (name, mode))
                parser.error(f"argument {flag}: not allowed with {with_flag}")


def check_json_path(path, parser):
    """Fail before any training if the JSON file could not be written.

    The file is written whole beside the path, then renamed over it: that
    would turn a named pipe, a device or a symbolic link into a regular file,
    so the path must be a regular file or a new one. (Creating a scratch file
    is the honest test of the folder: os.access says yes to root.)
    """

    def refuse(why):  # parser.error exits: nothing after a refusal runs
        parser.error(f"argument --json: {path!r} cannot be written: {why}")

    if not path:
        refuse("give a file path")
    if path.endswith(("/", os.sep)):
        refuse("a path ending in a slash names a folder: give a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"argument --json: {path!r}: the folder {folder!r} does not exist")
    try:
        kind = file_kind(os.lstat(path).st_mode)
    except FileNotFoundError:
        kind = "new"
    except OSError as error:  # a name too long for the file system, say
        refuse(f"{error.strerror}: give a file path")
    if kind not in ("regular file", "new"):
        refuse(f"it is a {kind}, not a regular file: give a regular file or a new path")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        refuse("give a file path in a writable folder")


def file_kind(mode):
    """What an lstat() mode says the path is, in words."""
    kinds = (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "named pipe (FIFO)"),
        (stat.S_ISCHR, "device"),
        (stat.S_ISBLK, "device"),
        (stat.S_ISSOCK, "socket"),
    )
    return next((kind for is_kind, kind in kinds if is_kind(mode)), "special file")


def stdout_charset(ascii_requested):
    if ascii_requested:
        return "ascii"
    try:
        (SPARK_LEVELS["unicode"] + SHADE_LEVELS["unicode"]).encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "ascii"
    return "unicode"


def printable(text):
    """text as stdout can print it: a character its encoding cannot hold (an
    undecodable byte of a file name from argv, or an accented letter on an
    ASCII terminal) becomes a backslash escape instead of an error."""
    encoding = sys.stdout.encoding or "ascii"
    return text.encode(encoding, "backslashreplace").decode(encoding)


class GuardedStdout:
    """Stands in for sys.stdout, inside a with block, so that losing stdout
    cannot crash a run or cost its JSON file. (print needs an object with
    write and flush: a class, not a function.)

    The first write or flush that fails (the reader of a pipe has left, the
    disk is full, stdout is closed) is kept in `error`. The real stdout is
    then pointed at the null device, so that the output still buffered in it
    cannot fail again when Python exits, and the rest of the output is
    dropped. A run with a JSON file to write trains on for it (keep_going);
    any other stops: each later write raises the error.
    """

    def __init__(self, stream, keep_going):
        self.stream = stream
        self.keep_going = keep_going
        self.encoding = getattr(stream, "encoding", None)
        # Python sets sys.stdout to None when it starts with stdout closed.
        self.error = None if stream is not None else OSError(errno.EBADF, "it is closed")

    def __enter__(self):
        sys.stdout = self
        return self

    def __exit__(self, *exception):
        self.flush()  # now, so that a failure shows here and not as Python exits
        sys.stdout = self.stream

    def write(self, text):
        if self.error is None:
            try:
                self.stream.write(text)
            except OSError as error:
                self.lose(error)
        if self.error is not None and not self.keep_going:
            raise self.error
        return len(text)

    def flush(self):
        if self.error is None:
            try:
                self.stream.flush()
            except OSError as error:
                self.lose(error)

    def lose(self, error):
        self.error = error
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self.stream.fileno())
        os.close(null)


def run_patients(args, parser):
    """Train and chart (or treat, or summarize over seeds) the runs args ask
    for, or run the experiment; return their JSON records."""
    if args.json is not None:
        check_json_path(args.json, parser)
    if args.experiment:
        return run_experiment(args.experiment, args.data_seed, args.network_seed)
    runs = patient_runs(args, parser)
    if asks_for_the_lesson(args):
        main()
        return []
    records = []
    for run in runs:
        if args.seeds:
            print("\n".join(seed_summary(run, args.seeds)) + "\n")
            continue
        widths = run["layer_widths"]
        samples = make_training_data(run["sample_count"], widths[0], widths[-1], run["data_seed"])
        if args.treat:
            rounds = treat(run, samples, args.report_every, stdout_charset(args.ascii))
            for number, (dosing, treatments, reports) in enumerate(rounds):
                extra = {"round": number, "treatments": treatments}
                records += [{**record, **extra} for record in json_records(dosing, reports)]
            continue
        reports = examine(
            run,
            samples,
            args.report_every,
            args.halt_on_warning,
            stdout_charset(args.ascii),
            args.timing,
        )
        records += json_records(run, reports)
    return records


# Signals that stop a run as Ctrl-C (SIGINT) does: SIGTERM, the one kill sends,
# and SIGHUP, sent when the terminal closes (Windows has no SIGHUP).
STOP_SIGNALS = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


def stop_like_ctrl_c(signum, frame):
    """Signal handler: raise what Ctrl-C raises, with the signal's number, so
    that the run stops cleanly in the one place that handles Ctrl-C."""
    raise KeyboardInterrupt(signum)


# The exit status of a run whose stdout lost its reader (a pipe into head):
# 128 + SIGPIPE (13), what a shell reports for any program stopped that way.
BROKEN_PIPE_STATUS = 141


def command_line(argv):
    """Run what argv asks for and return the exit status: 0 when done; 1 when
    the JSON file or stdout could not be written (a full disk, a closed
    stdout); 2 for a bad argument (from argparse); 128 + N when stopped by
    signal N, as a shell reports it: 130 for Ctrl-C (SIGINT), 143 for SIGTERM,
    129 for SIGHUP, and BROKEN_PIPE_STATUS (141, SIGPIPE) when the reader of
    stdout has left."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_mode(args, parser)
    written = None  # the number of reports in the JSON file, once it is written
    try:
        with GuardedStdout(sys.stdout, keep_going=args.json is not None) as stdout:
            if args.list_patients:
                for name, patient in PATIENTS.items():
                    print(f"{name:<10} {describe_dosing(patient)} -- {patient['disease']}")
            else:
                records = run_patients(args, parser)
                if args.json is not None:
                    if not save_json(args.json, records, parser.prog):
                        return 1
                    written = len(records)
                    print(f"wrote {plural(written, 'report')} to {printable(args.json)}")
    except KeyboardInterrupt as interrupt:
        return interrupted(interrupt, args.json is not None and written is None)
    except OSError as error:
        if error is not stdout.error:  # a lost stdout is the only failure expected here
            raise
    if stdout.error is None:
        return 0
    if isinstance(stdout.error, BrokenPipeError):
        return BROKEN_PIPE_STATUS  # quietly: the reader chose to stop reading
    went_on = "stopped"
    if written is not None:
        went_on = f"the run went on and wrote {plural(written, 'report')} to {args.json!r}"
    reason = stdout.error.strerror or str(stdout.error)
    print(f"{parser.prog}: error: cannot write to stdout: {reason}; {went_on}", file=sys.stderr)
    return 1


def save_json(path, records, prog):
    """write_json_lines, saying on stderr why it failed if it did: a full disk,
    a file size limit, no right to replace the file. True if it succeeded."""
    try:
        write_json_lines(path, records)
    except OSError as error:
        reason = error.strerror or str(error)
        print(
            f"{prog}: error: could not write the JSON file {path!r}: {reason}; nothing was written",
            file=sys.stderr,
        )
        return False
    return True


def interrupted(interrupt, json_unwritten):
    """Say on stderr which signal stopped the run (and that the JSON file it
    asked for was not written); return the status a shell expects."""
    # Ctrl-C raises a bare KeyboardInterrupt; stop_like_ctrl_c names its signal.
    signum = interrupt.args[0] if interrupt.args else signal.SIGINT
    by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
    unwritten = "; no JSON file was written" if json_unwritten else ""
    print(f"interrupted{by}: stopped cleanly{unwritten}.", file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, stop_like_ctrl_c)
    sys.exit(command_line(sys.argv[1:]))
