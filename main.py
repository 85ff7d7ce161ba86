"""Training health monitor: read a network's chart, not only its temperature.

The runnable companion to the lesson "Activation and Gradient Health". It trains
two small list-based networks on one toy task, a healthy patient (Kaiming init,
learning rate 0.05) and a sick one (oversized init, learning rate 0.8), and
every 10 epochs prints each hidden layer's six readings and the warnings they
trip, with a histogram of its activations at the last epoch.

    python main.py                                  the lesson's two patients
    python main.py --patient dead --treat           an examination, then a cure
    python main.py --patient dead --html dead.html  ... as charts, for a browser
    python main.py --help                           everything else
    python -m pytest                                the tests

Pure Python, standard library only. The first part is the lesson's code, in
the lesson's order; everything after the "Beyond the lesson" banner extends it
from below, so a reader beside the lesson can stop there.

Contents
  The lesson: list math; data and network; the diagnostic forward pass,
    backprop and SGD; the monitor; the flag function; the chart; training.
  Beyond the lesson: treatments (other activations, layer norm, clipping,
    Adam); the patients; the examination's monitor and warnings; one
    examination, measured then printed; prescribe, treat and prove the cure;
    seeds or dose, on every core; the founding experiments (Glorot and Bengio
    2010, He et al. 2015); pictures (--html: one page of SVG charts); JSON
    export; the command line.
"""

import math
import random
from bisect import bisect_right
from collections import namedtuple
from functools import reduce
from itertools import pairwise
from operator import add, mul

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
    """Sum floats exactly rounded, so every Python prints the same digits (3.12
    changed sum()). fsum raises where plain arithmetic gives inf or NaN (a
    diverged network): then add left to right and let the inf/NaN show."""
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):
        return reduce(add, values, 0.0)


def matvec(weights, vector):
    """Multiply a matrix (a list of rows) by a vector."""
    try:
        return [math.fsum(map(mul, row, vector)) for row in weights]
    except (OverflowError, ValueError):  # see exact_sum
        return [exact_sum(list(map(mul, row, vector))) for row in weights]


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
    """Mean and population std (NaN for no values), in two passes so a large
    mean cannot cancel a small spread. math.dist takes the root of the summed
    squared deviations in C, scaling so huge squares cannot overflow."""
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
    """A seeded toy task: (features, class_index) pairs, one Gaussian cluster
    per class (centres of std CLUSTER_SPREAD, unit noise), classes in turn."""
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
    """Random weights and zero biases: a list of (weights, biases) per layer,
    weights being fan_out rows of fan_in floats of std init_std(...)."""
    rng = random.Random(seed)
    network = []
    for fan_in, fan_out in pairwise(layer_widths):
        scale = init_std(fan_in, fan_out, init_mode, weight_scale_override)
        weights = [[rng.gauss(0.0, scale) for _ in range(fan_in)] for _ in range(fan_out)]
        network.append((weights, [0.0] * fan_out))
    return network


def init_std(fan_in, fan_out, init_mode, weight_scale_override):
    """The weight std of one layer; a weight_scale_override replaces any mode's
    ("bad" has none of its own)."""
    if weight_scale_override is not None:
        return weight_scale_override
    if init_mode == "kaiming":  # keeps a ReLU layer's variance steady
        return math.sqrt(2.0 / fan_in)
    if init_mode == "xavier":  # Glorot and Bengio's, for tanh
        return math.sqrt(2.0 / (fan_in + fan_out))
    if init_mode == "standard":  # the uniform +-1/sqrt(fan_in) they call standard
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


def backward(network, trace, target_class, layer_backward=None):
    """dLoss/d(pre-activation) of every layer for one sample's traced pass. As
    pre = W x + b, these are the bias gradients, and dLoss/dW = grad x^T.
    layer_backward takes a gradient down one layer (the lesson's: ReLU)."""
    layer_backward = layer_backward or relu_backward
    probabilities = trace["post_activations"][-1]
    # Softmax followed by cross-entropy has the famously simple gradient p - y.
    grad = [p - (1.0 if index == target_class else 0.0) for index, p in enumerate(probabilities)]
    grads = [grad]
    for layer_index in range(len(network) - 1, 0, -1):
        grad = layer_backward(network[layer_index][0], grad, trace, layer_index)
        grads.append(grad)
    return grads[::-1]


def relu_backward(weights, grad, trace, layer_index):
    """dLoss/d(pre-activation) below: W^T grad, times ReLU's derivative there
    (0 for an unit that was off, whose column is not summed; 1 otherwise, also
    above RELU_CAP, which only keeps forward values finite: that is what lets
    the sick patient's exploded layers be pushed down until they die)."""
    below = trace["pre_activations"][layer_index - 1]
    live = [j for j, value in enumerate(below) if value > 0.0]
    result = [0.0] * len(below)
    for j, total in zip(live, column_sums(weights, grad, trace, layer_index, live)):
        result[j] = total
    return result


def column_sums(weights, grad, trace, layer_index, columns):
    """(W^T grad)[j] for each j in columns. A row whose gradient is exactly 0
    adds 0 and is left out, unless its pre-activation is not finite: the mark
    of an inf or NaN weight, whose 0 * inf = NaN plain backprop would spread."""
    pre = trace["pre_activations"][layer_index]
    rows = [
        i for i, (g, value) in enumerate(zip(grad, pre)) if g != 0.0 or not math.isfinite(value)
    ]
    if not rows:
        return [0.0] * len(columns)
    transposed = list(zip(*[weights[i] for i in rows]))
    return matvec([transposed[j] for j in columns], [grad[i] for i in rows])


def sgd_step(network, trace, pre_activation_grads, learning_rate):
    """One SGD step in place. Row i of dLoss/dW is grad_i * x, so row i of W
    moves by -learning_rate * grad_i * x and its bias by -learning_rate *
    grad_i; a neuron that was off (grad_i = 0) is skipped."""
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

    def __init__(self, layer_widths):
        self.num_hidden_layers = len(layer_widths) - 2
        self.layer_widths = layer_widths
        self.reset()

    def reset(self):
        hidden = range(self.num_hidden_layers)
        self.pre_activations_per_layer = [[] for _ in hidden]
        self.post_activations_per_layer = [[] for _ in hidden]
        self.grad_pre_per_layer = [[] for _ in hidden]
        # Each neuron's running maximum starts below any output: a neuron whose
        # outputs were all NaN (a diverged network) has none, and is not dead.
        self.neuron_max_per_layer = [[-math.inf] * width for width in self.layer_widths[1:-1]]

    def record(self, trace, pre_activation_grads):
        for layer_index in range(self.num_hidden_layers):
            pre = trace["pre_activations"][layer_index]
            post = trace["post_activations"][layer_index]
            grad_pre = pre_activation_grads[layer_index]
            self.pre_activations_per_layer[layer_index].extend(pre)
            self.post_activations_per_layer[layer_index].extend(post)
            self.grad_pre_per_layer[layer_index].extend(grad_pre)
            for neuron_index, value in enumerate(post):
                if value > self.neuron_max_per_layer[layer_index][neuron_index]:
                    self.neuron_max_per_layer[layer_index][neuron_index] = value

    def report(self) -> HealthReport:
        """One summary number (or histogram) per hidden layer, taken over its
        finite values: one inf or NaN of a diverged network would spoil them."""
        report = {key: [] for key in REPORT_KEYS}
        for layer_index, width in enumerate(self.layer_widths[1:-1]):
            post = finite(self.post_activations_per_layer[layer_index])
            grads = finite(self.grad_pre_per_layer[layer_index])
            activation_mean, activation_std = mean_and_std(post)
            report["activation_mean"].append(activation_mean)
            report["activation_std"].append(activation_std)
            report["gradient_std"].append(mean_and_std(grads)[1])
            report["gradient_max"].append(largest_size(grads))
            # A ReLU output is never below 0: a maximum of 0 means it never fired.
            peaks = self.neuron_max_per_layer[layer_index]
            report["dead_count"].append(sum(1 for peak in peaks if peak == 0.0))
            pre = finite(self.pre_activations_per_layer[layer_index])
            report["saturation_rate"].append(saturation_rate(pre))
            report["layer_neuron_count"].append(width)
            report["histogram"].append(histogram(post))
        return report


REPORT_KEYS = ["activation_mean", "activation_std", "gradient_std", "gradient_max", "dead_count"]
REPORT_KEYS += ["saturation_rate", "layer_neuron_count", "histogram"]


def finite(values):
    """The finite values, in order. One inf or NaN spoils the sum, so a finite
    sum means the list is its own answer: three times as fast as filtering."""
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
    """Count values per bucket (<= each edge, then above the last): sorted
    once, the count at or below each edge is one bisection."""
    ordered = sorted(values)
    at_or_below = [bisect_right(ordered, edge) for edge in edges]
    at_or_below.append(len(ordered))
    return [high - low for low, high in zip([0, *at_or_below], at_or_below)]


# ----------------------------------------------------------------------------
# The flag function: the report in English

# A warning is data: the layer it names (from 1), the kind of disease, and
# the sentence the chart prints.
HealthWarning = namedtuple("HealthWarning", "layer kind text")


def flag_issues(report):
    warnings = []
    for layer_index in range(len(report["activation_mean"])):
        layer = layer_index + 1
        layer_label = f"Layer {layer}"
        neuron_count = report["layer_neuron_count"][layer_index]
        dead_count = report["dead_count"][layer_index]
        dead_percent = 100.0 * dead_count / neuron_count
        if dead_percent > DEAD_PERCENT_LIMIT:
            text = f"{layer_label}: {dead_percent:.0f}% dead neurons ({dead_count}/{neuron_count})"
            warnings.append(HealthWarning(layer, "dead neurons", text))
        gradient_std = report["gradient_std"][layer_index]
        if gradient_std < VANISHING_GRAD_STD:
            text = f"{layer_label}: gradient std {gradient_std:.2e} (vanishing)"
            warnings.append(HealthWarning(layer, "vanishing gradients", text))
        elif gradient_std > EXPLODING_GRAD_STD:
            text = f"{layer_label}: gradient std {gradient_std:.2e} (exploding)"
            warnings.append(HealthWarning(layer, "exploding gradients", text))
        saturated_percent = 100.0 * report["saturation_rate"][layer_index]
        if saturated_percent > SATURATED_PERCENT_LIMIT:
            text = (
                f"{layer_label}: {saturated_percent:.0f}% of pre-activations are saturating "
                f"(|value| > {SATURATION_LIMIT:g})"
            )
            warnings.append(HealthWarning(layer, "saturation", text))
        activation_std = report["activation_std"][layer_index]
        if activation_std < COLLAPSED_ACT_STD:
            text = f"{layer_label}: activation std {activation_std:.2e} (signal collapse)"
            warnings.append(HealthWarning(layer, "signal collapse", text))
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
    """The lesson's per-layer table. The dead column is 5 wide, as in the
    lesson, unless a count like 1000/1000 needs more."""
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
    # A reading with no value (NaN) says n/a, like readable().
    dead = report["dead_count"][index]
    return "n/a" if math.isnan(dead) else f"{dead}/{report['layer_neuron_count'][index]}"


def bucket_shares(counts):
    """Each bucket's share of a layer's histogram, from 0 to 1."""
    total = max(sum(counts), 1)
    return [count / total for count in counts]


def histogram_chart(report, labels, bar_width=10):
    """The activation histogram, a row per bucket and a column per layer: each
    '#' is 10% of the layer's values, a '.' some but fewer than 5%."""
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
    return ["WARNINGS:"] + [f"- {warning.text}" for warning in warnings]


def print_health_chart(label, report, show_histogram=False):
    print(
        "\n".join(chart_lines(label, report, show_histogram) + warning_lines(flag_issues(report)))
    )
    print()


# ----------------------------------------------------------------------------
# Training the two patients


def training_run(
    network,
    samples,
    epochs,
    learning_rate,
    shuffle_seed,
    monitor,
    forward=forward_with_trace,
    backprop=backward,
    step=sgd_step,
):
    """Per-sample SGD on cross-entropy; yields the monitor's HealthReport after
    each epoch, with the epoch number and the epoch's mean loss added.

    The shuffle_seed orders the samples of each epoch. A treated network
    (beyond the lesson) passes its own forward, backprop and step, with the
    signatures of forward_with_trace, backward and sgd_step.
    """
    shuffler = random.Random(shuffle_seed)
    order = list(range(len(samples)))
    for epoch in range(1, epochs + 1):
        monitor.reset()
        shuffler.shuffle(order)
        losses = []
        for sample_index in order:
            inputs, target_class = samples[sample_index]
            trace = forward(network, inputs)
            losses.append(cross_entropy(trace["pre_activations"][-1], target_class))
            pre_activation_grads = backprop(network, trace, target_class)
            monitor.record(trace, pre_activation_grads)
            step(network, trace, pre_activation_grads, learning_rate)
        report = monitor.report()
        report["epoch"] = epoch
        report["loss"] = exact_sum(losses) / len(losses)
        yield report


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
    histogram at the last of them) and return the reports of all epochs.
    The network_seed draws the initial weights and the order of the samples."""
    network = init_network(layer_widths, init_mode, weight_scale_override, network_seed)
    monitor = TrainingMonitor(layer_widths)
    reports = []
    last_charted = epochs - epochs % report_every
    for report in training_run(network, samples, epochs, learning_rate, network_seed, monitor):
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
# Beyond the lesson: treatments, a patient for every disease, the
# examination, prescriptions and cures, seeds, the founding experiments,
# export, and a command line.
# Everything above is the lesson; a reader beside the lesson can stop here.
# ============================================================================

# The extras' imports stand here, so that the lesson's part reads alone.
import argparse
import contextlib
import errno
import json
import os
import signal
import stat
import statistics
import sys
import tempfile
from functools import partial
from html import escape
from operator import attrgetter, sub
from time import perf_counter

# ----------------------------------------------------------------------------
# Treatments: other activations, layer normalization, gradient clipping
#
# A dosing may change more than the lesson's init and learning rate. Each
# treatment plugs into the lesson's training_run: another activation brings
# its forward and its layer_backward for the lesson's backward; layer norm
# wraps both; clipping scales the step. The lesson's ReLU network without a
# norm runs the lesson's own functions.

LEAKY_SLOPE = 0.01  # Maas, Hannun and Ng (2013): below 0 the ReLU leaks 1%
NORM_EPSILON = 1e-5  # layer norm divides by sqrt(var + this), never by 0
CLIP_EPSILON = 1e-6  # as in torch.nn.utils.clip_grad_norm_


def leaky_relu(value):
    # Clamped to +-RELU_CAP like safe_relu, so values stay finite; NaN passes.
    if value > 0.0:
        return RELU_CAP if value > RELU_CAP else value
    leak = LEAKY_SLOPE * value
    return -RELU_CAP if leak < -RELU_CAP else leak


def every_column(weights, grad, trace, layer_index):
    """W^T grad at every unit below: an activation without an off state."""
    return column_sums(weights, grad, trace, layer_index, range(len(weights[0])))


# Like the lesson's ReLU, the clamps are straight-through: the derivative
# ignores RELU_CAP.
def leaky_relu_backward(weights, grad, trace, layer_index):
    below = trace["pre_activations"][layer_index - 1]
    upstream = every_column(weights, grad, trace, layer_index)
    return [u if value > 0.0 else LEAKY_SLOPE * u for u, value in zip(upstream, below)]


def tanh_backward(weights, grad, trace, layer_index):
    # tanh'(x) = 1 - tanh(x)^2, read off the output the forward pass kept.
    below = trace["post_activations"][layer_index - 1]
    upstream = every_column(weights, grad, trace, layer_index)
    return [u * (1.0 - t * t) for u, t in zip(upstream, below)]


# Tanh lives in (-1, 1): its histogram buckets are linear, with the outer two
# for outputs pinned near +-1, where Glorot and Bengio saw saturation.
TANH_HISTOGRAM_EDGES = (-0.99, -0.5, -0.1, 0.1, 0.5, 0.99)


def bucket_labels(edges):
    return [f"<= {edge:g}" for edge in edges] + [f"> {edges[-1]:g}"]


ACTIVATIONS = {
    # layer / backward: one layer's activation and its layer_backward;
    # edges / labels: the histogram's buckets; not_applicable: readings with
    # no meaning here, printed n/a. A tanh neuron is never "off", so it
    # cannot die (its disease is saturation). A leaky ReLU has no flat part:
    # below 0 it still passes 1% of the gradient, so a neuron that never went
    # above 0 is not dead (it can come back), and nothing saturates.
    "relu": dict(
        layer=lambda pre: [safe_relu(value) for value in pre],
        backward=relu_backward,
        edges=HISTOGRAM_EDGES,
        labels=HISTOGRAM_LABELS,
        not_applicable=(),
    ),
    "leaky_relu": dict(
        layer=lambda pre: [leaky_relu(value) for value in pre],
        backward=leaky_relu_backward,
        edges=HISTOGRAM_EDGES,
        labels=bucket_labels(HISTOGRAM_EDGES),
        not_applicable=("dead_count", "saturation_rate"),
    ),
    "tanh": dict(
        layer=lambda pre: list(map(math.tanh, pre)),
        backward=tanh_backward,
        edges=TANH_HISTOGRAM_EDGES,
        labels=bucket_labels(TANH_HISTOGRAM_EDGES),
        not_applicable=("dead_count",),
    ),
}


def treated_forward(activate, norms, network, inputs):
    """forward_with_trace with another activation, and with a layer norm
    between each hidden layer's W x + b and its activation when norms are
    given. "pre_activations" holds what goes into the activation, where
    saturation is read; with a norm, "linear_outputs" keeps W x + b, and
    "units", "spreads" and "norm_grads" are for the norm's backprop."""
    trace = {"layer_inputs": [], "pre_activations": [], "post_activations": []}
    if norms:
        trace.update(linear_outputs=[], units=[], spreads=[], norm_grads=[None] * len(norms))
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


def layer_norm(values, gain, shift):
    """Ba, Kiros and Hinton (2016), over one sample's layer: returns
    gain * unit + shift, unit = (values - mean) / spread, and unit and spread
    (spread = sqrt(var + NORM_EPSILON), computed without squaring the std,
    so a huge layer cannot overflow it)."""
    mean, std = mean_and_std(values)
    spread = math.hypot(std, math.sqrt(NORM_EPSILON))
    unit = [(value - mean) / spread for value in values]
    return [a * u + b for a, u, b in zip(gain, unit, shift)], unit, spread


def normed_backward(layer_backward, norms, weights, grad, trace, layer_index):
    """layer_backward, then back through the layer norm below, keeping the
    gradients of its gain and shift in the trace for the step.

    With d = grad * gain (the gradient at unit), the mean and spread both
    depend on every value, which gives
      dLoss/d(value_i) = (d_i - mean(d) - unit_i * mean(d * unit)) / spread.
    """
    below = layer_index - 1
    grad = layer_backward(weights, grad, trace, layer_index)
    unit, spread = trace["units"][below], trace["spreads"][below]
    d_unit = list(map(mul, grad, norms[below][0]))
    mean_d = exact_sum(d_unit) / len(d_unit)
    mean_d_unit = exact_sum(list(map(mul, d_unit, unit))) / len(d_unit)
    trace["norm_grads"][below] = (list(map(mul, grad, unit)), list(grad))
    return [(d - mean_d - u * mean_d_unit) / spread for d, u in zip(d_unit, unit)]


def gradient_norm(grads, trace):
    """The global norm of the gradient over every parameter, in O(n): a
    layer's weight gradient g x^T has norm |g| |x|; its bias gradient is g."""
    pieces = [math.hypot(*g) * math.hypot(*x) for g, x in zip(grads, trace["layer_inputs"])]
    pieces += [math.hypot(*g) for g in grads]
    pieces += [math.hypot(*d) for pair in trace.get("norm_grads", ()) for d in pair]
    return math.hypot(*pieces)


def clip_factor(total_norm, max_norm):
    """Pascanu, Mikolov and Bengio (2013), as torch.nn.utils.clip_grad_norm_
    does it: scale every gradient by max_norm / (norm + 1e-6) when that is
    below 1. Scaling every gradient is scaling the step."""
    factor = max_norm / (total_norm + CLIP_EPSILON)
    return factor if factor < 1.0 else 1.0


# Adam (Kingma and Ba 2015) as torch.optim.Adam computes it with its defaults.
ADAM_BETA1 = 0.9  # the decay of the running mean of the gradient...
ADAM_BETA2 = 0.999  # ...and of its running square
ADAM_EPSILON = 1e-8  # keeps the step finite where the running square is 0


def adam(network, norms, clip, monitor):
    """A step for training_run that moves every weight, bias and layer-norm
    gain and shift by Adam's rule, with no weight decay: for each parameter,
    with g its gradient (clipped first) and t the steps taken, from 1,
      m = 0.9 m + 0.1 g,   v = 0.999 v + 0.001 g^2,
      p -= lr / (1 - 0.9^t) * m / (sqrt(v) / sqrt(1 - 0.999^t) + 1e-8).
    Unlike SGD's, Adam's update is not the gradient scaled, so the monitor
    is given each hidden layer's real update, for the update/weight ratio."""
    beta1, beta2, rest1, rest2 = ADAM_BETA1, ADAM_BETA2, 1.0 - ADAM_BETA1, 1.0 - ADAM_BETA2
    epsilon, sqrt = ADAM_EPSILON, math.sqrt  # local names: this loop runs per parameter
    # The parameters in groups of rows: each layer's weights, then [its
    # biases], then [each gain] and [each shift]; m and v hold a group's
    # entries flat, row after row, so that each loop below runs once a group.
    groups = [rows for weights, biases in network for rows in (weights, [biases])]
    groups += [[vector] for pair in norms for vector in pair]
    means = [[0.0] * sum(map(len, rows)) for rows in groups]
    squares = [[0.0] * len(m) for m in means]
    taken = []

    def step(network, trace, grads, learning_rate):
        taken.append(1)
        scale = 1.0 if clip is None else clip_factor(gradient_norm(grads, trace), clip)
        gradients = []  # in the groups' order; dLoss/dW = grad x^T, row after row
        for grad, layer_input in zip(grads, trace["layer_inputs"]):
            grad = [scale * g for g in grad]
            gradients += [[g * x for g in grad for x in layer_input], grad]
        gradients += [
            [scale * d for d in vector] for pair in trace.get("norm_grads", ()) for vector in pair
        ]
        size = learning_rate / (1.0 - beta1 ** len(taken))
        root = sqrt(1.0 - beta2 ** len(taken))
        updates = []
        for gradient, m, v in zip(gradients, means, squares):
            m[:] = [beta1 * a + rest1 * g for a, g in zip(m, gradient)]
            v[:] = [beta2 * b + rest2 * g * g for b, g in zip(v, gradient)]
            updates.append([size * (a / (r / root + epsilon)) for a, r in zip(m, map(sqrt, v))])
        for layer in range(monitor.num_hidden_layers):
            monitor.record_update(layer, updates[2 * layer], network[layer][0])
        for rows, update in zip(groups, updates):
            width = len(rows[0])
            for start, row in zip(range(0, len(update), width), rows):
                row[:] = list(map(sub, row, update[start : start + width]))

    return step


def dosed_run(dosing, samples, monitor):
    """training_run with a dosing's treatments plugged in; yields its reports.

    A dosing holds the lesson's init_mode, weight_scale_override,
    learning_rate, layer_widths, epochs and network_seed, and "activation",
    "norm" ("layer": gain 1 and shift 0 at the start, learned like the
    weights), "clip" (a maximum gradient norm, or None) and "optimizer"
    ("sgd" or "adam"). The monitor is an ExamMonitor: it also sees each
    step, for the update/weight ratio.
    """
    widths, clip, activation = dosing["layer_widths"], dosing["clip"], dosing["activation"]
    network = init_network(
        widths, dosing["init_mode"], dosing["weight_scale_override"], dosing["network_seed"]
    )
    norms = [([1.0] * w, [0.0] * w) for w in widths[1:-1]] if dosing["norm"] == "layer" else []
    forward, layer_backward = forward_with_trace, ACTIVATIONS[activation]["backward"]
    if activation != "relu" or norms:
        forward = partial(treated_forward, ACTIVATIONS[activation]["layer"], norms)
    if norms:
        layer_backward = partial(normed_backward, layer_backward, norms)

    def step(network, trace, grads, learning_rate):
        if clip is not None:
            learning_rate *= clip_factor(gradient_norm(grads, trace), clip)
        monitor.record_step(network, trace, grads, learning_rate)
        sgd_step(network, trace, grads, learning_rate)
        for (gain, shift), (gain_grad, shift_grad) in zip(norms, trace.get("norm_grads", ())):
            gain[:] = [a - learning_rate * d for a, d in zip(gain, gain_grad)]
            shift[:] = [b - learning_rate * d for b, d in zip(shift, shift_grad)]

    if dosing["optimizer"] == "adam":
        step = adam(network, norms, clip, monitor)
    backprop = partial(backward, layer_backward=layer_backward)
    return training_run(
        network, samples, dosing["epochs"], dosing["learning_rate"], dosing["network_seed"],
        monitor, forward=forward, backprop=backprop, step=step,
    )  # fmt: skip


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
        optimizer="sgd",
        epochs=30,
        disease=DIAGNOSES[name][1],
    )
    for name, (init_mode, weight_std, learning_rate, widths, activation) in DOSES.items()
}
DOSING_KEYS = ("init_mode", "weight_scale_override", "learning_rate", "activation", "norm")
DOSING_KEYS += ("clip", "optimizer", "epochs")


def describe_dosing(patient):
    init = f"{patient['init_mode']} init"
    if patient["weight_scale_override"] is not None:  # it overrides any init mode's std
        init = f"init std={patient['weight_scale_override']:g}"
    treatments = [patient["activation"]] if patient["activation"] != "relu" else []
    treatments += ["layer norm"] if patient["norm"] == "layer" else []
    treatments += [f"clip={patient['clip']:g}"] if patient["clip"] is not None else []
    treatments += [patient["optimizer"]] if patient["optimizer"] != "sgd" else []
    widths = "-".join(map(str, patient["layer_widths"]))
    epochs = plural(patient["epochs"], "epoch")
    return ", ".join(
        [init, *treatments, f"lr={patient['learning_rate']:g}", f"widths {widths}", epochs]
    )


def plural(count, noun):
    """ "1 epoch", "2 epochs": a count and its noun, in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# ----------------------------------------------------------------------------
# The examination's monitor and warnings: the seventh reading, non-finite
# values, and the calm of a fitted network

# The seventh reading. Karpathy's rule of thumb (CS231n course notes, "Neural
# Networks Part 3: Learning and Evaluation"): an update should be about 1e-3
# of the size of the weights it changes, for a minibatch step. A step of one
# sample moves more (the healthy patient reads 2e-2 at epoch 1), so the
# examination warns only two decades either side of it.
UPDATE_RATIO_HIGH = 1e-1  # each step rewrites a tenth of the weights: too fast
UPDATE_RATIO_LOW = 1e-5  # the weights are effectively frozen


class ExamMonitor(TrainingMonitor):
    """The lesson's monitor for any activation, plus the seventh reading and
    a count of the inf and NaN left out of the statistics.

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
            count = len(grad) * len(layer_input)
            if count < 2:
                continue  # one weight has no spread: its ratio means nothing
            if self.weight_sums[index] is None:
                self.weight_sums[index] = matrix_sums(weights)
            total, squares = self.weight_sums[index]
            # The step moves W by -step * dW, dW = grad x^T.
            gradient_total, gradient_squares = outer_product_sums(grad, layer_input)
            step_total = step_size * gradient_total
            step_squares = step_size * step_size * gradient_squares
            weight_std = std_from_sums(total, squares, count)
            ratio = (
                std_from_sums(step_total, step_squares, count) / weight_std
                if weight_std
                else math.nan
            )
            self.record_ratio(index, ratio)
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

    def record_update(self, index, update, weights):
        """The same for an update another optimizer (Adam) made: std(update)
        / std(weights), over the entries of the weights feeding hidden layer
        index before the step, and of their update (a flat list)."""
        start = perf_counter()
        count = len(update)
        spread = std_from_sums(*matrix_sums(weights), count) if count > 1 else math.nan
        change = std_from_sums(*matrix_sums([update]), count)
        self.record_ratio(index, change / spread if spread else math.nan)
        self.ratio_seconds += perf_counter() - start

    def record_ratio(self, index, ratio):
        """Add one step's update/weight ratio of hidden layer index; a step
        whose weights have no finite spread has none (NaN) and is skipped."""
        if not math.isnan(ratio):
            self.ratio_sum_per_layer[index] += ratio
            self.ratio_count_per_layer[index] += 1

    def report(self):
        """The lesson's report with the activation's own histogram, n/a (NaN)
        where a reading has no meaning for the activation, and three more
        readings: "nonfinite_count" (the inf and NaN left out), "sample_count",
        "update_ratio", each layer's arithmetic mean over the epoch's steps
        (dominated by its largest terms, so one step that rewrites the weights
        shows in it), and "gradient_histogram", |dLoss/d(pre)| per decade."""
        start = perf_counter()
        report = super().report()
        posts = self.post_activations_per_layer
        if self.histogram_edges != HISTOGRAM_EDGES:
            report["histogram"] = [histogram(finite(post), self.histogram_edges) for post in posts]
        for key in self.not_applicable:
            report[key] = [math.nan] * self.num_hidden_layers
        report["nonfinite_count"] = [
            sum(len(values) - len(finite(values)) for values in layer)
            for layer in zip(self.pre_activations_per_layer, posts, self.grad_pre_per_layer)
        ]
        report["gradient_histogram"] = [
            histogram(list(map(abs, finite(grads))), GRADIENT_EDGES)
            for grads in self.grad_pre_per_layer
        ]
        report["sample_count"] = len(posts[0]) // self.layer_widths[1]
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


# Below this loss the network has fit its data, and its gradients and steps
# are small by nature: the lesson's fixed thresholds would call that calm
# "vanishing" and "too small", so the examination does not count them then.
FITTED_LOSS = 0.01
CALM_WHEN_FITTED = ("vanishing gradients", "update too small")
# Every kind of warning, in the order summaries list them.
WARNING_KINDS = (
    "dead neurons",
    "vanishing gradients",
    "exploding gradients",
    "saturation",
    "signal collapse",
    "non-finite values",
    "update too large",
    "update too small",
)


def examination_warnings(report):
    """Every warning of an examined epoch, by layer: flag_issues', then the
    non-finite values' and the update/weight ratio's. Returns (counted, calm):
    calm holds those not counted because the network has fit its data."""
    warnings = flag_issues(report)
    for index, (count, ratio) in enumerate(zip(report["nonfinite_count"], report["update_ratio"])):
        label = f"Layer {index + 1}"
        if count:
            text = f"{label}: {plural(count, 'non-finite value')} (NaN/inf)"
            warnings.append(HealthWarning(index + 1, "non-finite values", text))
        if ratio > UPDATE_RATIO_HIGH:
            text = f"{label}: update/weight ratio {ratio:.2e} (too large)"
            warnings.append(HealthWarning(index + 1, "update too large", text))
        elif ratio < UPDATE_RATIO_LOW:
            text = f"{label}: update/weight ratio {ratio:.2e} (too small)"
            warnings.append(HealthWarning(index + 1, "update too small", text))
    warnings = [precise(warning, report) for warning in warnings]
    warnings.sort(key=attrgetter("layer"))  # stable: each layer's stay in order
    fitted = report["loss"] < FITTED_LOSS
    counted = [w for w in warnings if not (fitted and w.kind in CALM_WHEN_FITTED)]
    return counted, [w for w in warnings if w not in counted]


# The shares flag_issues prints as whole percents, and their limits.
SHARES = {"dead neurons": DEAD_PERCENT_LIMIT, "saturation": SATURATED_PERCENT_LIMIT}


def precise(warning, report):
    """The warning, but for a share that rounds to its own limit (30.3% of
    pre-activations past 30%, printed "30%"), with the digits that show it
    is past it. The lesson's flag_issues keeps the lesson's text."""
    if warning.kind not in SHARES:
        return warning
    index, limit = warning.layer - 1, SHARES[warning.kind]
    if warning.kind == "dead neurons":
        percent = 100.0 * report["dead_count"][index] / report["layer_neuron_count"][index]
    else:
        percent = 100.0 * report["saturation_rate"][index]
    if round(percent) != limit:
        return warning
    digits = next(digits for digits in range(1, 17) if round(percent, digits) != limit)
    text = warning.text.replace(f"{percent:.0f}%", f"{percent:.{digits}f}%", 1)
    return warning._replace(text=text)


# ----------------------------------------------------------------------------
# One examination: train under the ExamMonitor, then print what it measured


def examine(patient, samples, halt_on_warning=False):
    """Train one patient under the ExamMonitor, to its last epoch or, halting,
    to its first warning. Returns its reports, each with its "warnings" and
    "calm" (see examination_warnings), and the seconds spent training, in the
    lesson's six readings and in the update/weight ratio."""
    monitor = ExamMonitor(patient["layer_widths"], patient["activation"])
    reports = []
    start = perf_counter()
    for report in dosed_run(patient, samples, monitor):
        report["warnings"], report["calm"] = examination_warnings(report)
        reports.append(report)
        if halt_on_warning and report["warnings"]:
            break
    readings, ratio = monitor.lesson_seconds, monitor.ratio_seconds
    return reports, (perf_counter() - start - readings - ratio, readings, ratio)


def print_examination(patient, reports, report_every, charset, halted=False, seconds=None):
    """The examination's charts: every report_every epochs, at the first sign
    of disease (the first epoch with a warning) and at the last; then the
    trends, the heatmap, the verdict and, given the seconds, the timing."""
    labels = ACTIVATIONS[patient["activation"]]["labels"]
    first = first_warned(reports)
    for report in reports:
        last = report is reports[-1]
        if report["epoch"] % report_every == 0 or last or report is first:
            lines = chart_lines(patient["label"], report, show_histogram=last, labels=labels)
            if report is first:
                lines.insert(1, "first sign: the first epoch with a warning")
            lines += update_ratio_lines(report) + warning_lines(report["warnings"])
            if report["calm"]:
                lines.append(
                    f"(not counted: {plural(len(report['calm']), 'warning')} of small gradients "
                    f"or steps; with the loss below {FITTED_LOSS:g} the network has fit its data)"
                )
            print("\n".join(lines) + "\n")
    if halted:
        print(f"halted at epoch {reports[-1]['epoch']}: the first warning stops the visit.\n")
    not_applicable = ACTIVATIONS[patient["activation"]]["not_applicable"]
    print("\n".join(trend_lines(reports, charset, not_applicable)))
    print("\n".join(histogram_heatmap(reports, charset, labels)))
    print(verdict(reports))
    if seconds:
        print(timing_line(*seconds))
    print()


def first_warned(reports):
    return next((report for report in reports if report["warnings"]), None)


def update_ratio_lines(report):
    ratios = "  ".join(
        f"{index + 1}: {readable(ratio, '.1e')}"
        for index, ratio in enumerate(report["update_ratio"])
    )
    limits = f"warns below {UPDATE_RATIO_LOW:g} or above {UPDATE_RATIO_HIGH:g}"
    return [f"update/weight ratio per layer ({limits}): {ratios}"]


def timing_line(training, readings, ratio):
    return (
        f"timing: training {training:.2f}s; the lesson's six readings {readings:.2f}s"
        f" ({100.0 * readings / training:.0f}% of training); the update/weight "
        f"ratio {ratio:.2f}s ({100.0 * ratio / training:.0f}%)"
    )


# The chart over time: trend lines and a histogram heatmap, one column per epoch.
SPARK_LEVELS = {"unicode": "▁▂▃▄▅▆▇█", "ascii": ".:-=+*#@"}
SHADE_LEVELS = {"unicode": " ░▒▓█", "ascii": " .:*#"}
ZERO_MARK, NONFINITE_MARK = "_", "!"
TRENDS = (
    # report key, title, log scale, per-neuron share (dead count / width)
    ("activation_std", "activation std", True, False),
    ("gradient_std", "gradient std", True, False),
    ("dead_count", "dead share", False, True),
    ("saturation_rate", "saturation share", False, False),
    ("update_ratio", "update/weight ratio", True, False),
)


def sparkline(values, low, high, log_scale, charset):
    """One character per value, from the lowest level (at low) to the highest
    (at high); ZERO_MARK for an exact zero on a log scale, NONFINITE_MARK for
    NaN or inf."""
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


def trend_lines(reports, charset, not_applicable=()):
    """Each reading of each layer across the epochs, one character per epoch.
    Log-scaled readings share one scale across the layers, from the smallest
    to the largest positive value of the run; shares run from 0 to 1."""
    lines = [
        f"trends over {plural(len(reports), 'epoch')} (one column per epoch; "
        f"{ZERO_MARK} = exactly 0, {NONFINITE_MARK} = NaN/inf):"
    ]
    losses = [report["loss"] for report in reports]
    positive = [loss for loss in losses if math.isfinite(loss) and loss > 0.0] or [1.0]
    low, high = min(positive), max(positive)
    lines.append(f"  loss, the temperature (log scale, {low:.1e} .. {high:.1e})")
    lines.append(f"    all layers {sparkline(losses, low, high, True, charset)}")
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


def histogram_heatmap(reports, charset, labels):
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


# The verdict: when did the chart first see the disease? A forward disease is
# carried up by the activations, so it starts at the lowest layer showing it;
# a backward one is carried down by the gradients, so it starts at the top
# and is worst at layer 1.
FORWARD_DISEASES = ("dead neurons", "saturation", "signal collapse")
BACKWARD_DISEASES = ("vanishing gradients", "exploding gradients")


def verdict(reports):
    """One line: whether and when the run diverged, and the first epoch with a
    warning, the loss then (beside the loss at epoch 1: had the loss curve
    noticed?) and where its diseases start; or that no warning was raised."""
    warned = first_warned(reports)
    if warned is None:
        last = reports[-1]
        final_loss = format_loss(last["loss"])
        return f"verdict: no warning in {plural(last['epoch'], 'epoch')}; final loss {final_loss}."
    warnings = warned["warnings"]
    since = f" (epoch 1: {format_loss(reports[0]['loss'])})" if warned["epoch"] > 1 else ""
    line = (
        f"first warning at epoch {warned['epoch']}, loss then {format_loss(warned['loss'])}"
        f"{since}: {first_of(warnings)}."
    )
    line = " ".join([line, *origins(warned)])
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
    return warnings[0].text + (f" (+{plural(others, 'more warning')})" if others else "")


def origins(report):
    """Where each family of disease in the report's warnings starts, in words."""
    warnings = report["warnings"]
    kinds = {warning.kind for warning in warnings}
    sentences = []
    forward = [kind for kind in FORWARD_DISEASES if kind in kinds]
    if forward:
        lowest = min(warning.layer for warning in warnings if warning.kind in forward)
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
    if abs(end / start - 1.0) < 0.005:
        return "stays the same"
    if start >= end:
        return f"shrinks {start / end:.3g}x"
    return f"grows {end / start:.3g}x"


def diverged_in(report):
    return sum(report["nonfinite_count"]) > 0 or not math.isfinite(report["loss"])


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
    ("update too small",     "always",           "Adam"),
    ("update too small",     "slow steps",       "steady learning rate"),
    ("no progress",          "always",           "Adam"),
    ("no progress",          "still falling",    "train longer"),
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
# Adam's dose, and its place first for "no progress" and "update too small",
# come from the analysis behind this treatment, on dose seeds 555, 31337, 4242
# and 2026 of tests/cure_rate.py (the older rows were tuned on seeds 1 and 3).
ADAM_LEARNING_RATE = 3e-3
STILL_FALLING = 0.9  # the loss fell by 10% or more over the last five epochs


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
    "still falling": lambda dosing, reports: still_falling(dosing, reports),
}


def still_falling(dosing, reports):
    """Whether more epochs could cure: nothing warns at the end, the loss fell
    by at least 10% over the last five epochs, and the dosing has its
    untreated epochs (it is given more at most once)."""
    recent = [report["loss"] for report in reports[-6:]]
    untreated = dosing.get("untreated_epochs", dosing["epochs"])
    fell = len(recent) == 6 and recent[-1] <= STILL_FALLING * recent[0]
    return fell and not reports[-1]["warnings"] and dosing["epochs"] == untreated


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
    "Adam": lambda dosing, reports: (
        f"Adam at lr={ADAM_LEARNING_RATE:g}",
        {"optimizer": "adam", "learning_rate": ADAM_LEARNING_RATE},
        "Kingma and Ba 2015",
    ),
    "train longer": lambda dosing, reports: (
        f"{2 * dosing['epochs']} epochs instead of {dosing['epochs']}",
        {"epochs": 2 * dosing["epochs"]},
        "its loss was still falling",
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
    first, last = first_warned(reports), reports[-1]
    signs = [
        (f"at epoch {report['epoch']}", {warning.kind for warning in report["warnings"]})
        for report in (first, last)
        if report is not None and report["warnings"]
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


def same_dosing(one, other):
    return all(one[key] == other[key] for key in DOSING_KEYS)


def set_back(treated, before):
    """Whether a treatment left a run worse than before: before, the last
    epoch warned nothing; after, the final loss is no lower."""
    return not before[-1]["warnings"] and not treated[-1]["loss"] < before[-1]["loss"]


def is_well(reports):
    """The cure's definition: the last epoch trips no warning and the final
    loss is below CURED_LOSS."""
    return not reports[-1]["warnings"] and reports[-1]["loss"] < CURED_LOSS


def apply_treatments(patient, prescription):
    """The patient with its dosing changed as prescribed; the task (data,
    widths, epochs, seeds) stays the same."""
    treated = dict(patient)
    for treatment in prescription:
        treated.update(treatment["dosing"])
    treated["label"] = f"{patient['patient'].upper()} ({describe_dosing(treated)})"
    return treated


def treat(patient, samples):
    """Examine the patient; while it is not well (see is_well), prescribe from
    the chart of the last round kept, apply it and examine again, up to
    TREATMENT_ROUNDS rounds. A round that sets the patient back (see set_back)
    is withdrawn: the next prescription starts from the round before it.
    Returns every round: a dict of its "dosing", the "treatments" given so
    far, its "reports", the "prescription" that made it and "withdrawn"."""
    patient = dict(patient, untreated_epochs=patient["epochs"])
    reports, _ = examine(patient, samples)
    rounds = [dict(dosing=patient, treatments=[], reports=reports, prescription=[])]
    rounds[0]["withdrawn"] = False
    base = rounds[0]
    while not is_well(reports) and len(rounds) <= TREATMENT_ROUNDS:
        tried = [round_["dosing"] for round_ in rounds]
        prescription = prescribe(base["reports"], base["dosing"], tried)
        if not prescription:
            break
        dosing = apply_treatments(base["dosing"], prescription)
        reports, _ = examine(dosing, samples)
        treatments = base["treatments"] + [treatment["name"] for treatment in prescription]
        withdrawn = set_back(reports, base["reports"])
        rounds.append(dict(dosing=dosing, treatments=treatments, reports=reports))
        rounds[-1].update(prescription=prescription, withdrawn=withdrawn)
        if not withdrawn:
            base = rounds[-1]
    return rounds


def kept_round(rounds):
    """The round the patient ends on: the last one not withdrawn."""
    return next(round_ for round_ in reversed(rounds) if not round_["withdrawn"])


def print_treatment(rounds, report_every, charset):
    """Each round's examination after its prescription, then the untreated
    patient beside the treated one and the outcome line."""
    for number, round_ in enumerate(rounds):
        if number:
            print(f"prescription, round {number}:")
            reasons = [f"- {given['name']}: {given['reason']}" for given in round_["prescription"]]
            print("\n".join(reasons) + "\n")
        print_examination(round_["dosing"], round_["reports"], report_every, charset)
        if round_["withdrawn"]:
            print(f"round {number} left the patient worse: its treatments are withdrawn\n")
    kept = kept_round(rounds)
    if kept is not rounds[0]:
        print("\n".join(comparison_lines(rounds[0], kept)))
    print(outcome(rounds, kept) + "\n")


def comparison_lines(before, after):
    """Untreated beside treated, each layer's readings at the last epoch:
    before -> after, each column as wide as its widest cell."""
    first, last = before["reports"][-1], after["reports"][-1]
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
        f"untreated: {describe_dosing(before['dosing'])}",
        f"treated:   {describe_dosing(after['dosing'])} ({', '.join(after['treatments'])})",
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
    untreated, reports = rounds[0]["reports"], final["reports"]
    final_loss = format_loss(reports[-1]["loss"])
    if len(rounds) == 1 and is_well(reports):
        warned = sum(1 for report in reports if report["warnings"])
        note = f" (it warned in {plural(warned, 'epoch')}, none at the last)" if warned else ""
        return f"outcome: healthy: nothing to treat{note}; final loss {final_loss}."
    loss = f"loss {format_loss(untreated[-1]['loss'])} before, {final_loss} after"
    if is_well(reports):
        after = plural(len(rounds) - 1, "round")
        return f"outcome: cured after {after} ({', '.join(final['treatments'])}); {loss}."
    warnings = reports[-1]["warnings"]
    if warnings:
        still = f"still warns: {first_of(warnings)}"
    else:
        still = f"no warning, but the final loss is not below {CURED_LOSS:g}"
    if len(rounds) == 1:
        return f"outcome: not cured: nothing in the prescription table answers it; {still}."
    after = plural(len(rounds) - 1, "round")
    kept = ", ".join(final["treatments"]) or "every treatment withdrawn"
    return f"outcome: not cured after {after} ({kept}); {still}; {loss}."


# ----------------------------------------------------------------------------
# Seeds or dose? The same patient over many seed pairs, on every core


def first_signs(run):
    """Train one run without charts: (the first epoch of each kind of warning
    it gave, its final loss)."""
    widths = run["layer_widths"]
    samples = make_training_data(run["sample_count"], widths[0], widths[-1], run["data_seed"])
    reports, _ = examine(run, samples)
    first = {}
    for report in reports:
        for warning in report["warnings"]:
            first.setdefault(warning.kind, report["epoch"])
    return first, reports[-1]["loss"]


def seed_pairs(patient, seed_count):
    """The patient on seed_count seed pairs: pair k adds k to its data and
    network seeds."""
    return [
        dict(patient, data_seed=patient["data_seed"] + k, network_seed=patient["network_seed"] + k)
        for k in range(seed_count)
    ]


def seed_summary(patient, results):
    """Per warning kind, on how many runs it fired and the median epoch it
    first did; the median final loss; and how many runs never warned."""
    count = len(results)
    first_epochs = {
        kind: [first[kind] for first, _ in results if kind in first] for kind in WARNING_KINDS
    }
    data_seeds = seed_range(patient["data_seed"], count)
    network_seeds = seed_range(patient["network_seed"], count)
    lines = [
        f"=== {patient['label']} | {plural(count, 'seed pair')}: data "
        f"{data_seeds}, network {network_seeds} ==="
    ]
    fired = {kind: epochs for kind, epochs in first_epochs.items() if epochs}
    if fired:
        lines.append("warning kind        |  runs | median first epoch")
    for kind, epochs in fired.items():
        lines.append(f"{kind:<19} | {f'{len(epochs)}/{count}':>5} | {statistics.median(epochs):g}")
    # NaN has no place in an order (median() of it depends on where it
    # stands): the runs whose loss became NaN are counted apart.
    final_losses = [loss for _, loss in results]
    ordered = [loss for loss in final_losses if not math.isnan(loss)]
    median = format_loss(statistics.median(ordered)) if ordered else "n/a"
    nan_runs = len(final_losses) - len(ordered)
    lost = f" ({plural(nan_runs, 'run')} ended with a NaN loss)" if nan_runs else ""
    lines.append(f"median final loss: {median}{lost}")
    silent = sum(not first for first, _ in results)
    lines.append(f"no warning: {silent} of {plural(count, 'seed pair')}")
    return lines


def seed_range(first, count):
    return f"seed {first}" if count == 1 else f"seeds {first}..{first + count - 1}"


def map_on_every_core(function, items):
    """[function(item) for item in items], the items handed out one at a
    time to one worker process per core (the runs are independent, and pure
    Python uses one core each), so that the cores stay evenly busy.

    A stop (Ctrl-C, SIGTERM, SIGHUP) raises KeyboardInterrupt here, and on
    the way out every worker is killed and reaped, whatever it was doing:
    the workers start with the stops held, so none can slip in while one is
    half started, and they leave the stops to this process. A worker that
    died of a stop passes it on; one that died otherwise is an error. No
    worker is ever replaced, so nothing waits for work that cannot come.
    (Imported here: only this needs multiprocessing, which costs every run
    about 1% of its time to import.)
    """
    import multiprocessing
    from multiprocessing.connection import wait

    results, workers, next_item = {}, [], 0
    try:
        with stops_held():
            for _ in range(min(len(items), os.cpu_count() or 1)):
                ours, theirs = multiprocessing.Pipe()
                worker = multiprocessing.Process(target=work_on, args=(function, items, theirs))
                workers.append((worker, ours))
                worker.start()
                theirs.close()
        for _, connection in workers:  # the first item of each
            offer(connection, next_item)
            next_item += 1
        waiting = [connection for _, connection in workers]
        while waiting:
            for connection in wait(waiting):
                try:
                    index, result = connection.recv()
                except EOFError:  # the worker is done, or dead
                    waiting.remove(connection)
                    continue
                results[index] = result
                offer(connection, next_item if next_item < len(items) else None)
                next_item += 1
    finally:
        with stops_held():  # a stop now waits until every worker is reaped
            for worker, connection in workers:
                if worker.pid is not None and worker.exitcode is None:
                    worker.kill()
                worker.join()
                connection.close()
    if len(results) < len(items):
        code = next(worker.exitcode for worker, _ in workers if worker.exitcode)
        if -code in STOPS:
            raise KeyboardInterrupt(-code)
        raise ChildProcessError(f"a worker process ended with status {code} before its work")
    return [results[index] for index in range(len(items))]


def offer(connection, index):
    with contextlib.suppress(BrokenPipeError):  # a worker that died: its EOF will say so
        connection.send(index)


def work_on(function, items, connection):
    """In a worker: ignore Ctrl-C and die at once, quietly, on SIGTERM or
    SIGHUP (the parent handles both); then answer each index the parent
    sends with (index, function(items[index])), until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stop in STOPS[1:]:
        signal.signal(stop, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # let through the stops held while we started
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
    for index in iter(connection.recv, None):
        connection.send((index, function(items[index])))
    connection.close()


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
        standardize=True,  # as the paper did: each feature to mean 0 and variance 1
        networks=1,
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
        standardize=False,
        # Theory speaks of the expected variance. At width 16 each layer's
        # variance ratio scatters around it, and over 30 layers the scatter
        # compounds: one network is one draw, the mean over several is theory's.
        networks=10,
        epochs=10,
        learning_rate=0.005,
        paper="He et al. (2015), Sec. 2.2 and Fig. 3: a 30-layer ReLU network with Xavier "
        "initialization stalls and does not learn; with their initialization it converges.",
    ),
}


def measure_experiment(name, data_seed, network_seed):
    """Run one experiment: for each init, the readings at initialization
    beside theory's prediction (see measure_at_init) and, if the experiment
    trains, the loss of every epoch."""
    experiment = EXPERIMENTS[name]
    widths = experiment["layer_widths"]
    samples = make_training_data(experiment["sample_count"], widths[0], widths[-1], data_seed)
    if experiment["standardize"]:
        samples = standardized(samples)
    measured = dict(name=name, data_seed=data_seed, network_seed=network_seed, losses={})
    measured["at_init"] = {
        init: measure_at_init(experiment, init, samples, network_seed)
        for init in experiment["inits"]
    }
    measured["over_networks"] = {
        init: over_networks(experiment, init, samples, network_seed) for init in experiment["inits"]
    }
    for init in experiment["inits"] if experiment["epochs"] else ():
        dosing = dict(
            layer_widths=widths, init_mode=init, weight_scale_override=None, norm="none",
            learning_rate=experiment["learning_rate"], activation=experiment["activation"],
            clip=None, optimizer="sgd", epochs=experiment["epochs"], network_seed=network_seed,
        )  # fmt: skip
        monitor = ExamMonitor(widths, experiment["activation"])
        measured["losses"][init] = [
            report["loss"] for report in dosed_run(dosing, samples, monitor)
        ]
    return measured


def measure_at_init(experiment, init_mode, samples, network_seed):
    """Forward and backward every sample through a fresh network, without a
    step. Returns the examination's report of the readings, each hidden
    layer's pre-activation std, and the theory's prediction of both stds."""
    widths, activation = experiment["layer_widths"], ACTIVATIONS[experiment["activation"]]
    network = init_network(widths, init_mode, None, network_seed)
    monitor = ExamMonitor(widths, experiment["activation"])
    output_grads = []
    for inputs, target_class in samples:
        trace = treated_forward(activation["layer"], [], network, inputs)
        grads = backward(network, trace, target_class, activation["backward"])
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


def standardized(samples):
    """The samples with each feature shifted and scaled to mean 0, variance 1."""
    columns = [mean_and_std(list(column)) for column in zip(*(x for x, _ in samples))]
    return [([(v - m) / s for v, (m, s) in zip(x, columns)], target) for x, target in samples]


def over_networks(experiment, init_mode, samples, network_seed):
    """Each hidden layer's pre-activation std as the root of its variance's
    mean over experiment["networks"] networks (seeds network_seed + k), and
    what theory predicts for it from the input alone: the variance law
    applied layer after layer, Var(z_l) = gain * fan_in * Var(W) * Var(z_l-1)."""
    count = experiment["networks"]
    variances = [
        [std * std for std in measure_at_init(experiment, init_mode, samples, network_seed + k)[1]]
        for k in range(count)
    ]
    measured = [math.sqrt(exact_sum(list(layer)) / count) for layer in zip(*variances)]
    widths, gain = experiment["layer_widths"], LINEAR_REGIME_GAIN[experiment["activation"]]
    variance, theory = mean_square([value for features, _ in samples for value in features]), []
    for layer, (fan_in, fan_out) in enumerate(pairwise(widths[:-1])):
        variance *= (
            (gain if layer else 1.0) * fan_in * init_std(fan_in, fan_out, init_mode, None) ** 2
        )
        theory.append(math.sqrt(variance))
    return measured, theory


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


def print_experiment(measured):
    """The experiment's tables beside theory, its training losses and its
    finding, every number from this run, with the paper's own words."""
    experiment = EXPERIMENTS[measured["name"]]
    widths, activation = experiment["layer_widths"], experiment["activation"]
    hidden = widths[1:-1]
    print(f"=== {experiment['title']} ===")
    print(
        f"{activation} network, widths {widths[0]}-{hidden[0]}x{len(hidden)}-"
        f"{widths[-1]}, {experiment['sample_count']} samples of the toy task (data seed "
        f"{measured['data_seed']}, network seed {measured['network_seed']})"
    )
    bend = ", halved after a ReLU" if activation == "relu" else (
        " (tanh ~ linear; where it bends it passes on less)"
    )  # fmt: skip
    print(
        f"theory, one layer at a time: Var(z) = fan_in * Var(W) * Var(z below){bend}; "
        "gradients likewise going down, with fan_out"
    )
    for init_mode, (report, pre_stds, predicted_pre, predicted_grad) in measured["at_init"].items():
        # A typical hidden layer's factor: fan * Var(W), halved after a ReLU.
        factor = (
            LINEAR_REGIME_GAIN[activation]
            * widths[2]
            * init_std(widths[1], widths[2], init_mode, None) ** 2
        )
        print(
            f"\n{init_mode} init, at initialization: in theory each layer multiplies the "
            f"variance by {factor:.2f}"
        )
        averaged, from_input = measured["over_networks"][init_mode]
        many = experiment["networks"] > 1
        header = "layer |  act std |  pre std |   theory |  grad std |    theory"
        if many:
            header += f" | pre std, {experiment['networks']} nets | theory from input"
        print(header)
        for index, pre_std in enumerate(pre_stds):
            row = (
                f"{index + 1:>5} | {readable(report['activation_std'][index], '8.2e')} | "
                f"{readable(pre_std, '8.2e')} | {readable(predicted_pre[index], '8.2e')} | "
                f"{readable(report['gradient_std'][index], '9.2e')} | "
                f"{readable(predicted_grad[index], '9.2e')}"
            )
            if many:
                row += f" | {readable(averaged[index], '16.2e')}"
                row += f" | {readable(from_input[index], '17.2e')}"
            print(row)
    print()
    losses = measured["losses"]
    if losses:
        print(
            f"training, lr={experiment['learning_rate']:g} (chance: ln {widths[-1]} = "
            f"{math.log(widths[-1]):.3f}):"
        )
        print("epoch | " + " | ".join(f"{init + ' loss':>12}" for init in losses))
        for epoch, row in enumerate(zip(*losses.values())):
            print(f"{epoch + 1:>5} | " + " | ".join(f"{format_loss(loss):>12}" for loss in row))
        print()
    print(experiment_finding(experiment, measured))
    print(f"paper: {experiment['paper']}\n")


def experiment_finding(experiment, measured):
    """The finding in words, every number from this run."""
    last = len(experiment["layer_widths"]) - 2
    parts = []
    for init_mode, (report, *_) in measured["at_init"].items():
        activations = change(report["activation_std"][0], report["activation_std"][-1])
        gradients = change(report["gradient_std"][-1], report["gradient_std"][0])
        part = (
            f"{init_mode}: activation std {activations} from layer 1 to {last}, "
            f"gradient std {gradients} from layer {last} down to 1"
        )
        if experiment["networks"] > 1:
            averaged, from_input = measured["over_networks"][init_mode]
            theory = change(from_input[0], from_input[-1])
            part += (
                f" in this one network; the mean variance over {experiment['networks']} "
                f"networks, what theory speaks of, gives a pre-activation std that "
                f"{change(averaged[0], averaged[-1])} (theory: {theory})"
            )
        losses = measured["losses"].get(init_mode)
        if losses:
            learned = losses[-1] < LEARNS_BELOW * math.log(experiment["layer_widths"][-1])
            part += f", and after {len(losses)} epochs the loss is {format_loss(losses[-1])}: " + (
                "it learns" if learned else "it does not learn"
            )
        parts.append(part)
    (first, (one, *_)), (second, (other, *_)) = measured["at_init"].items()
    spread = [report["activation_std"][0] / report["activation_std"][-1] for report in (one, other)]
    parts.append(
        f"{second} against {first}: the activation std shrinks {spread[0] / spread[1]:.3g}x "
        "less over the layers"
    )
    return "finding: " + "; ".join(parts) + "."


def experiment_records(measured):
    """The experiment's JSON records, one per init and hidden layer."""
    return [
        dict(
            experiment=measured["name"],
            init=init_mode,
            layer=index + 1,
            activation_std=report["activation_std"][index],
            gradient_std=report["gradient_std"][index],
            pre_activation_std=pre_std,
            predicted_pre_activation_std=predicted_pre[index],
            predicted_gradient_std=predicted_grad[index],
        )
        for init_mode, (report, pre_stds, predicted_pre, predicted_grad) in measured[
            "at_init"
        ].items()
        for index, pre_std in enumerate(pre_stds)
    ]


# ----------------------------------------------------------------------------
# Pictures: every run as one HTML page of SVG charts, no script, nothing fetched
#
# One small set of SVG helpers draws every chart: axes with linear or log
# ticks, lines or dots with the exact numbers in an SVG <title> (shown on
# hover), limits with the region beyond them tinted, marks, a legend, and
# heatmap cells. Colours are Okabe and Ito's (2008), safe for colour-blind
# eyes; each line also has a dash pattern of its own, for grey print.

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 2", "9 3 2 3")
WIDTH, HEIGHT = 400, 250  # one chart, in px: three fit side by side at 1280 px
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 26, 74  # the plot's margins; the legend sits below
TINT = "#D55E0022"  # the region beyond a warning limit
# |dLoss/d(pre-activation)| per decade, the gradient's histogram: exact zeros
# (a unit that was off), then one bucket per decade from 1e-10 to 10.
GRADIENT_EDGES = (0.0, *(10.0**exponent for exponent in range(-10, 2)))
GRADIENT_LABELS = ["= 0", *(f"{edge:.0e}" for edge in GRADIENT_EDGES[1:]), "> 1e+01"]
STYLE = (
    "body{font-family:sans-serif;max-width:1260px;margin:1em auto;color:#222}"
    "section{border-top:2px solid #0072B2;margin-top:1.5em}.charts{display:flex;"
    "flex-wrap:wrap;gap:8px}.round{flex:1;min-width:300px}.round svg{width:100%;height:auto}"
    ".round h3{min-height:2.6em}svg{background:#fff}"
    "h3{margin:.6em 0 .2em}p,li{max-width:75em}"
)


def drawable(value, log):
    return math.isfinite(value) and (value > 0.0 or not log)


def axis(low, high, log):
    """A range holding low..high that starts and ends on round values, and its
    ticks: decades on a log axis (1, 2 and 5 times them within two decades,
    every second or third one when there are many), else 1, 2 or 5 times a
    power of ten."""
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        if last - first <= 2:
            bounds = ticks = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5)]
        else:
            bounds = [10.0**exponent for exponent in range(first, last + 1)]
            ticks = bounds[:: max(1, (last - first + 5) // 6)]
    else:
        magnitude = 10.0 ** math.floor(math.log10((high - low) / 5 or 1.0))
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude * 5 >= high - low)
        steps = range(math.floor(low / step), math.ceil(high / step) + 1)
        bounds = ticks = [round(k * step, 12) for k in steps]  # 0.6, not 0.6000000000000001
    bottom = max(value for value in bounds if value <= low * (1 + 1e-9))
    top = min(value for value in bounds if value >= high * (1 - 1e-9))
    return bottom, top, [tick for tick in ticks if bottom <= tick <= top]


def chart(
    title,
    x_label,
    y_label,
    series,
    log_y=False,
    y_range=None,
    limits=(),
    marks=(),
    x_labels=None,
    width=WIDTH,
):
    """One SVG chart. series: (name, [(x, y), ...], marker), the marker "line",
    "dot" or "bar" (a short level line, for a median). A y that cannot be
    drawn (NaN, inf) is left out, and a 0 on a log axis sits on the x axis;
    the series' <title> says so and holds every value. limits: (value,
    "above" or "below"), a warning limit drawn dashed with the region beyond
    it tinted. marks: (x, label) vertical lines. x_labels: the names of x =
    0, 1, 2, ... on a categorical axis."""
    ys = [y for _, line, _ in series for _, y in line if drawable(y, log_y)]
    for value, beyond in limits:  # on a log axis, a decade beyond: the tinted region shows
        ys.append(value * 10.0 if log_y and beyond == "above" else value / 10.0 if log_y else value)
    low, high = y_range or (min(ys, default=1.0), max(ys, default=1.0))
    low, high = (min(low, 0.0), max(high, 1e-12)) if not log_y else (low, max(high, low * 1.01))
    low, high, y_ticks = axis(low, high, log_y)
    xs = [x for _, line, _ in series for x, _ in line] or [1.0]
    x_low, x_high = (
        (-0.5, len(x_labels) - 0.5) if x_labels else (min(xs), max(max(xs), min(xs) + 1))
    )
    inner_w, inner_h = width - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    where = math.log10 if log_y else float

    def to_x(x):
        return LEFT + inner_w * (x - x_low) / (x_high - x_low)

    def to_y(y):
        position = (where(y) - where(low)) / (where(high) - where(low)) if y > 0 or not log_y else 0
        return TOP + inner_h * (1.0 - min(max(position, 0.0), 1.0))

    parts = [svg_open(width, HEIGHT, title)]
    for value, beyond in limits:
        edge = to_y(value)
        top, bottom = (TOP, edge) if beyond == "above" else (edge, TOP + inner_h)
        parts.append(
            f'<rect x="{LEFT}" y="{top:.1f}" width="{inner_w}" height="{bottom - top:.1f}" '
            f'fill="{TINT}"><title>a warning {beyond} {value:g}</title></rect>'
        )
        parts.append(segment(LEFT, edge, LEFT + inner_w, edge, "#D55E00", "4 3"))
    for tick in y_ticks:
        parts += [
            segment(LEFT, to_y(tick), LEFT + inner_w, to_y(tick), "#ddd", ""),
            text(LEFT - 4, to_y(tick) + 4, f"{tick:g}", anchor="end"),
        ]
    positions = list(range(len(x_labels))) if x_labels else axis(x_low, x_high, False)[2]
    names = x_labels or [f"{position:g}" for position in positions]
    # As many labels as fit side by side (~6 px a character at this size).
    step = math.ceil(len(positions) * (max(map(len, names)) + 2) * 6 / inner_w)
    for position, name in list(zip(positions, names))[::step]:
        if x_low <= position <= x_high:
            parts.append(text(to_x(position), TOP + inner_h + 14, name))
    parts += [
        segment(LEFT, TOP, LEFT, TOP + inner_h, "#444", ""),
        segment(LEFT, TOP + inner_h, LEFT + inner_w, TOP + inner_h, "#444", ""),
        text(LEFT + inner_w / 2, TOP + inner_h + 30, x_label),
        text(14, TOP + inner_h / 2, y_label, rotate=True),
    ]
    for x, label in marks:
        parts.append(segment(to_x(x), TOP, to_x(x), TOP + inner_h, "#000", "2 2"))
        parts.append(text(to_x(x) + 3, TOP + 10, label, anchor="start"))
    for index, (name, line, marker) in enumerate(series):
        colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
        shown = [(to_x(x), to_y(y)) for x, y in line if drawable(y, log_y) or y == 0.0]
        left_out = len(line) - len(shown)
        zeros = sum(1 for _, y in line if log_y and y == 0.0)
        note = f"; {zeros} zeros sit on the x axis" if zeros else ""
        note += f"; {left_out} NaN or inf not drawn" if left_out else ""
        values = ", ".join(f"{x:g}: {y!r}" for x, y in line)
        parts.append(f"<g><title>{escape(f'{name}{note}: {values}')}</title>")
        if marker == "line" and len(shown) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in shown)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" '
                f'stroke-width="1.6" stroke-dasharray="{dash}"/>'
            )
        elif marker == "bar":
            parts += [segment(x - 12, y, x + 12, y, colour, "", 3) for x, y in shown]
        else:
            parts += [
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in shown
            ]
        parts.append("</g>")
        row, column = divmod(index, 4)
        x, y = LEFT + column * (inner_w / 4), TOP + inner_h + 46 + 12 * row
        parts += [
            segment(x, y - 4, x + 14, y - 4, colour, dash, 2.5),
            text(x + 17, y, name, anchor="start", size=10),
        ]
    return "\n".join(parts) + "</svg>"


def svg_open(width, height, title):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>'
        + text(width / 2, 16, title, weight="bold")
    )


def segment(x1, y1, x2, y2, colour, dash, width=1.0):
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
        f'stroke-width="{width}" stroke-dasharray="{dash}"/>'
    )


def text(x, y, words, anchor="middle", size=11, weight="normal", rotate=False):
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'font-weight="{weight}"{turn}>{escape(words)}</text>'
    )


def heatmap(title, row_labels, shares):
    """Cells of a share from 0 to 1, darker = larger, one row per label (the
    first on top) and one column per epoch, each with its exact share."""
    columns = len(shares[0]) if shares else 1
    cell_w, cell_h = (WIDTH - LEFT - RIGHT) / columns, 14
    height = TOP + cell_h * len(row_labels) + 36
    parts = [svg_open(WIDTH, height, title)]
    for row, (label, cells) in enumerate(zip(row_labels, shares)):
        y = TOP + row * cell_h
        parts.append(text(LEFT - 4, y + 11, label, anchor="end", size=10))
        for column, share in enumerate(cells):
            parts.append(
                f'<rect x="{LEFT + column * cell_w:.1f}" y="{y:.1f}" width="{cell_w:.1f}" '
                f'height="{cell_h}" fill="#0072B2" fill-opacity="{share**0.5:.3f}" stroke="#eee">'
                f"<title>{escape(label)}, epoch {column + 1}: {share!r}</title></rect>"
            )
    bottom = TOP + cell_h * len(row_labels)
    middle = LEFT + (WIDTH - LEFT - RIGHT) / 2
    parts.append(text(middle, bottom + 14, f"epoch 1 to {columns}"))
    parts.append(text(middle, bottom + 28, "darker = a larger share (square-root scale)", size=10))
    return "\n".join(parts) + "</svg>"


# fmt: off
READING_CHARTS = (  # report key, title, y axis, log scale, warning limits
    ("activation_std", "activation std", "std of the outputs", True,
     ((COLLAPSED_ACT_STD, "below"),)),
    ("gradient_std", "gradient std", "std of dLoss/d(pre)", True,
     ((VANISHING_GRAD_STD, "below"), (EXPLODING_GRAD_STD, "above"))),
    ("gradient_max", "max gradient", "largest |dLoss/d(pre)|", True, ()),
    ("dead_count", "dead share", "share of the neurons", False,
     ((DEAD_PERCENT_LIMIT / 100, "above"),)),
    ("saturation_rate", "saturation share", "share of pre-activations", False,
     ((SATURATED_PERCENT_LIMIT / 100, "above"),)),
    ("update_ratio", "update/weight ratio", "std(update) / std(W)", True,
     ((UPDATE_RATIO_LOW, "below"), (UPDATE_RATIO_HIGH, "above"))),
)
# fmt: on


def layer_series(reports, key):
    """One (name, [(epoch, value)], "line") per hidden layer; dead counts as shares."""
    widths = reports[0]["layer_neuron_count"]
    return [
        (f"layer {layer + 1}", [(r["epoch"], r[key][layer] / scale) for r in reports], "line")
        for layer, scale in enumerate(widths if key == "dead_count" else [1] * len(widths))
    ]


def loss_series(reports):
    return [("mean loss", [(report["epoch"], report["loss"]) for report in reports], "line")]


def y_range(series_groups, log):
    """One y range for charts drawn side by side on the same axes."""
    ys = [y for group in series_groups for _, line, _ in group for _, y in line if drawable(y, log)]
    return (min(ys), max(ys)) if ys else None


def run_charts(patient, reports, ranges=None):
    """The loss (first sign marked) and every reading of one run, each a
    line per hidden layer; ranges: each chart's y range, to share axes."""
    ranges, first = ranges or {}, first_warned(reports)
    marks = [(first["epoch"], "first sign")] if first else []
    y_label = "cross-entropy (log)"
    charts = [
        chart("loss", "epoch", y_label, loss_series(reports), True, ranges.get("loss"), (), marks)
    ]
    skip = ACTIVATIONS[patient["activation"]]["not_applicable"]
    for key, title, y_label, log, limits in READING_CHARTS:
        if key not in skip:
            series = layer_series(reports, key)
            charts.append(
                chart(title, "epoch", y_label, series, log, ranges.get(key), limits, marks)
            )
    return charts


def distribution_chart(title, histograms, labels):
    """One curve per layer over the buckets of its histogram, on shared axes,
    as in Glorot and Bengio's figures 6 and 7."""
    curves = [(f"layer {layer + 1}", list(enumerate(bucket_shares(counts))), "line")
              for layer, counts in enumerate(histograms)]  # fmt: skip
    return chart(title, "bucket, up to", "share of the values", curves, x_labels=labels)


def examination_section(patient, reports):
    """An examination: its dosing, verdict and first sign in words, then the
    loss and the readings, each layer's histogram over time (fastai's colour
    dimension), and the last epoch's distributions of activations and of
    |gradients|."""
    first, last = first_warned(reports), reports[-1]
    labels = ACTIVATIONS[patient["activation"]]["labels"]
    charts = run_charts(patient, reports)
    for layer in range(len(last["histogram"])):
        shares = [[bucket_shares(r["histogram"][layer])[bucket] for r in reports]
                  for bucket in reversed(range(len(labels)))]  # fmt: skip
        charts.append(heatmap(f"layer {layer + 1}: activations over time", labels[::-1], shares))
    charts.append(
        distribution_chart(f"epoch {last['epoch']}: activations", last["histogram"], labels)
    )
    gradients = f"epoch {last['epoch']}: |dLoss/d(pre)|"
    charts.append(distribution_chart(gradients, last["gradient_histogram"], GRADIENT_LABELS))
    signs = "".join(f"<li>{escape(warning.text)}</li>" for warning in (first or last)["warnings"])
    return (
        f"<section><h2>{escape(patient['label'])}</h2><p>{escape(describe_dosing(patient))}</p>"
        f"<p>{escape(verdict(reports))}</p>"
        + (f"<h3>first sign, epoch {first['epoch']}</h3><ul>{signs}</ul>" if first else "")
        + f'<div class="charts">{"".join(charts)}</div></section>'
    )


def treatment_section(rounds):
    """The outcome, then the untreated run and each round side by side, on
    the same axes, the treatments named over each."""
    ranges = {"loss": y_range([loss_series(round_["reports"]) for round_ in rounds], True)}
    for key, _, _, log, _ in READING_CHARTS:
        ranges[key] = y_range([layer_series(round_["reports"], key) for round_ in rounds], log)
    kept, columns = kept_round(rounds), []
    for number, round_ in enumerate(rounds):
        given = ", ".join(round_["treatments"]) or "untreated"
        state = " (withdrawn)" if round_["withdrawn"] else " (kept)" if round_ is kept else ""
        charts = "".join(run_charts(round_["dosing"], round_["reports"], ranges))
        heading = f"round {number}: {escape(given)}{state}"
        columns.append(f'<div class="round"><h3>{heading}</h3>{charts}</div>')
    return (
        f"<section><h2>{escape(rounds[0]['dosing']['label'])}</h2>"
        f"<p><b>{escape(outcome(rounds, kept))}</b></p>"
        f'<div class="charts">{"".join(columns)}</div></section>'
    )


SHORT_KINDS = dict(zip(WARNING_KINDS, ["dead", "vanishing", "exploding", "saturation"]))
SHORT_KINDS.update({"signal collapse": "collapse", "non-finite values": "NaN/inf"})
SHORT_KINDS.update({"update too large": "big steps", "update too small": "tiny steps"})


def seeds_section(patient, results):
    """Each seed pair's first epoch of each kind of warning, and its final
    loss, as dots, the medians marked."""
    kinds = [kind for kind in WARNING_KINDS if any(kind in first for first, _ in results)]
    # Each seed pair a little to the right of the last, so that equal epochs stay visible.
    shifted = [(first, k * 0.5 / len(results) - 0.25) for k, (first, _) in enumerate(results)]
    dots = [(i + shift, first[kind]) for first, shift in shifted
            for i, kind in enumerate(kinds) if kind in first]  # fmt: skip
    medians = [(i, statistics.median([first[kind] for first, _ in results if kind in first]))
               for i, kind in enumerate(kinds)]  # fmt: skip
    epochs = [("one dot per seed pair", dots, "dot"), ("median", medians, "bar")]
    losses = [loss for _, loss in results]
    median = statistics.median([loss for loss in losses if not math.isnan(loss)] or [math.nan])
    final = [("final loss", list(enumerate(losses)), "dot")]
    final.append(("median", [(0, median), (len(losses) - 1, median)], "line"))
    names = [SHORT_KINDS[kind] for kind in kinds]
    charts = [chart("first epoch of each warning", "kind of warning", "epoch", epochs,
                    x_labels=names, width=2 * WIDTH)] if kinds else []  # fmt: skip
    charts.append(chart("final loss of each seed pair", "seed pair k", "cross-entropy (log)",
                        final, True))  # fmt: skip
    summary = "\n".join(seed_summary(patient, results))
    return (
        f"<section><h2>{escape(patient['label'])}: {len(results)} seed pairs</h2>"
        f'<pre>{escape(summary)}</pre><div class="charts">{"".join(charts)}</div></section>'
    )


def experiment_section(measured):
    """Each init's per-layer std beside theory (and for Glorot and Bengio's
    network, each layer's distributions at initialization), then the
    training losses, the finding and the paper's words."""
    experiment, charts = EXPERIMENTS[measured["name"]], []
    for init, (report, pre_stds, predicted_pre, predicted_grad) in measured["at_init"].items():
        layers = range(1, len(pre_stds) + 1)
        stds = (("pre-activation", pre_stds, predicted_pre),
                ("gradient", report["gradient_std"], predicted_grad))  # fmt: skip
        for what, measured_stds, theory in stds:
            lines = [("measured", list(zip(layers, measured_stds)), "line"),
                     ("theory", list(zip(layers, theory)), "line")]  # fmt: skip
            charts.append(
                chart(f"{init} init: {what} std", "hidden layer", "std (log)", lines, True)
            )
        if len(layers) <= 8:  # one curve per layer: readable for a few layers only
            labels = ACTIVATIONS[experiment["activation"]]["labels"]
            title = f"{init} init at initialization"
            charts.append(distribution_chart(f"{title}: activations", report["histogram"], labels))
            gradients = report["gradient_histogram"]
            charts.append(distribution_chart(f"{title}: |gradients|", gradients, GRADIENT_LABELS))
    if measured["losses"]:
        lines = [(f"{init} init", list(enumerate(losses, 1)), "line")
                 for init, losses in measured["losses"].items()]  # fmt: skip
        charts.append(chart("training loss", "epoch", "cross-entropy (log)", lines, True))
    return (
        f"<section><h2>{escape(experiment['title'])}</h2>"
        f"<p>{escape(experiment_finding(experiment, measured))}</p>"
        f"<p>{escape('paper: ' + experiment['paper'])}</p>"
        f'<div class="charts">{"".join(charts)}</div></section>'
    )


def html_page(argv, sections):
    """The whole page: what ran, then a section per patient, treatment,
    seed summary or experiment."""
    command = " ".join(["python main.py", *argv])
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(command)}'
        f"</title><style>{STYLE}</style></head><body><h1>Training health monitor</h1>"
        f"<p><code>{escape(command)}</code> (hover over a line or a cell for its numbers)</p>\n"
        + "\n".join(sections)
        + "</body></html>\n"
    )


# ----------------------------------------------------------------------------
# Export: JSON Lines, and writing a file whole

RUN_KEYS = ["patient", "label", "init_mode", "weight_scale_override", "learning_rate"]
RUN_KEYS += ["layer_widths", "activation", "norm", "clip", "optimizer", "epochs", "data_seed"]
RUN_KEYS += ["network_seed"]
# An examined epoch's report, as written: the lesson's readings, then the
# examination's, then the epoch and its loss.
RECORD_KEYS = [*REPORT_KEYS, "gradient_histogram", "nonfinite_count", "sample_count"]
RECORD_KEYS += ["update_ratio", "epoch", "loss"]


def json_records(patient, reports, **extra):
    """One JSON-ready dict per epoch: the run's label and dosing, the report,
    then any extra keys. NaN and inf have no JSON spelling: they become null."""
    dosing = {key: json_safe(patient[key]) for key in RUN_KEYS}
    return [
        {**dosing, **{key: json_safe(report[key]) for key in RECORD_KEYS}, **extra}
        for report in reports
    ]


def json_safe(value):
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_lines(records):
    return "".join(json.dumps(record, allow_nan=False) + "\n" for record in records)


def write_file(path, text):
    """Write text whole or not at all: a temporary file in the same folder,
    renamed over the path only once it is complete. The file gets the mode
    open(path, "w") would give it, not the temporary file's private 0600."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".health-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
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


def output_problem(path):
    """Why an output file could not be written at path, or "" if it can. It
    is written whole beside the path and renamed over it, which would turn a
    named pipe, a device or a symbolic link into a regular file: so the path
    must be a regular file or a new one, in a folder we can write to."""
    if not path or path.startswith("-"):
        return "give a file path (./-name for a name that starts with '-')"
    if path.endswith(("/", os.sep)):
        return "a path ending in a slash names a folder: give a file path"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"the folder {folder!r} does not exist: give a path in an existing folder"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    except OSError as error:  # a name too long for the file system, say
        return f"{error.strerror}: give a file path"
    if not stat.S_ISREG(mode):
        kinds = [(stat.S_ISDIR, "folder"), (stat.S_ISLNK, "symbolic link")]
        kinds += [(stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket")]
        kind = next((kind for is_kind, kind in kinds if is_kind(mode)), "device")
        return f"it is a {kind}, not a regular file: give a regular file or a new path"
    try:  # a scratch file is the honest test of the folder: os.access says yes to root
        with tempfile.TemporaryFile(dir=folder):
            return ""
    except OSError:
        return "give a file path in a writable folder"


# ----------------------------------------------------------------------------
# The command line

# Upper bounds that keep one run within memory (under ~2.5 GB with every bound
# reached at once) and, with the lesson's other values, within a few minutes.
# In pure Python a kept float costs ~32 bytes, and a sample ~0.2 us per weight
# and ~5 us per hidden neuron.
MAX_EPOCHS = 1_000  # ~30 s at the lesson's size; every epoch's report is kept for the trends
MAX_SAMPLES = 10_000  # ~1.5 minutes at the lesson's size: 30 epochs of ~3 s
MAX_WIDTH = 1_024  # any one layer; the data keeps samples x features floats: <= 330 MB
MAX_HIDDEN_NEURONS = 1_024  # the monitor keeps samples x this x 3 floats an epoch: <= 1 GB
MAX_WEIGHTS = 300_000  # ~60 ms a sample: the lesson's 80 samples x 30 epochs in ~2.5 minutes
MAX_SEED_PAIRS = 1_000  # --seeds: a thousand runs of the lesson's size take ~10 minutes
# The lesson's run takes only these flags; main() is it with the lesson's values.
LESSON_SEEDS = {"data_seed": 7, "network_seed": 11, "sample_count": 80}
REPORT_EVERY = 10


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument gets one line on stderr (and exit status 2),
    naming what is allowed when a flag lacks its value."""

    def error(self, message):
        flag = message.removeprefix("argument ").split(":")[0]
        if message.endswith("expected one argument") and flag in self.allowed:
            message += f": give {self.allowed[flag]}"
        if message.startswith("unrecognized arguments"):
            message += f" (python {self.prog} --help lists the flags)"
        self.exit(2, f"{self.prog}: error: {message}".replace("\n", "\\n") + "\n")


def whole_number(low, high=None):
    """An argparse type: a whole number from low to high (or up from low)."""
    allowed = (
        f"a whole number {low} or above" if high is None else f"a whole number from {low} to {high}"
    )

    def parse(text):
        try:
            value = int(text) if text == text.strip() else None
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give {allowed}")
        return value

    parse.allowed = allowed
    return parse


def above_zero(text):
    try:
        value = float(text) if text == text.strip() else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0.0):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give {above_zero.allowed}")
    return value


above_zero.allowed = "a finite number above 0"


def layer_widths(text):
    parts = text.split(",")
    widths = [int(part) for part in parts] if all(map(str.isdecimal, parts)) else []
    problem = widths_problem(widths)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {problem}")
    return widths


layer_widths.allowed = "whole numbers, comma-separated, like 8,16,16,4"


def widths_problem(widths):
    """What is wrong with these layer widths, or "" if nothing."""
    if len(widths) < 2 or not all(1 <= width <= MAX_WIDTH for width in widths):
        return f"give {layer_widths.allowed}, each from 1 to {MAX_WIDTH}: features, hidden, classes"
    if len(widths) == 2:
        return "there is no hidden layer to examine: give one or more hidden widths, like 8,16,4"
    if widths[-1] < 2:
        return "one class is nothing to learn: give 2 or more classes (the last width)"
    if sum(widths[1:-1]) > MAX_HIDDEN_NEURONS:
        return f"{sum(widths[1:-1])} hidden neurons: give at most {MAX_HIDDEN_NEURONS} in all"
    if sum(map(mul, widths, widths[1:])) > MAX_WEIGHTS:
        return f"{sum(map(mul, widths, widths[1:]))} weights: give at most {MAX_WEIGHTS} in all"
    return ""


def build_parser():
    parser = OneLineParser(
        prog="main.py",
        allow_abbrev=False,
        description="No flag, or only seeds and size: the lesson's run. Any other: the full "
        "examination of each --patient (default: healthy and sick).",
    )
    groups = [parser.add_argument_group(title) for title in ("dosing", "seeds and size", "views")]
    dosing, seeds, view = groups
    modes = parser.add_argument_group("beyond one examination")
    flags = [
        parser.add_argument("--patient", action="append", choices=PATIENTS, metavar="NAME",
            help=f"examine this patient (repeatable): {', '.join(PATIENTS)}"),
        parser.add_argument("--list-patients", action="store_true", help="list the patients"),
        dosing.add_argument("--init", choices=("kaiming", "xavier", "standard", "bad"),
            metavar="MODE", help="kaiming, xavier, standard or bad (with --scale)"),
        dosing.add_argument("--scale", type=above_zero, metavar="STD",
            help="weight std, replacing the init's"),
        dosing.add_argument("--lr", type=above_zero, help="learning rate"),
        dosing.add_argument("--epochs", type=whole_number(1, MAX_EPOCHS), metavar="N",
            help=f"epochs, 1 to {MAX_EPOCHS}"),
        dosing.add_argument("--widths", type=layer_widths, metavar="8,16,...,4",
            help="features, hidden widths, classes"),
        dosing.add_argument("--activation", choices=ACTIVATIONS, metavar="NAME",
            help=", ".join(ACTIVATIONS)),
        dosing.add_argument("--norm", choices=("none", "layer"), metavar="KIND",
            help="none, or layer: a layer norm before each activation"),
        dosing.add_argument("--clip", type=above_zero, metavar="MAX_NORM",
            help="clip each step's gradient to this global norm"),
        dosing.add_argument("--optimizer", choices=("sgd", "adam"), metavar="NAME",
            help="sgd, or adam (Kingma and Ba 2015)"),
        seeds.add_argument("--data-seed", type=whole_number(0), metavar="N", help="default 7"),
        seeds.add_argument("--network-seed", type=whole_number(0), metavar="N",
            help="initial weights and sample order; default 11"),
        seeds.add_argument("--samples", type=whole_number(1, MAX_SAMPLES), metavar="N",
            dest="sample_count",
            help=f"training samples, 1 per class to {MAX_SAMPLES}; default 80"),
        view.add_argument("--report-every", type=whole_number(1), metavar="N",
            help="a chart every N epochs (default 10)"),
        view.add_argument("--halt-on-warning", action="store_true",
            help="stop at the first warning"),
        view.add_argument("--ascii", action="store_true",
            help="plain characters for trends and heatmap"),
        view.add_argument("--timing", action="store_true",
            help="seconds spent training and monitoring"),
        view.add_argument("--json", metavar="PATH", help="also write every report to PATH"),
        view.add_argument("--html", metavar="PATH",
            help="also draw every chart in a page at PATH, for a browser"),
        modes.add_argument("--treat", action="store_true",
            help=f"prescribe, treat, examine again, up to {TREATMENT_ROUNDS} rounds"),
        modes.add_argument("--seeds", type=whole_number(1, MAX_SEED_PAIRS), metavar="N",
            help="N seed pairs: a disease of the dose or of the seed?"),
        modes.add_argument("--experiment", choices=EXPERIMENTS, metavar="NAME",
            help="readings at init beside theory: glorot-bengio (5 tanh layers, standard "
            "vs Xavier init), he (30 ReLU layers, Xavier vs Kaiming; then trains)"),
    ]  # fmt: skip
    parser.allowed = {
        action.option_strings[0]: getattr(action.type, "allowed", f"one of {action.metavar}")
        if action.choices is None
        else f"one of {', '.join(action.choices)}"
        for action in flags
        if action.nargs != 0
    }
    parser.allowed["--json"] = parser.allowed["--html"] = "a file path"
    return parser


def joined_values(argv, parser):
    """argv with a value that starts with '-' joined to its flag (--lr=-1e-3):
    argparse takes such a value for a flag, and says only "expected one
    argument"; joined, the flag's own check says what is allowed."""
    joined = []
    for token in argv:
        flag_value = token.startswith("-") and not token.startswith("--")
        if joined and joined[-1] in parser.allowed and flag_value:
            joined[-1] += f"={token}"
        else:
            joined.append(token)
    return joined


# The flags each mode cannot take: --list-patients runs nothing, an experiment
# builds its own networks, and --seeds and --treat each run a patient in a way
# of their own.
MODE_CONFLICTS = {
    "list_patients": "*",
    "experiment": "patient init scale lr epochs widths activation norm clip optimizer sample_count "
    "report_every halt_on_warning timing treat seeds",
    "seeds": "treat halt_on_warning json timing report_every",
    "treat": "halt_on_warning timing",
}


def check_args(args, parser):
    """A parser error for a flag the chosen mode cannot take, or an output
    file that could not be written."""
    for mode, conflicts in MODE_CONFLICTS.items():
        names = list(vars(args)) if conflicts == "*" else conflicts.split()
        for name in names if given(args, mode) else ():
            if name != mode and given(args, name):
                flag, with_flag = (f"--{key.replace('_', '-')}" for key in (name, mode))
                parser.error(f"argument {flag}: not allowed with {with_flag}")
    for flag, path in (("--json", args.json), ("--html", args.html)):
        problem = output_problem(path) if path is not None else ""
        if problem:
            parser.error(f"argument {flag}: {path!r} cannot be written: {problem}")


def given(args, name):
    return getattr(args, name) not in (None, False)


def asks_for_the_lesson(args):
    """The rule: no flag but the lesson's seeds and size asks for the lesson's run."""
    return not any(given(args, name) for name in vars(args) if name not in LESSON_SEEDS)


def patient_runs(args, parser):
    """The runs the arguments ask for, each a patient dict with its seeds, or a
    parser error for a combination no single argument can judge."""
    flags = ("init", "scale", "lr", "epochs", "widths", "activation", "norm", "clip", "optimizer")
    keys = ("init_mode", "weight_scale_override", "learning_rate", "epochs", "layer_widths")
    keys += ("activation", "norm", "clip", "optimizer")
    overrides = {key: getattr(args, flag) for flag, key in zip(flags, keys) if given(args, flag)}
    if args.init is not None and args.scale is None:
        # An init mode given on the command line brings its own std: a
        # patient's std override (sick's 1.0) must not silently outlive it.
        overrides["weight_scale_override"] = None
    seeds = {key: value if getattr(args, key) is None else getattr(args, key)
             for key, value in LESSON_SEEDS.items()}  # fmt: skip
    runs = []
    for name in args.patient or (["custom"] if overrides else ["healthy", "sick"]):
        run = dict(PATIENTS.get(name, PATIENTS["healthy"]), patient=name, **overrides)
        run.update(seeds)
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
                f"{run['layer_widths'][-1]} classes: give at least one sample per class"
            )
        runs.append(run)
    return runs


def run_the_command(args, parser):
    """Train and print what args ask for; return the JSON records and, if a
    page is asked for, its sections."""
    records, sections = [], []
    if args.list_patients:
        for name, patient in PATIENTS.items():
            print(f"{name:<10} {describe_dosing(patient)} -- {patient['disease']}")
        return records, sections
    if args.experiment:
        measured = measure_experiment(
            args.experiment,
            LESSON_SEEDS["data_seed"] if args.data_seed is None else args.data_seed,
            LESSON_SEEDS["network_seed"] if args.network_seed is None else args.network_seed,
        )  # fmt: skip
        print_experiment(measured)
        sections += [experiment_section(measured)] if args.html else []
        return experiment_records(measured), sections
    runs = patient_runs(args, parser)
    if asks_for_the_lesson(args):
        return lesson_run(runs), sections
    every, charset = args.report_every or REPORT_EVERY, stdout_charset(args.ascii)
    for run in runs:
        widths = run["layer_widths"]
        samples = make_training_data(run["sample_count"], widths[0], widths[-1], run["data_seed"])
        if args.seeds:
            results = map_on_every_core(first_signs, seed_pairs(run, args.seeds))
            print("\n".join(seed_summary(run, results)) + "\n")
            sections += [seeds_section(run, results)] if args.html else []
        elif args.treat:
            rounds = treat(run, samples)
            print_treatment(rounds, every, charset)
            for number, round_ in enumerate(rounds):
                extra = dict(round=number, treatments=round_["treatments"])
                records += json_records(round_["dosing"], round_["reports"], **extra)
            sections += [treatment_section(rounds)] if args.html else []
        else:
            reports, seconds = examine(run, samples, args.halt_on_warning)
            halted = args.halt_on_warning and bool(reports[-1]["warnings"])
            print_examination(run, reports, every, charset, halted, args.timing and seconds)
            records += json_records(run, reports)
            sections += [examination_section(run, reports)] if args.html else []
    return records, sections


def lesson_run(runs):
    """The lesson's main(); on other seeds or size, the same two train() calls."""
    if all(run[key] == value for run in runs for key, value in LESSON_SEEDS.items()):
        return main() or []
    seeds = runs[0]
    samples = make_training_data(seeds["sample_count"], 8, 4, seeds["data_seed"])
    for run in runs:
        dosing = [run[key] for key in ("init_mode", "weight_scale_override", "learning_rate")]
        train(run["label"], run["layer_widths"], *dosing, run["epochs"], samples,
              run["network_seed"], REPORT_EVERY)  # fmt: skip
    return []


def stdout_charset(ascii_requested):
    try:
        (SPARK_LEVELS["unicode"] + SHADE_LEVELS["unicode"]).encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "ascii"
    return "ascii" if ascii_requested else "unicode"


class GuardedStdout:
    """Stands in for sys.stdout (print needs an object with write and flush),
    so that losing stdout cannot crash a run or cost its JSON file.

    The first write or flush that fails (the reader of a pipe has left, the
    disk is full, stdout is closed) is kept in `error`, and the real stdout is
    pointed at the null device, so that what is still buffered in it cannot
    fail again when Python exits. The rest is dropped: a run with a file to
    write trains on for it (keep_going); any other stops, as each later write
    raises the error.
    """

    def __init__(self, stream):
        self.stream, self.keep_going = stream, False
        self.encoding = getattr(stream, "encoding", None)
        # Python sets sys.stdout to None when it starts with stdout closed.
        self.error = None if stream is not None else OSError(errno.EBADF, "it is closed")

    def write(self, text):
        self.attempt(self.stream and self.stream.write, text)
        if self.error is not None and not self.keep_going:
            raise self.error
        return len(text)

    def flush(self):
        self.attempt(self.stream and self.stream.flush)

    def attempt(self, action, *args):
        if self.error is None:
            try:
                action(*args)
            except OSError as error:
                self.error = error
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, self.stream.fileno())
                os.close(null)


# Signals that stop a run: Ctrl-C (SIGINT), SIGTERM, the one kill sends, and
# SIGHUP, sent when the terminal closes (Windows has no SIGHUP).
STOPS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
BROKEN_PIPE_STATUS = 141  # 128 + SIGPIPE: what a shell reports when a reader leaves


def stop_like_ctrl_c(signum, frame):
    """Signal handler: raise what Ctrl-C raises, with the signal's number, so
    that one place stops the run; the first stop is the one that counts, so
    the rest are ignored while it unwinds."""
    for stop in STOPS:
        signal.signal(stop, signal.SIG_IGN)
    raise KeyboardInterrupt(signum)


@contextlib.contextmanager
def stops_held():
    """A with block in which a stop waits (pending) until the block ends
    (where signals can be held at all: Windows cannot)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def command_line(argv):
    """Run what argv asks for and return the exit status: 0 when done; 1 when
    a file or stdout could not be written; 2 for a bad argument; 128 + N when
    stopped by signal N, as a shell reports it (130 Ctrl-C, 143 SIGTERM, 129
    SIGHUP), and 141 (SIGPIPE) when the reader of stdout has left."""
    parser, stdout = build_parser(), GuardedStdout(sys.stdout)
    sys.stdout, status, unwritten, written = stdout, 0, [], []  # the files asked for
    try:
        args = parser.parse_args(joined_values(argv, parser))
        check_args(args, parser)
        asked = (("JSON file", args.json), ("HTML page", args.html))
        unwritten = [(what, path) for what, path in asked if path is not None]
        stdout.keep_going = bool(unwritten)
        records, sections = run_the_command(args, parser)
        texts = {
            "JSON file": lambda: json_lines(records),
            "HTML page": lambda: html_page(argv, sections),
        }
        for what, path in list(unwritten):
            with stops_held():  # a stop waits until we know whether the file was written
                status = save_file(path, texts[what](), parser.prog)
                if status:
                    break
                unwritten.remove((what, path))
                written.append(path)
            said = plural(len(records), "report") if what == "JSON file" else "the charts"
            print(f"wrote {said} to {printable(path)}")
        stdout.flush()
    except SystemExit as exit:  # --help, or argparse's one line for a bad argument
        status = exit.code
        stdout.flush()
    except KeyboardInterrupt as interrupt:
        signum = interrupt.args[0] if interrupt.args else signal.SIGINT
        status = interrupted(signum, [what for what, _ in unwritten])
    except OSError as error:
        if error is not stdout.error:  # a lost stdout is the only failure expected here
            raise
    finally:
        sys.stdout = stdout.stream
    if stdout.error is None or status != 0:
        return status
    if isinstance(stdout.error, BrokenPipeError):
        return BROKEN_PIPE_STATUS  # quietly: the reader chose to stop reading
    went_on = (
        f"the run went on and wrote {' and '.join(map(repr, written))}" if written else "stopped"
    )
    reason = stdout.error.strerror or str(stdout.error)
    print(f"{parser.prog}: error: cannot write to stdout: {reason}; {went_on}", file=sys.stderr)
    return 1


def save_file(path, text, prog):
    """write_file; 0 if it succeeded, else 1 and one line on stderr saying
    why (a full disk, a file size limit, no right to replace it)."""
    try:
        write_file(path, text)
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"{prog}: error: could not write {path!r}: {reason}; nothing was written",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def printable(text):
    """text as stdout can print it: a character its encoding cannot hold (an
    undecodable byte of a file name from argv, or an accented letter on an
    ASCII terminal) becomes a backslash escape instead of an error."""
    encoding = sys.stdout.encoding or "ascii"
    return text.encode(encoding, "backslashreplace").decode(encoding)


def interrupted(signum, unwritten):
    """Say on stderr which signal stopped the run (and which files it asked
    for were not written); return the status a shell expects."""
    by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
    unwritten = f"; no {' or '.join(unwritten)} was written" if unwritten else ""
    print(f"interrupted{by}: stopped cleanly{unwritten}.", file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    for stop in STOPS:
        signal.signal(stop, stop_like_ctrl_c)
    status = command_line(sys.argv[1:])
    for stop in STOPS:  # the run is over and has said so: a stop now changes nothing
        signal.signal(stop, signal.SIG_IGN)
    sys.exit(status)
