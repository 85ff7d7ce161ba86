"""Training health monitor: read a network's chart, not only its temperature.

The runnable companion to the lesson "Activation and Gradient Health": it trains a
healthy and a sick list-based network on one toy task, and every 10 epochs prints
each hidden layer's six readings and the warnings they trip.

    python main.py                  the lesson's run (the same as: python main.py lesson)
    python main.py examine dead     a patient's examination (--help: every command)
    python -m pytest                the tests

Pure Python, standard library only. Contents: the lesson's code in the lesson's order
(list math; data and network; forward pass, backprop and SGD; the monitor; the flag
function; the chart; training). Then, beyond the lesson and extending it from below:
dosings (activations, layer norm, clipping, Adam); the patients; the examination;
prescribe, treat and prove the cure; seeds on every core; the founding experiments
(Glorot and Bengio 2010, He et al. 2015); the page of SVG charts; JSON export; reading
a run recorded elsewhere (PyTorch); the command line.
"""

import math
import random
import sys

if sys.version_info < (3, 10):  # noqa: UP036 (many a system Python is 3.9: one line)
    sys.exit(f"main.py needs Python 3.10 or newer; this is {sys.version.split()[0]}")

from bisect import bisect_right
from collections import namedtuple
from itertools import groupby, pairwise
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
HISTOGRAM_LABELS = ["= 0", *(f"<= {edge:g}" for edge in HISTOGRAM_EDGES[1:]), "> 100000"]

CLUSTER_SPREAD = 1.0  # std of the class centres; each sample adds unit noise

HealthReport = dict[str, list[float] | list[list[float]] | list[int] | int]


# ----------------------------------------------------------------------------
# List math. Sums are math.fsum, exactly rounded, so every Python from 3.10 to
# 3.13 prints the same digits (3.12 changed how sum() rounds).


def matvec(weights, vector):
    """Multiply a matrix (a list of rows) by a vector."""
    return [math.fsum(map(mul, row, vector)) for row in weights]


def add_vectors(left, right):
    return list(map(add, left, right))


def softmax(logits):
    # Subtracting the largest logit makes every exp() at most 1: no overflow,
    # even for logits of 1e6.
    top = max(logits)
    exps = [math.exp(value - top) for value in logits]
    total = math.fsum(exps)
    return [value / total for value in exps]


def cross_entropy(logits, target_class):
    """-log softmax(logits)[target_class], via log-sum-exp: finite for huge logits."""
    top = max(logits)
    log_total = math.log(math.fsum([math.exp(value - top) for value in logits]))
    return top + log_total - logits[target_class]


def safe_relu(value):
    # ReLU, clamped at RELU_CAP. The NaN of a diverged network passes through.
    if value <= 0.0:
        return 0.0
    return RELU_CAP if value > RELU_CAP else value


def mean_and_std(values):
    """Mean and population std (NaN for none), in two passes: a big mean can't cancel the spread."""
    if not values:
        return math.nan, math.nan
    centre = math.fsum(values) / len(values)
    return centre, math.dist(values, [centre] * len(values)) / math.sqrt(len(values))


# ----------------------------------------------------------------------------
# Data and network


def make_training_data(sample_count, feature_count, class_count, seed):
    """A seeded toy task: (features, class_index) pairs, one Gaussian cluster per class."""
    rng = random.Random(seed)
    centres = [
        [rng.gauss(0.0, CLUSTER_SPREAD) for _ in range(feature_count)] for _ in range(class_count)
    ]
    classes = [index % class_count for index in range(sample_count)]  # the classes in turn
    return [([rng.gauss(centre, 1.0) for centre in centres[k]], k) for k in classes]


# A weight std per init mode, from a layer's fan_in and fan_out. Kaiming (He et
# al. 2015) keeps a ReLU layer's variance steady; "bad" has no std of its own.
INIT_STDS = {"kaiming": lambda fan_in, fan_out: math.sqrt(2.0 / fan_in)}


def init_network(layer_widths, init_mode, weight_scale_override, seed):
    """Random weights and zero biases: a (weights, biases) pair per layer, W as fan_out rows."""
    rng = random.Random(seed)
    network = []
    for fan_in, fan_out in pairwise(layer_widths):
        scale = init_std(fan_in, fan_out, init_mode, weight_scale_override)
        weights = [[rng.gauss(0.0, scale) for _ in range(fan_in)] for _ in range(fan_out)]
        network.append((weights, [0.0] * fan_out))
    return network


def init_std(fan_in, fan_out, init_mode, weight_scale_override):
    """One layer's weight std: weight_scale_override if given, else its init mode's."""
    override = weight_scale_override
    return INIT_STDS[init_mode](fan_in, fan_out) if override is None else override


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


def relu_backward(weights, grad, trace, layer_index):
    """The gradient one layer down: (W^T grad) times ReLU's derivative there."""
    below = trace["pre_activations"][layer_index - 1]
    # ReLU' is 0 where a neuron was off (pre <= 0): its entry of W^T grad is never
    # summed, nor a row whose grad is 0. Above RELU_CAP it is 1: the cap only keeps values finite.
    rows = [i for i, g in enumerate(grad) if g != 0.0]
    if not rows:
        return [0.0] * len(below)
    weights_t = list(zip(*[weights[i] for i in rows]))  # W^T, its columns where grad != 0
    live_grad = [grad[i] for i in rows]
    return [
        math.fsum(map(mul, weights_t[j], live_grad)) if value > 0.0 else 0.0
        for j, value in enumerate(below)
    ]


def backward(network, trace, target_class, layer_backward=relu_backward):
    """dLoss/d(pre-activation) of every layer for one traced sample (also the bias gradients)."""
    probabilities = trace["post_activations"][-1]
    # Softmax followed by cross-entropy has the famously simple gradient p - y.
    grad = [p - (1.0 if index == target_class else 0.0) for index, p in enumerate(probabilities)]
    grads = [grad]
    for layer_index in range(len(network) - 1, 0, -1):
        grad = layer_backward(network[layer_index][0], grad, trace, layer_index)
        grads.append(grad)
    return grads[::-1]


def sgd_step(network, trace, pre_activation_grads, learning_rate):
    """One SGD step in place: dLoss/dW = grad x^T, so row i of W moves by -lr * grad_i * x."""
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
        # Below any output: a neuron whose outputs were all NaN is not counted dead.
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
        """One summary number (or histogram) per hidden layer."""
        stats = [mean_and_std(post) for post in self.post_activations_per_layer]
        return {
            "activation_mean": [mean for mean, _ in stats],
            "activation_std": [std for _, std in stats],
            "gradient_std": [mean_and_std(grads)[1] for grads in self.grad_pre_per_layer],
            "gradient_max": [largest_size(grads) for grads in self.grad_pre_per_layer],
            # A ReLU output is never below 0: a neuron whose maximum is 0 never fired.
            "dead_count": [peaks.count(0.0) for peaks in self.neuron_max_per_layer],
            "saturation_rate": [saturation_rate(pre) for pre in self.pre_activations_per_layer],
            "layer_neuron_count": self.layer_widths[1:-1],
            "histogram": [histogram(post) for post in self.post_activations_per_layer],
        }


def largest_size(values):
    """The largest |value| (NaN for no values): it is one of the two extremes."""
    return max(abs(max(values)), abs(min(values))) if values else math.nan


def saturation_rate(values):
    """Share of values beyond +-SATURATION_LIMIT (NaN for no values)."""
    if not values:
        return math.nan
    return len([value for value in values if abs(value) > SATURATION_LIMIT]) / len(values)


def histogram(values, edges=HISTOGRAM_EDGES):
    """Count values per bucket (<= each edge, then above the last), by bisection."""
    ordered = sorted(values)
    at_or_below = [*(bisect_right(ordered, edge) for edge in edges), len(ordered)]
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


def table_lines(header, rows, widths=(), align=">", rule=False):
    """Rows joined by " | ", each column as wide as its widest cell or its minimum width."""
    minimums = [*widths, *[0] * len(header)]
    widths = [max(low, *map(len, column)) for column, low in zip(zip(header, *rows), minimums)]
    aligns = align if len(align) > 1 else align * len(widths)
    lines = [header, *([["-" * width for width in widths]] if rule else []), *rows]
    padded = [
        [f"{cell:{side}{width}}" for cell, side, width in zip(line, aligns, widths)]
        for line in lines
    ]
    return [" | ".join(cells).rstrip() for cells in padded]


def readable(value, spec):
    # A reading with no value (NaN: nothing finite to reduce) says so plainly.
    return "n/a" if math.isnan(value) else format(value, spec)


def format_activation(value):
    # Three decimals for a healthy layer; one for an exploded one in the 1e5s;
    # scientific from a million on, so the column keeps its width.
    if abs(value) >= 1e6:
        return readable(value, ".2e")
    return readable(value, ".3f" if abs(value) < 1000.0 else ".1f")


def format_loss(value):
    # Four decimals for a loss that means something; scientific for an exploded
    # one or one too small for four decimals.
    if math.isnan(value):
        return "NaN"
    return format(value, ".4f" if 1e-4 <= abs(value) < 1e4 or value == 0.0 else ".3e")


HEALTH_HEADER = ["layer", "act mean", "act std", "grad std", "max grad", "dead", "sat %"]


def health_table(report):
    """The lesson's per-layer table."""
    return table_lines(HEALTH_HEADER, health_rows(report), widths=(5, 9, 8, 9, 9, 5, 5), rule=True)


def health_rows(report):
    """One row of the table's cells per hidden layer."""
    cells = zip(
        map(format_activation, report["activation_mean"]),
        map(format_activation, report["activation_std"]),
        [readable(value, ".2e") for value in report["gradient_std"]],
        [readable(value, ".2e") for value in report["gradient_max"]],
        map(dead_text, report["dead_count"], report["layer_neuron_count"]),
        [readable(value, ".0%") for value in report["saturation_rate"]],
    )
    return [[str(layer), *row] for layer, row in enumerate(cells, 1)]


def dead_text(dead, neuron_count):
    return "n/a" if math.isnan(dead) else f"{dead}/{neuron_count}"


def bucket_shares(counts):
    """Each bucket's share of a layer's histogram, from 0 to 1."""
    total = max(sum(counts), 1)
    return [count / total for count in counts]


def histogram_chart(report, labels=HISTOGRAM_LABELS, bar_width=10):
    """The activation histogram, a column per layer: each '#' is 10%, a '.' under 5%."""

    def bar(share):
        marks = "#" * round(share * bar_width) or ("." if share else "")
        return f"{marks:<{bar_width}} {100.0 * share:3.0f}%"

    layer_shares = [bucket_shares(counts) for counts in report["histogram"]]
    rows = [[label, *(bar(shares[k]) for shares in layer_shares)] for k, label in enumerate(labels)]
    header = ["bucket", *(f"layer {index + 1}" for index in range(len(layer_shares)))]
    lines = ["activation histogram (share of post-activations per bucket):"]
    return lines + ["  " + line for line in table_lines(header, rows, align="<")]


def chart_lines(label, report, show_histogram=False):
    lines = [f"=== {label} | epoch {report['epoch']} | per-layer health ==="]
    lines += [f"loss: {format_loss(report['loss'])}", *health_table(report)]
    return lines + (histogram_chart(report) if show_histogram else [])


def warning_lines(warnings):
    if not warnings:
        return ["no warnings: every layer is healthy."]
    return ["WARNINGS:"] + [f"- {warning.text}" for warning in warnings]


def print_health_chart(label, report, show_histogram=False):
    lines = chart_lines(label, report, show_histogram) + warning_lines(flag_issues(report))
    print("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------
# Training the two patients


def training_run(network, samples, epochs, learning_rate, shuffle_seed, monitor, steps=None):
    """Per-sample SGD on cross-entropy, yielding each epoch's report, epoch and mean loss."""
    forward, backprop, step = steps or (forward_with_trace, backward, sgd_step)
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
        report["loss"] = math.fsum(losses) / len(losses)
        yield report


# fmt: off
def train(label, layer_widths, init_mode, weight_scale_override, learning_rate, epochs, samples,
          network_seed, report_every):
    """Train one patient, printing its chart every report_every epochs; return every report."""
    network = init_network(layer_widths, init_mode, weight_scale_override, network_seed)
    monitor = TrainingMonitor(layer_widths)
    reports = []
    last_charted = epochs - epochs % report_every
    for report in training_run(network, samples, epochs, learning_rate, network_seed, monitor):
        reports.append(report)
        if report["epoch"] % report_every == 0:
            print_health_chart(label, report, show_histogram=report["epoch"] == last_charted)
    return reports


def main(data_seed=7, network_seed=11, sample_count=80):
    """The lesson's run; returns both patients' reports."""
    samples = make_training_data(sample_count=sample_count, feature_count=8,
                                 class_count=4, seed=data_seed)
    healthy = train(label="HEALTHY (kaiming init, lr=0.05)", layer_widths=[8, 16, 16, 16, 16, 4],
                    init_mode="kaiming", weight_scale_override=None, learning_rate=0.05,
                    epochs=30, samples=samples, network_seed=network_seed, report_every=10)
    sick = train(label="SICK (oversized init, lr=0.8)", layer_widths=[8, 16, 16, 16, 16, 4],
                 init_mode="bad", weight_scale_override=1.0, learning_rate=0.8,
                 epochs=30, samples=samples, network_seed=network_seed, report_every=10)
    return healthy, sick
# fmt: on


# ============================================================================
# Beyond the lesson: dosings, a patient for every disease, the examination,
# prescriptions and cures, seeds, the founding experiments, the page, export,
# and the command line.
# Everything above is the lesson; a reader beside the lesson can stop here.
# ============================================================================

import argparse
import contextlib
import json
import os
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import partial, reduce
from html import escape
from operator import attrgetter, gt, sub

# ----------------------------------------------------------------------------
# Dosings: other inits and activations, layer norm, clipping, Adam. Each plugs
# into the lesson's training_run as its forward, backprop and step.

INIT_STDS.update(
    xavier=lambda fan_in, fan_out: math.sqrt(2.0 / (fan_in + fan_out)),  # Glorot and Bengio's
    standard=lambda fan_in, fan_out: math.sqrt(1.0 / (3.0 * fan_in)),  # uniform +-1/sqrt(fan_in)
)
LEAKY_SLOPE = 0.01  # Maas, Hannun and Ng (2013): below 0 the ReLU leaks 1%
NORM_EPSILON = 1e-5  # layer norm divides by sqrt(var + this), never by 0
CLIP_EPSILON = 1e-6  # as in torch.nn.utils.clip_grad_norm_
# Adam (Kingma and Ba 2015) as torch.optim.Adam computes it with its defaults.
ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8


def sturdy_sum(values):
    """math.fsum, but where it raises (past inf, or inf - inf) add plainly: let inf/NaN show."""
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):
        return reduce(add, values, 0.0)


def sturdy_matvec(weights, vector):
    try:
        return matvec(weights, vector)
    except (OverflowError, ValueError):  # see sturdy_sum
        return [sturdy_sum(list(map(mul, row, vector))) for row in weights]


def leaky_relu(value):
    # Clamped to +-RELU_CAP like safe_relu, so values stay finite; NaN passes.
    if value > 0.0:
        return RELU_CAP if value > RELU_CAP else value
    leak = LEAKY_SLOPE * value
    return -RELU_CAP if leak < -RELU_CAP else leak


def gated(value, gate):
    """GELU's and SiLU's value times its gate, within +-RELU_CAP like safe_relu (NaN passes)."""
    return min(max(value, -RELU_CAP) * gate(value), RELU_CAP)  # not -inf * 0, far below 0


# An activation: its layer; its slope (from the pre- and post-activation; None
# where a ReLU is off, so that its column is never summed); whether a neuron
# works (a ReLU fires above 0, a tanh works off its flat shoulders); its
# histogram's buckets; and the readings that mean nothing for it (printed n/a).
# The clamps are straight-through, as in the lesson: the slope ignores RELU_CAP.
# A tanh neuron is never "off", so it cannot die (its disease is saturation).
# Tanh's buckets are linear, the outer two pinned near +-1.
Activation = namedtuple("Activation", "layer slope works edges labels not_applicable")
TANH_EDGES = (-0.99, -0.5, -0.1, 0.1, 0.5, 0.99)
# fmt: off
# Leaky ReLU, GELU and SiLU: a neuron fires above 0, and none dies or saturates.
LINEAR_ABOVE_0 = (lambda z, a: a > 0.0, HISTOGRAM_EDGES, ["<= 0", *HISTOGRAM_LABELS[1:]],
                  ("dead_count", "saturation_rate"))
GATES = {"gelu": lambda z: 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))),
         "silu": lambda z: 0.5 * (1.0 + math.tanh(0.5 * z))}  # the sigmoid, with no overflow
ACTIVATIONS = {
    "relu": Activation(lambda pre: [safe_relu(value) for value in pre],
                       lambda z, a: 1.0 if z > 0.0 else None, lambda z, a: a > 0.0,
                       HISTOGRAM_EDGES, HISTOGRAM_LABELS, ()),
    "leaky_relu": Activation(lambda pre: [leaky_relu(value) for value in pre],
                             lambda z, a: 1.0 if z > 0.0 else LEAKY_SLOPE, *LINEAR_ABOVE_0),
    "tanh": Activation(lambda pre: list(map(math.tanh, pre)),
                       lambda z, a: 1.0 - a * a,  # tanh' = 1 - tanh^2, read off the output
                       lambda z, a: abs(z) <= SATURATION_LIMIT, TANH_EDGES,
                       [*(f"<= {edge:g}" for edge in TANH_EDGES), "> 0.99"], ("dead_count",)),
    # GELU: x times the normal cdf (Hendrycks and Gimpel 2016); SiLU: x sigmoid(x) (Elfwing+ 2018)
    "gelu": Activation(lambda pre: [gated(z, GATES["gelu"]) for z in pre],
                       lambda z, a: GATES["gelu"](z) + z * math.exp(-0.5 * z * z) / math.tau**0.5,
                       *LINEAR_ABOVE_0),
    "silu": Activation(lambda pre: [gated(z, GATES["silu"]) for z in pre],
                       lambda z, a: GATES["silu"](z) * (1.0 + z * (1.0 - GATES["silu"](z))),
                       *LINEAR_ABOVE_0),
}
# fmt: on


def dosed_forward(activation, norms, network, inputs):
    """forward_with_trace for any dosing: its activation, and a layer norm if norms are given."""
    trace = {key: [] for key in ("layer_inputs", "pre_activations", "post_activations")}
    trace.update(linear_outputs=[], units=[], spreads=[], norm_grads=[None] * len(norms))
    carried = list(inputs)
    for layer_index, (weights, biases) in enumerate(network):
        trace["layer_inputs"].append(carried)
        pre = add_vectors(sturdy_matvec(weights, carried), biases)
        if layer_index == len(network) - 1:
            post = softmax(pre)
        else:
            trace["linear_outputs"].append(pre)
            if norms:
                pre, unit, spread = layer_norm(pre, *norms[layer_index])
                trace["units"].append(unit)
                trace["spreads"].append(spread)
            post = activation.layer(pre)
        trace["pre_activations"].append(pre)
        trace["post_activations"].append(post)
        carried = post
    return trace


def dosed_backward(activation, weights, grad, trace, layer_index):
    """relu_backward for any activation: (W^T grad) times the activation's slope below."""
    below = layer_index - 1
    pre, post = trace["pre_activations"][below], trace["post_activations"][below]
    slopes = list(map(activation.slope, pre, post))
    # As in relu_backward, a row whose grad is 0 is skipped, unless its pre-activation
    # is not finite: the mark of an inf or NaN weight, whose 0 * inf = NaN must show.
    above = trace["pre_activations"][layer_index]
    rows = [i for i, (g, z) in enumerate(zip(grad, above)) if g != 0.0 or not math.isfinite(z)]
    columns = [j for j, slope in enumerate(slopes) if slope is not None]
    result = [0.0] * len(slopes)
    if rows and columns:
        weights_t = list(zip(*[weights[i] for i in rows]))
        sums = sturdy_matvec([weights_t[j] for j in columns], [grad[i] for i in rows])
        for j, total in zip(columns, sums):
            result[j] = total * slopes[j]
    return result


def layer_norm(values, gain, shift):
    """Ba, Kiros and Hinton (2016) over one sample's layer: (gain * unit + shift, unit, spread)."""
    mean, std = mean_and_std(values)
    spread = math.hypot(std, math.sqrt(NORM_EPSILON))
    unit = [(value - mean) / spread for value in values]
    return [a * u + b for a, u, b in zip(gain, unit, shift)], unit, spread


def normed_backward(layer_backward, norms, weights, grad, trace, layer_index):
    """layer_backward, then back through the layer norm below (its gain's and shift's too)."""
    below = layer_index - 1
    grad = layer_backward(weights, grad, trace, layer_index)
    unit, spread = trace["units"][below], trace["spreads"][below]
    d_unit = list(map(mul, grad, norms[below][0]))
    mean_d = sturdy_sum(d_unit) / len(d_unit)
    mean_d_unit = sturdy_sum(list(map(mul, d_unit, unit))) / len(d_unit)
    trace["norm_grads"][below] = (list(map(mul, grad, unit)), list(grad))
    return [(d - mean_d - u * mean_d_unit) / spread for d, u in zip(d_unit, unit)]


def gradient_norm(grads, trace):
    """The global gradient norm in O(n): a weight gradient g x^T has norm |g| |x|."""
    pieces = [math.hypot(*g) * math.hypot(*x) for g, x in zip(grads, trace["layer_inputs"])]
    pieces += [math.hypot(*g) for g in grads]
    pieces += [math.hypot(*d) for pair in trace["norm_grads"] for d in pair]
    return math.hypot(*pieces)


def clip_factor(total_norm, max_norm):
    """Pascanu et al. (2013), as clip_grad_norm_: max_norm / (norm + 1e-6), at most 1."""
    factor = max_norm / (total_norm + CLIP_EPSILON)
    return factor if factor < 1.0 else 1.0


def sgd(network, norms, clip, monitor):
    """The lesson's SGD step, clipped, moving the layer norms' gains and shifts too."""

    def step(network, trace, grads, learning_rate):
        if clip is not None:  # scaling every gradient is scaling the step
            learning_rate *= clip_factor(gradient_norm(grads, trace), clip)
        monitor.record_step(network, trace, grads, learning_rate)
        sgd_step(network, trace, grads, learning_rate)
        for (gain, shift), (gain_grad, shift_grad) in zip(norms, trace["norm_grads"]):
            gain[:] = [a - learning_rate * d for a, d in zip(gain, gain_grad)]
            shift[:] = [b - learning_rate * d for b, d in zip(shift, shift_grad)]

    return step


def adam(network, norms, clip, monitor):
    """A step function moving every parameter by Adam's rule, as torch.optim.Adam's defaults do."""
    beta1, beta2, epsilon, sqrt = ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON, math.sqrt  # local: fast
    rest1, rest2 = 1.0 - beta1, 1.0 - beta2
    # The parameters in groups of rows (each layer's weights, [its biases], then
    # [each gain] and [each shift]); m and v hold a group flat, row after row.
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
            [scale * d for d in vector] for pair in trace["norm_grads"] for vector in pair
        ]
        size = learning_rate / (1.0 - beta1 ** len(taken))
        root = sqrt(1.0 - beta2 ** len(taken))
        updates = []
        for gradient, m, v in zip(gradients, means, squares):
            # m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2, and the step is
            # lr / (1 - 0.9^t) * m / (sqrt(v) / sqrt(1 - 0.999^t) + 1e-8).
            m[:] = [beta1 * a + rest1 * g for a, g in zip(m, gradient)]
            v[:] = [beta2 * b + rest2 * g * g for b, g in zip(v, gradient)]
            updates.append([size * (a / (r / root + epsilon)) for a, r in zip(m, map(sqrt, v))])
        for layer in range(monitor.num_hidden_layers):  # the ratio of Adam's real update
            weight_sums = matrix_sums(network[layer][0])
            monitor.record_update(layer, matrix_sums([updates[2 * layer]]), weight_sums)
        for rows, update in zip(groups, updates):
            width = len(rows[0])
            for start, row in zip(range(0, len(update), width), rows):
                row[:] = list(map(sub, row, update[start : start + width]))

    return step


def dosed_run(dosing, samples, monitor):
    """The lesson's training_run with a dosing's forward, backprop and step; yields its reports."""
    widths, activation = dosing.layer_widths, ACTIVATIONS[dosing.activation]
    network = init_network(
        widths, dosing.init_mode, dosing.weight_scale_override, dosing.network_seed
    )
    norms = [([1.0] * w, [0.0] * w) for w in widths[1:-1]] if dosing.norm == "layer" else []
    layer_backward = partial(dosed_backward, activation)
    if norms:
        layer_backward = partial(normed_backward, layer_backward, norms)
    steps = (
        partial(dosed_forward, activation, norms),
        partial(backward, layer_backward=layer_backward),
        (adam if dosing.optimizer == "adam" else sgd)(network, norms, dosing.clip, monitor),
    )
    return training_run(
        network, samples, dosing.epochs, dosing.learning_rate, dosing.network_seed, monitor, steps
    )


# ----------------------------------------------------------------------------
# The patients: one table of dosings and the diseases they show


@dataclass(frozen=True)
class Dosing:
    """A run's treatment (what == compares), its seeds, size and name."""

    init_mode: str = "kaiming"
    weight_scale_override: float | None = None
    learning_rate: float = 0.05
    layer_widths: tuple = (8, 16, 16, 16, 16, 4)
    activation: str = "relu"
    norm: str = "none"  # or "layer": gain 1 and shift 0 at the start, learned like the weights
    clip: float | None = None  # a maximum gradient norm
    optimizer: str = "sgd"  # or "adam"
    epochs: int = 30
    data_seed: int = field(default=7, compare=False)
    network_seed: int = field(default=11, compare=False)
    sample_count: int = field(default=80, compare=False)
    patient: str = field(default="custom", compare=False)
    label: str = field(default="", compare=False)
    untreated_epochs: int | None = field(default=None, compare=False)


# Every patient gets the lesson's data, seeds and 30 epochs; only the dosing
# differs. Each shows its own disease with the activation where it is real:
# ReLUs die, tanh saturates, a leaky ReLU (which cannot die) keeps an
# explosion in view.
# fmt: off
PATIENTS = {  # name: the dosing, what its label says of it, the disease it shows
    "healthy": (Dosing(), "kaiming init, lr=0.05", "no disease: the lesson's healthy patient"),
    "sick": (Dosing("bad", 1.0, 0.8), "oversized init, lr=0.8",
             "the lesson's sick patient: saturation, dead layers, vanishing, collapse"),
    "exploding": (Dosing(learning_rate=0.3, activation="leaky_relu"), "leaky ReLU, lr=0.3",
                  "exploding gradients: a learning rate 6x the healthy one; leaky ReLUs cannot "
                  "die, so the explosion stays in every chart"),
    "vanishing": (Dosing("bad", 0.03, activation="tanh"), "tanh, init std=0.03",
                  "vanishing gradients: tanh with weights far below Xavier's; the gradient "
                  "shrinks layer by layer on its way down"),
    "dead": (Dosing(learning_rate=0.09), "lr=0.09",
             "dying ReLUs: a learning rate 1.8x the healthy one knocks neurons off, epoch "
             "after epoch; most fire again later, a few never do"),
    "saturated": (Dosing("bad", 2.0, 0.02, activation="tanh"), "tanh, init std=2",
                  "saturation: tanh with weights 8x Xavier's std; its inputs sit past +-6, on "
                  "the flat shoulder"),
    "collapsed": (Dosing("bad", 0.006, 0.02, (8, 16, 16, 4), "tanh"),
                  "tanh, init std=0.006, 2 hidden layers",
                  "signal collapse: tanh with weights 1/40 of Xavier's std; layer 2 gives the "
                  "same output for every input"),
}
# fmt: on


def patient(name, **changes):
    """The named patient's dosing, with changes (a custom one starts from healthy)."""
    dosing, words, _ = PATIENTS.get(name, PATIENTS["healthy"])
    dosing = replace(dosing, patient=name, **changes)
    if any(key in DOSING_FIELDS for key in changes) or name not in PATIENTS:
        words = describe_dosing(dosing)
    return replace(dosing, label=f"{name.upper()} ({words})")


DOSING_FIELDS = ("init_mode", "weight_scale_override", "learning_rate", "layer_widths")
DOSING_FIELDS += ("activation", "norm", "clip", "optimizer", "epochs")


def describe_dosing(dosing):
    init = f"{dosing.init_mode} init"
    if dosing.weight_scale_override is not None:  # it overrides any init mode's std
        init = f"init std={dosing.weight_scale_override:g}"
    treatments = [dosing.activation] if dosing.activation != "relu" else []
    treatments += ["layer norm"] if dosing.norm == "layer" else []
    treatments += [f"clip={dosing.clip:g}"] if dosing.clip is not None else []
    treatments += [dosing.optimizer] if dosing.optimizer != "sgd" else []
    widths = "widths " + "-".join(map(str, dosing.layer_widths))
    epochs = plural(dosing.epochs, "epoch")
    return ", ".join([init, *treatments, f"lr={dosing.learning_rate:g}", widths, epochs])


def plural(count, noun):
    """ "1 epoch", "2 epochs": a count and its noun, in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# ----------------------------------------------------------------------------
# The examination: the lesson's monitor for any activation, over the finite
# values, with a seventh reading and a count of the inf and NaN left out

# The seventh reading. Karpathy's rule of thumb (CS231n notes, "Neural Networks
# Part 3"): an update should be about 1e-3 of the weights it changes, for a
# minibatch step. A step of one sample moves more (the healthy patient reads
# 2e-2 at epoch 1), so the examination warns only two decades either side.
UPDATE_RATIO_HIGH = 1e-1  # each step rewrites a tenth of the weights: too fast
UPDATE_RATIO_LOW = 1e-5  # the weights are effectively frozen
# |dLoss/d(pre-activation)| per decade: exact zeros, then 1e-10 to 10.
GRADIENT_EDGES = (0.0, *(10.0**exponent for exponent in range(-10, 2)))
GRADIENT_LABELS = ["= 0", *(f"<= {edge:.0e}" for edge in GRADIENT_EDGES[1:]), "> 1e+01"]
# Pre-activations from -12 to 12, every 2: the flat shoulders start at +-SATURATION_LIMIT.
PRE_EDGES = tuple(range(-12, 13, 2))
PRE_LABELS = [*(f"<= {edge}" for edge in PRE_EDGES), "> 12"]


class ExamMonitor(TrainingMonitor):
    """The lesson's monitor over finite values, plus the update/weight ratio and more."""

    def __init__(self, layer_widths, activation="relu"):
        self.activation = ACTIVATIONS[activation]
        super().__init__(layer_widths)

    def reset(self):
        super().reset()
        self.ratio_sums = [0.0] * self.num_hidden_layers  # and their counts, for the mean
        self.ratio_counts = [0] * self.num_hidden_layers
        # (sum, sum of squares) of the weights feeding each hidden layer: summed
        # in full at the epoch's first step, then carried by each step's algebra.
        self.weight_sums = [None] * self.num_hidden_layers

    def record_step(self, network, trace, pre_activation_grads, step_size):
        """Add this SGD step's update/weight ratio of every hidden layer."""
        for index in range(self.num_hidden_layers):
            weights, biases = network[index]
            grad, layer_input = pre_activation_grads[index], trace["layer_inputs"][index]
            if len(grad) * len(layer_input) < 2:
                continue  # one weight has no spread: its ratio means nothing
            total, squares = self.weight_sums[index] or matrix_sums(weights)
            # The step moves W by -step * dW, dW = grad x^T.
            step_total, step_squares = outer_product_sums(grad, layer_input)
            step_total, step_squares = step_size * step_total, step_size * step_size * step_squares
            self.record_update(index, (step_total, step_squares), (total, squares))
            # |W - step dW|^2 = |W|^2 - 2 step <W, dW> + step^2 |dW|^2, and <W, dW> =
            # grad . (W x), where W x = z - b is in the trace.
            linear = trace["linear_outputs"][index]
            cross = step_size * sturdy_sum(list(map(mul, grad, map(sub, linear, biases))))
            new_squares = squares - 2.0 * cross + step_squares
            # A step that cancels most of the weights leaves few correct digits:
            # then they are summed in full again at the next step.
            carried = new_squares > 1e-6 * (squares + step_squares)
            self.weight_sums[index] = (total - step_total, new_squares) if carried else None

    def record_update(self, index, update_sums, weight_sums):
        """Add one step's std(update) / std(weights) of hidden layer index, from their sums."""
        count = self.layer_widths[index] * self.layer_widths[index + 1]
        spread = std_from_sums(*weight_sums, count)
        ratio = std_from_sums(*update_sums, count) / spread if spread else math.nan
        if not math.isnan(ratio):
            self.ratio_sums[index] += ratio
            self.ratio_counts[index] += 1

    def report(self):
        """The lesson's report over the finite values (n/a where meaningless), and more."""
        accumulated = [self.pre_activations_per_layer, self.post_activations_per_layer]
        accumulated.append(self.grad_pre_per_layer)
        counts = [sum(map(len, layer)) for layer in zip(*accumulated)]
        sample_count = len(self.post_activations_per_layer[0]) // self.layer_widths[1]
        pairs = zip(self.pre_activations_per_layer, self.post_activations_per_layer)
        firing = [firing_shares(*pair, width, self.activation.works) for pair, width in
                  zip(pairs, self.layer_widths[1:-1])]  # fmt: skip
        for per_layer in accumulated:
            per_layer[:] = [finite(values) for values in per_layer]
        report = super().report()
        if self.activation.edges != HISTOGRAM_EDGES:
            posts, edges = self.post_activations_per_layer, self.activation.edges
            report["histogram"] = [histogram(post, edges) for post in posts]
        report.update({key: [math.nan] * len(counts) for key in self.activation.not_applicable})
        grads = self.grad_pre_per_layer
        report["gradient_histogram"] = [histogram(list(map(abs, g)), GRADIENT_EDGES) for g in grads]
        kept = [sum(map(len, layer)) for layer in zip(*accumulated)]
        report["nonfinite_count"] = list(map(sub, counts, kept))
        report["sample_count"] = sample_count
        # Each layer's mean over the epoch's steps: one step that rewrites the weights shows.
        ratios = zip(self.ratio_sums, self.ratio_counts)
        report["update_ratio"] = [total / count if count else math.nan for total, count in ratios]
        report["firing_share"] = firing
        report["pre_histogram"] = [histogram(pre, PRE_EDGES) for pre in accumulated[0]]
        return report


def firing_shares(pre, post, width, works):
    """Each neuron's share of the samples it worked for (pre and post hold them in turn)."""
    samples = len(post) // width
    if not samples:
        return [math.nan] * width
    return [sum(map(works, pre[j::width], post[j::width])) / samples for j in range(width)]


def finite(values):
    """The finite values, in order (the list itself when its sum is finite: 3x faster)."""
    return values if math.isfinite(sum(values)) else list(filter(math.isfinite, values))


def matrix_sums(weights):
    """(sum, sum of squares) of every entry of a matrix, row by row in C."""
    norm = math.hypot(*[math.hypot(*row) for row in weights])
    return sturdy_sum([sturdy_sum(row) for row in weights]), norm * norm  # ** 2 could raise


def std_from_sums(total, squares, count):
    """The std of count numbers from their sum and their sum of squares."""
    mean = total / count
    # Rounding can leave a zero variance a hair below 0; NaN passes max().
    return math.sqrt(max(squares / count - mean * mean, 0.0))


def outer_product_sums(column, row):
    """(sum, sum of squares) of column * row^T's entries in O(n)."""
    norm = math.hypot(*column) * math.hypot(*row)
    return sturdy_sum(column) * sturdy_sum(row), norm * norm


# Below this loss the network has fit its data, and its gradients and steps
# are small by nature: the lesson's fixed thresholds would call that calm
# "vanishing" and "too small", so the examination does not count them then.
FITTED_LOSS = 0.01
CALM_WHEN_FITTED = ("vanishing gradients", "update too small")
WARNING_KINDS = ("dead neurons", "vanishing gradients", "exploding gradients", "saturation")
WARNING_KINDS += ("signal collapse", "non-finite values", "update too large", "update too small")


def examination_warnings(report):
    """Every warning of an epoch, by layer, as (counted, calm when fitted)."""
    warnings = [one_decimal(warning, report) for warning in flag_issues(report)]
    layers, keys = len(report["activation_std"]), RUN_READINGS[:4]  # the four every layer has
    # A file need not count its NaN and inf: then its readings that are not finite are counted.
    nonfinite = report.get("nonfinite_count") or [
        4 - sum(map(math.isfinite, values)) for values in zip(*map(report.get, keys))]  # fmt: skip
    noun = "non-finite value" if "nonfinite_count" in report else "non-finite reading"
    ratios = report.get("update_ratio") or [math.nan] * layers
    for layer, (count, ratio) in enumerate(zip(nonfinite, ratios), 1):
        if count:
            text = f"Layer {layer}: {plural(count, noun)} (NaN/inf)"
            warnings.append(HealthWarning(layer, "non-finite values", text))
        if not UPDATE_RATIO_LOW <= ratio <= UPDATE_RATIO_HIGH and not math.isnan(ratio):
            size = "large" if ratio > UPDATE_RATIO_HIGH else "small"
            text = f"Layer {layer}: update/weight ratio {ratio:.2e} (too {size})"
            warnings.append(HealthWarning(layer, f"update too {size}", text))
    if not (math.isfinite(report["loss"]) or any(nonfinite)):  # a hidden layer's explains it
        text = f"Output: loss {format_loss(report['loss'])} (NaN/inf)"
        warnings.append(HealthWarning(layers + 1, "non-finite values", text))
    warnings.sort(key=attrgetter("layer"))  # stable: each layer's stay in order
    fitted = report["loss"] < FITTED_LOSS
    counted = [w for w in warnings if not (fitted and w.kind in CALM_WHEN_FITTED)]
    return counted, [w for w in warnings if w not in counted]


def one_decimal(warning, report):
    """The warning with its share to one decimal: 30.3% is past the 30% limit, "30%" is not."""
    index = warning.layer - 1
    if warning.kind == "dead neurons":
        percent = 100.0 * report["dead_count"][index] / report["layer_neuron_count"][index]
    elif warning.kind == "saturation":
        percent = 100.0 * report["saturation_rate"][index]
    else:
        return warning
    return warning._replace(text=warning.text.replace(f"{percent:.0f}%", f"{percent:.1f}%", 1))


def examine(dosing, samples, halt_on_warning=False, progress=None):
    """Train under the ExamMonitor (to the first warning, halting); the reports with warnings.
    progress, if given, is told each epoch's number."""
    reports = []
    for report in dosed_run(dosing, samples, ExamMonitor(dosing.layer_widths, dosing.activation)):
        report["warnings"], report["calm"] = examination_warnings(report)
        reports.append(report)
        if progress:
            progress(report["epoch"])
        if halt_on_warning and report["warnings"]:
            break
    return reports


PROGRESS_AFTER = 2.0  # seconds: a run this long shows where it is, on a terminal


def progress_line(what, total):
    """A function that shows "what k of total" on stderr once a run has taken
    PROGRESS_AFTER seconds, and clears it at the total; silent unless stderr is a terminal."""
    start = time.monotonic()

    def show(done):
        if done == total:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)
        elif time.monotonic() - start > PROGRESS_AFTER:
            print(f"\r{what} {done} of {total}", end="", file=sys.stderr, flush=True)

    return show if sys.stderr.isatty() else None


def samples_for(dosing):
    widths = dosing.layer_widths
    return make_training_data(dosing.sample_count, widths[0], widths[-1], dosing.data_seed)


def print_examination(dosing, reports, report_every, halted=False):
    """Charts every report_every epochs, at the first sign and the last; trends, verdict."""
    activation, first = ACTIVATIONS[dosing.activation], first_warned(reports)
    for report in reports:
        last = report is reports[-1]
        if report["epoch"] % report_every == 0 or last or report is first:
            lines = chart_lines(dosing.label, report)
            lines += histogram_chart(report, activation.labels) if last else []
            if report is first:
                lines.insert(1, "first sign: the first epoch with a warning")
            print("\n".join(lines + examination_lines(report)) + "\n")
    if halted:
        print(f"halted at epoch {reports[-1]['epoch']}: the first warning stops the visit.\n")
    print("\n".join(trend_lines(reports, stdout_charset(), activation.not_applicable)))
    print(verdict(reports) + "\n")


def first_warned(reports):
    return next((report for report in reports if report["warnings"]), None)


def examination_lines(report):
    """What an examined chart adds below the lesson's table: the ratios and the warnings."""
    lines = []
    if "update_ratio" in report:
        ratios = "  ".join(
            f"{i}: {readable(r, '.1e')}" for i, r in enumerate(report["update_ratio"], 1)
        )
        limits = f"warns below {UPDATE_RATIO_LOW:g} or above {UPDATE_RATIO_HIGH:g}"
        lines.append(f"update/weight ratio per layer ({limits}): {ratios}")
    lines += warning_lines(report["warnings"])
    if report["calm"]:
        calm = plural(len(report["calm"]), "warning")
        lines.append(
            f"(not counted: {calm} of small gradients or steps; with the loss below "
            f"{FITTED_LOSS:g} the network has fit its data)"
        )
    return lines


def stdout_charset():
    """Block characters where stdout can print them, plain ones elsewhere."""
    try:
        SPARK_LEVELS["unicode"].encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "ascii"
    return "unicode"


# The chart over time, as text (one character per epoch) and on the page.
SPARK_LEVELS = {"unicode": "▁▂▃▄▅▆▇█", "ascii": ".:-=+*#@"}
ZERO_MARK, NONFINITE_MARK = "_", "!"
# fmt: off
TRENDS = (  # report key, title, the page's y axis, log scale, warning limits, in the text too
    ("activation_std", "activation std", "std of the outputs", True,
     ((COLLAPSED_ACT_STD, "below"),), True),
    ("gradient_std", "gradient std", "std of dLoss/d(pre)", True,
     ((VANISHING_GRAD_STD, "below"), (EXPLODING_GRAD_STD, "above")), True),
    ("gradient_max", "max gradient", "largest |dLoss/d(pre)|", True, (), False),
    ("dead_count", "dead share", "share of the neurons", False,  # a share of the layer
     ((DEAD_PERCENT_LIMIT / 100, "above"),), True),
    ("saturation_rate", "saturation share", "share of pre-activations", False,
     ((SATURATED_PERCENT_LIMIT / 100, "above"),), True),
    ("update_ratio", "update/weight ratio", "std(update) / std(W)", True,
     ((UPDATE_RATIO_LOW, "below"), (UPDATE_RATIO_HIGH, "above")), True),
)
# fmt: on


def sparkline(values, low, high, log_scale, charset):
    """One character per value between low and high; marks for 0 on a log scale and NaN/inf."""
    levels, where, marks = SPARK_LEVELS[charset], math.log10 if log_scale else float, []
    for value in values:
        if not math.isfinite(value):
            marks.append(NONFINITE_MARK)
        elif log_scale and value <= 0.0:
            marks.append(ZERO_MARK)
        else:
            span = where(high) - where(low)
            position = (where(value) - where(low)) / span if high > low else 0.0
            marks.append(levels[min(max(int(position * len(levels)), 0), len(levels) - 1)])
    return "".join(marks)


MAX_COLUMNS = 120  # a trend this long still fits a wide terminal


def trend_lines(reports, charset, not_applicable=()):
    """The loss and every reading of every layer over the epochs, one character each (for
    more than MAX_COLUMNS epochs, one every few)."""
    marks = f"{ZERO_MARK} = exactly 0, {NONFINITE_MARK} = NaN/inf"
    every = math.ceil(len(reports) / MAX_COLUMNS)
    column = "one column per epoch" if every == 1 else f"one column every {every} epochs"
    lines = [f"trends over {plural(len(reports), 'epoch')} ({column}; {marks}):"]
    reports = reports[every - 1 :: every]
    widths = reports[0]["layer_neuron_count"]
    trends = [("loss, the temperature", {"all layers": [r["loss"] for r in reports]}, True)]
    for key, title, _, log_scale, _, in_text in TRENDS:
        if in_text and key not in not_applicable and key in reports[0]:
            scales = widths if key == "dead_count" else [1] * len(widths)
            rows = {
                f"layer {layer + 1:>2}": [r[key][layer] / scale for r in reports]
                for layer, scale in enumerate(scales)
            }
            trends.append((title, rows, log_scale))
    for title, rows, log_scale in trends:
        low, high, span = 0.0, 1.0, "0 .. 1"
        if log_scale:
            positive = [v for row in rows.values() for v in row if math.isfinite(v) and v > 0.0]
            low, high = (min(positive), max(positive)) if positive else (1.0, 1.0)
            span = f"{low:.1e} .. {high:.1e}" if positive else "no finite value above 0"
            span = f"log scale, {span}"
        lines.append(f"  {title} ({span})")
        lines += [
            f"    {name} {sparkline(row, low, high, log_scale, charset)}"
            for name, row in rows.items()
        ]
    return lines


# The verdict: when did the chart first see the disease? A forward disease is
# carried up by the activations, so it starts at the lowest layer showing it;
# a backward one is carried down by the gradients, so it starts at the top
# and is worst at layer 1.
FORWARD_DISEASES = ("dead neurons", "saturation", "signal collapse")
BACKWARD_DISEASES = ("vanishing gradients", "exploding gradients")


def verdict(reports):
    """One line: when the chart first warned, the loss then, where the disease starts."""
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
        nonfinite = sum(diverged.get("nonfinite_count", ()))
        signs = [f"loss {format_loss(diverged['loss'])}"]
        if nonfinite:
            signs.insert(0, f"{plural(nonfinite, 'non-finite value')} in the hidden layers")
        line = f"training diverged at epoch {diverged['epoch']} ({', '.join(signs)}); {line}"
    return f"verdict: {line}{cut_off(reports[-1])}"


def last_layer_dead(report):
    """Whether the last hidden layer gave 0 for every sample of the epoch (a ReLU's)."""
    return report["dead_count"][-1] == report["layer_neuron_count"][-1]


def cut_off(report):
    """What a dead last hidden layer means, said where it happens: " At the end ..." or ""."""
    if not last_layer_dead(report):
        return ""
    return (
        f" At the end layer {len(report['dead_count'])}, the last hidden one, is dead: the "
        "logits are the output bias alone, the same for every input, so only that bias learns "
        "and every gradient below it is exactly 0 (not a saturated softmax, as in the lesson's "
        "run): the network no longer uses its input."
    )


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
    """How a positive reading changes, in words: 'shrinks 18x', 'grows 2.5x', 'falls to 0'."""
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
    return sum(report.get("nonfinite_count", ())) > 0 or not math.isfinite(report["loss"])


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
    ("non-finite values",    "always",           "gradient clipping"),
    ("exploding gradients",  "init too large",   "the activation's init"),
    ("exploding gradients",  "fast steps",       "steady learning rate"),
    ("exploding gradients",  "always",           "gradient clipping"),
    ("update too large",     "always",           "steady learning rate"),
    ("saturation",           "init too large",   "the activation's init"),
    ("saturation",           "fast steps",       "steady learning rate"),
    ("saturation",           "always",           "layer norm"),
    ("dead neurons",         "fast steps",       "steady learning rate"),
    ("dead neurons",         "init off by 2x",   "the activation's init"),
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
RECOMMENDED_INIT |= {"gelu": "kaiming", "silu": "kaiming"}  # ReLU-like: they pass half
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


def init_scale(dosing, reports=()):
    """The init's std over the activation's recommended one (geometric mean over layers)."""
    best, fans = RECOMMENDED_INIT[dosing.activation], list(pairwise(dosing.layer_widths))
    known = dosing.init_mode in INIT_STDS or dosing.weight_scale_override is not None
    if reports and "init_std" in reports[0]:  # a file that says each layer's first weights
        given, fans = reports[0]["init_std"], zip(reports[0]["fan_in"], reports[0]["fan_out"])
    elif known and 0 not in dosing.layer_widths:
        given = [init_std(*fan, dosing.init_mode, dosing.weight_scale_override) for fan in fans]
    else:
        return 1.0  # not known (a run read from a file that does not say): no telling
    logs = [
        math.log(std / init_std(*fan, best, None))
        for std, fan in zip(given, fans)
        if std and all(fan)
    ]
    return math.exp(math.fsum(logs) / len(logs)) if logs else 1.0


def steady_factor(reports, nudge=1.0):
    """The learning rate's factor toward steady steps: at least nudge, at most 30x."""
    if "update_ratio" not in reports[0]:
        return 1.0  # not recorded: no telling
    # The largest layer's epoch-1 ratio; with none (weights without a finite
    # spread) the steps have blown up: as if it were inf.
    steps = max((r for r in reports[0]["update_ratio"] if not math.isnan(r)), default=math.inf)
    factor = STEADY_STEPS / steps if steps else math.inf
    factor = max(factor, nudge) if factor >= 1.0 else min(factor, 1.0 / nudge)
    return min(max(factor, 1.0 / LR_FACTOR_LIMIT), LR_FACTOR_LIMIT)


CONDITIONS = {  # condition: whether it holds for a dosing and its run's reports
    "always": lambda dosing, reports: True,
    "init too large": lambda dosing, reports: init_scale(dosing, reports) > 1.1,
    "init too small": lambda dosing, reports: init_scale(dosing, reports) < 0.9,
    "init off by 2x": lambda dosing, reports: not 0.5 < init_scale(dosing, reports) < 2.0,
    "fast steps": lambda dosing, reports: steady_factor(reports) < 1.0 / STEADY_BAND,
    "slow steps": lambda dosing, reports: steady_factor(reports) > STEADY_BAND,
    "ReLU": lambda dosing, reports: dosing.activation == "relu",
    "still falling": lambda dosing, reports: still_falling(dosing, reports),
}


def still_falling(dosing, reports):
    """Whether more epochs could cure: quiet, the loss still falling, never given before."""
    recent = [report["loss"] for report in reports[-6:]]
    untreated = dosing.untreated_epochs or dosing.epochs
    fell = len(recent) == 6 and recent[-1] <= STILL_FALLING * recent[0]
    return fell and not reports[-1]["warnings"] and dosing.epochs == untreated


INIT_SOURCES = {"kaiming": "He et al. 2015", "xavier": "Glorot and Bengio 2010"}


def recommended_init(dosing, reports):
    init = RECOMMENDED_INIT[dosing.activation]
    return f"{init} init", {"init_mode": init, "weight_scale_override": None}, INIT_SOURCES[init]


def steady_learning_rate(dosing, reports):
    factor = steady_factor(reports, LR_NUDGE)
    # Exactly 1 only where no update ratio was recorded (a file's): no telling, no change.
    change = {"learning_rate": dosing.learning_rate * factor} if factor != 1.0 else {}
    return f"learning rate x {factor:.2g}", change, "Karpathy, CS231n notes"


# fmt: off
TREATMENTS = {  # treatment: (dosing, reports) -> (its name, its change to the dosing, its source)
    "the activation's init": recommended_init,
    "steady learning rate": steady_learning_rate,
    "learning rate x 2": lambda dosing, reports: (
        "learning rate x 2", {"learning_rate": dosing.learning_rate * 2.0}, "Bengio 2012"),
    "learning rate x 0.5": lambda dosing, reports: (
        "learning rate x 0.5", {"learning_rate": dosing.learning_rate * 0.5}, "Bengio 2012"),
    "gradient clipping": lambda dosing, reports: (
        f"gradient clipping at {CLIP_NORM:g}", {"clip": CLIP_NORM}, "Pascanu et al. 2013"),
    "layer norm": lambda dosing, reports: (
        "layer norm", {"norm": "layer"}, "Ba, Kiros and Hinton 2016"),
    "leaky ReLU": lambda dosing, reports: (
        "leaky ReLU", {"activation": "leaky_relu"}, "Maas, Hannun and Ng 2013"),
    "Adam": lambda dosing, reports: (
        f"Adam at lr={ADAM_LEARNING_RATE:g}",
        {"optimizer": "adam", "learning_rate": ADAM_LEARNING_RATE}, "Kingma and Ba 2015"),
    "train longer": lambda dosing, reports: (
        f"{2 * dosing.epochs} epochs instead of {dosing.epochs}", {"epochs": 2 * dosing.epochs},
        "its loss was still falling"),
}
# fmt: on
# change: the dosing fields it sets; answers: the warning it answers, and when.
Treatment = namedtuple("Treatment", "name change reason answers source")


def fitted(reports, dosing=None):
    """The progress of this file's patients: a final loss below CURED_LOSS (NaN is not)."""
    return reports[-1]["loss"] < CURED_LOSS


# A run read from a file is not on the toy task, so CURED_LOSS says nothing of it: it is judged
# against where it started, the lower of its epoch-1 loss and chance, ln(outputs) (a classifier's,
# 2 or more outputs). The patients keep CURED_LOSS: with chance ln 4 it would call well runs that
# treat and tests/cure_rate.py now treat, and change their numbers.
def progressed(reports, dosing):
    """A read run's progress: a final loss below half where it started (still falling: not yet)."""
    outputs, final = dosing.layer_widths[-1], reports[-1]["loss"]
    start = min(reports[0]["loss"], math.log(outputs) if outputs >= 2 else math.inf)
    return final < 0.5 * start


def prescribe(reports, dosing, tried=(), progress=fitted):
    """Treatments for the first sign (then the last epoch, then no progress) by the table."""
    first, last = first_warned(reports), reports[-1]
    signs = [
        (f"at epoch {report['epoch']}", {warning.kind for warning in report["warnings"]})
        for report in (first, last)
        if report is not None and report["warnings"]
    ]
    if not progress(reports, dosing):
        signs.append((f"in {last['epoch']} epochs", {"no progress"}))
    for where, kinds in signs:
        prescription = answer(kinds, where, reports, dosing, tried)
        if prescription:
            return prescription
    return []


def answer(kinds, where, reports, dosing, tried):
    """For each family, its most urgent kind's first row that holds and is new."""
    prescription = []
    for family in FAMILIES:
        kind = next((kind for kind in family if kind in kinds), None)
        if kind is None or len(prescription) == TREATMENTS_PER_ROUND:
            continue
        for row_kind, condition, treatment in PRESCRIPTIONS:
            if row_kind != kind or not CONDITIONS[condition](dosing, reports):
                continue
            name, change, source = TREATMENTS[treatment](dosing, reports)
            if replace(dosing, **change) == dosing or replace(dosing, **change) in tried:
                continue  # already given, or examined in an earlier round: never twice
            if not any(key in given.change for given in prescription for key in change):
                answers = f"{kind} {where}"
                reason = f"answers {answers} ({source})"
                prescription.append(Treatment(name, change, reason, answers, source))
            break
    return prescription


def set_back(treated, before):
    """Whether a treatment left a quiet run with no lower final loss."""
    return not before[-1]["warnings"] and not treated[-1]["loss"] < before[-1]["loss"]


def is_well(reports, progress=fitted, dosing=None):
    """The cure: the last epoch trips no warning, and progress (a final loss below CURED_LOSS)."""
    return not reports[-1]["warnings"] and progress(reports, dosing)


def apply_treatments(dosing, prescription):
    """The dosing changed as prescribed; the task (data, widths, seeds) stays."""
    for treatment in prescription:
        dosing = replace(dosing, **treatment.change)
    return replace(dosing, label=f"{dosing.patient.upper()} ({describe_dosing(dosing)})")


@dataclass
class Round:
    """One treatment round: dosing, treatments so far, reports, prescription, withdrawn."""

    dosing: Dosing
    treatments: list
    reports: list
    prescription: list = field(default_factory=list)
    withdrawn: bool = False


def treat(dosing, samples):
    """Examine, and while not well prescribe, apply and examine again; undo set-backs."""
    dosing = replace(dosing, untreated_epochs=dosing.epochs)
    rounds = [Round(dosing, [], examine(dosing, samples))]
    base = rounds[0]
    while not is_well(rounds[-1].reports) and len(rounds) <= TREATMENT_ROUNDS:
        tried = [round_.dosing for round_ in rounds]
        prescription = prescribe(base.reports, base.dosing, tried)
        if not prescription:
            break
        dosing = apply_treatments(base.dosing, prescription)
        reports = examine(dosing, samples)
        treatments = base.treatments + [treatment.name for treatment in prescription]
        withdrawn = set_back(reports, base.reports)
        rounds.append(Round(dosing, treatments, reports, prescription, withdrawn))
        if not rounds[-1].withdrawn:
            base = rounds[-1]
    return rounds


def kept_round(rounds):
    """The round the patient ends on: the last one not withdrawn."""
    return next(round_ for round_ in reversed(rounds) if not round_.withdrawn)


def print_treatment(rounds, report_every):
    """Each round's prescription and examination, then before/after and the outcome."""
    for number, round_ in enumerate(rounds):
        if number:
            reasons = [f"- {given.name}: {given.reason}" for given in round_.prescription]
            print("\n".join([f"prescription, round {number}:", *reasons]) + "\n")
        print_examination(round_.dosing, round_.reports, report_every)
        if round_.withdrawn:
            print(f"round {number} left the patient worse: its treatments are withdrawn\n")
    kept = kept_round(rounds)
    if kept is not rounds[0]:
        print("\n".join(comparison_lines(rounds[0], kept)))
    print(outcome(rounds, kept) + "\n")


def comparison_lines(before, after):
    """Untreated beside treated, some of the chart's cells at the last epoch: before -> after."""
    first, last, shown = before.reports[-1], after.reports[-1], (2, 3, 5, 6)
    rows = [
        [old[0], *(f"{old[i]} -> {new[i]}" for i in shown)]
        for old, new in zip(health_rows(first), health_rows(last))
    ]
    return [
        f"=== before and after treatment | epoch {last['epoch']} ===",
        f"untreated: {describe_dosing(before.dosing)}",
        f"treated:   {describe_dosing(after.dosing)} ({', '.join(after.treatments)})",
        f"loss: {format_loss(first['loss'])} -> {format_loss(last['loss'])}",
        *table_lines(["layer", *(HEALTH_HEADER[i] for i in shown)], rows),
    ]


def outcome(rounds, final):
    """The one line that ends a treatment: healthy, cured or not cured."""
    untreated, reports = rounds[0].reports, final.reports
    final_loss = format_loss(reports[-1]["loss"])
    if len(rounds) == 1 and is_well(reports):
        warned = sum(1 for report in reports if report["warnings"])
        note = f" (it warned in {plural(warned, 'epoch')}, none at the last)" if warned else ""
        return f"outcome: healthy: nothing to treat{note}; final loss {final_loss}."
    loss = f"loss {format_loss(untreated[-1]['loss'])} before, {final_loss} after"
    if is_well(reports):
        after = plural(len(rounds) - 1, "round")
        return f"outcome: cured after {after} ({', '.join(final.treatments)}); {loss}."
    warnings = reports[-1]["warnings"]
    if warnings:
        still = f"still warns: {first_of(warnings)}"
    else:
        still = f"no warning, but the final loss is not below {CURED_LOSS:g}"
    if len(rounds) == 1:
        return f"outcome: not cured: nothing in the prescription table answers it; {still}."
    kept = ", ".join(final.treatments) or "every treatment withdrawn"
    return f"outcome: not cured after {plural(len(rounds) - 1, 'round')} ({kept}); {still}; {loss}."


# ----------------------------------------------------------------------------
# Seeds or dose? The same patient over many seed pairs, on every core


def first_signs(dosing):
    """Examine one run without charts: (the first epoch of each kind of warning, its final
    loss, whether its last hidden layer ended dead)."""
    reports = examine(dosing, samples_for(dosing))
    first = {}
    for report in reports:
        for warning in report["warnings"]:
            first.setdefault(warning.kind, report["epoch"])
    return first, reports[-1]["loss"], last_layer_dead(reports[-1])


def seed_pairs(dosing, count):
    """The dosing on count seed pairs: pair k adds k to its data and network seeds."""
    return [
        replace(dosing, data_seed=dosing.data_seed + k, network_seed=dosing.network_seed + k)
        for k in range(count)
    ]


def seed_summary(dosing, results):
    """Per warning kind, how many runs fired it and when; the median final loss."""
    count = len(results)
    first_epochs = {
        kind: [first[kind] for first, *_ in results if kind in first] for kind in WARNING_KINDS
    }
    data_seeds = seed_range(dosing.data_seed, count)
    lines = [
        f"=== {dosing.label} | {plural(count, 'seed pair')}: data "
        f"{data_seeds}, network {seed_range(dosing.network_seed, count)} ==="
    ]
    rows = [
        [kind, f"{len(epochs)}/{count}", f"{statistics.median(epochs):g}"]
        for kind, epochs in first_epochs.items()
        if epochs
    ]
    if rows:
        lines += table_lines(["warning kind", "runs", "median first epoch"], rows, (19, 5), "<><")
    # NaN has no place in an order (median() of it depends on where it
    # stands): the runs whose loss became NaN are counted apart.
    final_losses = [loss for _, loss, _ in results]
    ordered = [loss for loss in final_losses if not math.isnan(loss)]
    median = format_loss(statistics.median(ordered)) if ordered else "n/a"
    nan_runs = len(final_losses) - len(ordered)
    lost = f" ({plural(nan_runs, 'run')} ended with a NaN loss)" if nan_runs else ""
    lines.append(f"median final loss: {median}{lost}")
    dead = sum(last_dead for *_, last_dead in results)
    if dead:
        lines.append(f"the last hidden layer dead at the end: {dead} of {count}")
    silent = sum(not first for first, *_ in results)
    lines.append(f"no warning: {silent} of {plural(count, 'seed pair')}")
    return lines


def seed_range(first, count):
    return f"seed {first}" if count == 1 else f"seeds {first}..{first + count - 1}"


# Ctrl-C sends SIGINT (to the whole foreground process group), kill SIGTERM.
STOPS = (signal.SIGINT, signal.SIGTERM)


def on_every_core(function, items):
    """function(item) for each item, in order, computed on one worker process per core."""
    import multiprocessing  # here: only seeds needs it, and importing it costs every run ~1%

    # The workers are forked with the stops held, so that none can arrive
    # before a worker has set its own handlers (then it would print a traceback).
    with stops_held():
        pool = multiprocessing.Pool(initializer=leave_stops_to_the_parent)
    with pool:  # on the way out, even on a stop: terminate every worker and reap it
        yield from pool.imap(function, items)


def leave_stops_to_the_parent():
    """In a worker: ignore Ctrl-C (the parent gets it too), die at once on SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)


def hold_stops():
    """Hold every stop, pending, until the mask is set back (Windows cannot: it has no mask)."""
    return (
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
        if hasattr(signal, "pthread_sigmask")
        else None
    )


@contextlib.contextmanager
def stops_held():
    """A with block during which a stop waits."""
    before = hold_stops()
    try:
        yield
    finally:
        if before is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


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


# fmt: off
Experiment = namedtuple("Experiment", "title activation layer_widths sample_count inits "
                        "standardize networks epochs learning_rate paper")
EXPERIMENTS = {
    "glorot-bengio": Experiment(
        "Glorot and Bengio (2010): a 5-layer tanh network at initialization", "tanh",
        [32] * 6 + [4], 200, ("standard", "xavier"),  # 32 features, 5 hidden layers of 32
        True, 1, 0, None,  # standardized inputs, as the paper's; one network; no training
        "Glorot and Bengio (2010), Sec. 4.2: with the standard initialization, activations "
        "shrink from layer to layer going up and back-propagated gradients shrink going down; "
        "their normalized (Xavier) initialization keeps both about the same at every layer."),
    # Theory speaks of the expected variance. At width 16 each layer's variance
    # ratio scatters around it, and over 30 layers the scatter compounds: one
    # network is one draw, the mean over several is theory's.
    "he": Experiment(
        "He et al. (2015): a 30-layer ReLU network, Xavier against Kaiming", "relu",
        [8] + [16] * 30 + [4], 80, ("xavier", "kaiming"),  # the toy task, 30 layers of 16
        False, 10, 10, 0.005,  # raw inputs; 10 networks; 10 epochs at lr 0.005
        "He et al. (2015), Sec. 2.2 and Fig. 3: a 30-layer ReLU network with Xavier "
        "initialization stalls and does not learn; with their initialization it converges."),
}
# fmt: on


def measure_experiment(name, data_seed, network_seed):
    """Readings at init beside theory for each init, and the losses if it trains."""
    experiment = EXPERIMENTS[name]
    widths, inits = experiment.layer_widths, experiment.inits
    samples = make_training_data(experiment.sample_count, widths[0], widths[-1], data_seed)
    if experiment.standardize:
        samples = standardized(samples)
    measured = dict(name=name, data_seed=data_seed, network_seed=network_seed, losses={})
    measured["at_init"] = {i: measure_at_init(experiment, i, samples, network_seed) for i in inits}
    measured["over_networks"] = {
        init: over_networks(experiment, init, samples, network_seed, measured["at_init"][init])
        for init in inits
    }
    for init in inits if experiment.epochs else ():
        dosing = Dosing(init, None, experiment.learning_rate, widths, experiment.activation,
                        epochs=experiment.epochs, network_seed=network_seed)  # fmt: skip
        monitor = ExamMonitor(widths, experiment.activation)
        measured["losses"][init] = [r["loss"] for r in dosed_run(dosing, samples, monitor)]
    return measured


def measure_at_init(experiment, init_mode, samples, network_seed):
    """Forward and backward every sample through a fresh network: readings and theory."""
    widths, activation = experiment.layer_widths, ACTIVATIONS[experiment.activation]
    network = init_network(widths, init_mode, None, network_seed)
    monitor, output_grads = ExamMonitor(widths, experiment.activation), []
    for inputs, target_class in samples:
        trace = dosed_forward(activation, [], network, inputs)
        grads = backward(network, trace, target_class, partial(dosed_backward, activation))
        monitor.record(trace, grads)
        output_grads += grads[-1]
    report = monitor.report()
    pre_stds = [mean_and_std(pre)[1] for pre in monitor.pre_activations_per_layer]
    inputs = [value for features, _ in samples for value in features]
    theory = predicted_stds(experiment, init_mode, monitor, inputs, output_grads)
    return report, pre_stds, *theory


def standardized(samples):
    """The samples with each feature shifted and scaled to mean 0, variance 1."""
    columns = [mean_and_std(list(column)) for column in zip(*(x for x, _ in samples))]
    return [([(v - m) / s for v, (m, s) in zip(x, columns)], target) for x, target in samples]


Networks = namedtuple("Networks", "stds pooled one_layer chain")


def over_networks(experiment, init_mode, samples, network_seed, first):
    """Each network's pre-activation stds (first is network_seed's measure_at_init), their
    root mean variance, the one-layer relation's likewise, and the paper's chain."""
    count, gain = experiment.networks, LINEAR_REGIME_GAIN[experiment.activation]
    runs = [first] + [
        measure_at_init(experiment, init_mode, samples, network_seed + k) for k in range(1, count)
    ]
    stds = [run[1] for run in runs]
    pooled = [math.sqrt(math.fsum(s * s for s in layer) / count) for layer in zip(*stds)]
    one_layer = [
        math.sqrt(math.fsum(s * s for s in layer) / count) for layer in zip(*(r[2] for r in runs))
    ]
    # The paper's claim: from the input alone, each layer multiplies the variance by
    # fan_in * Var(W), halved after a ReLU (tanh taken as linear).
    variance, chain = mean_square([value for features, _ in samples for value in features]), []
    for layer, fans in enumerate(pairwise(experiment.layer_widths[:-1])):
        variance *= (gain if layer else 1.0) * fans[0] * init_std(*fans, init_mode, None) ** 2
        chain.append(math.sqrt(variance))
    return Networks(stds, pooled, one_layer, chain)


def mean_square(values):
    return math.fsum([value * value for value in values]) / len(values)


def predicted_stds(experiment, init_mode, monitor, inputs, output_grads):
    """The one-layer relation for each hidden layer, fed the layer's measured input."""
    widths, activation = experiment.layer_widths, ACTIVATIONS[experiment.activation]
    weight_variances = [init_std(*fans, init_mode, None) ** 2 for fans in pairwise(widths)]
    pres, posts = monitor.pre_activations_per_layer, monitor.post_activations_per_layer
    # Forward: Var(z) = fan_in * Var(W) * E[x^2], x the layer's input (the data
    # for layer 1, the activation below for the others), its mean included.
    below = [mean_square(inputs), *map(mean_square, posts[:-1])]
    forward = [math.sqrt(n * v * m) for n, v, m in zip(widths, weight_variances, below)]
    # Backward: the gradient above (the output's, for the top layer) comes down
    # through fan_out weights, then the activation's slope: E[f'(z)^2] of the layer.
    above = [*map(mean_square, monitor.grad_pre_per_layer[1:]), mean_square(output_grads)]
    slopes = [
        mean_square([s or 0.0 for s in map(activation.slope, z, a)]) for z, a in zip(pres, posts)
    ]
    backward = [
        math.sqrt(e * n * v * m)
        for e, n, v, m in zip(slopes, widths[2:], weight_variances[1:], above)
    ]
    return forward, backward


def print_experiment(measured):
    """The experiment's tables beside theory, its losses, finding and the paper's words."""
    experiment = EXPERIMENTS[measured["name"]]
    widths, activation = experiment.layer_widths, experiment.activation
    hidden = widths[1:-1]
    seeds = f"data seed {measured['data_seed']}, network seed {measured['network_seed']}"
    print(f"=== {experiment.title} ===")
    print(
        f"{activation} network, widths {widths[0]}-{hidden[0]}x{len(hidden)}-{widths[-1]}, "
        f"{experiment.sample_count} samples of the toy task ({seeds})"
    )
    print(
        "theory, one layer at a time: Var(z) = fan_in * Var(W) * E[x^2], x the layer's measured "
        "input (its mean included); the gradient likewise going down: fan_out * Var(W) * "
        "E[g above^2] * E[f'(z)^2]"
    )
    bend = "halved after a ReLU" if activation == "relu" else "tanh taken as linear"
    for init_mode in measured["at_init"]:
        # A typical hidden layer's factor in the paper's chain: fan * Var(W), halved after a ReLU.
        std = init_std(*widths[1:3], init_mode, None)
        factor = LINEAR_REGIME_GAIN[activation] * widths[2] * std**2
        print(
            f"\n{init_mode} init, at initialization; the paper's claim, from the input alone: "
            f"each layer multiplies the variance by {factor:.2f} ({bend})"
        )
        print("\n".join(init_table(experiment, measured, init_mode)))
    print()
    losses = measured["losses"]
    if losses:
        chance = f"chance: ln {widths[-1]} = {math.log(widths[-1]):.3f}"
        print(f"training, lr={experiment.learning_rate:g} ({chance}):")
        rows = [
            [str(epoch), *map(format_loss, row)]
            for epoch, row in enumerate(zip(*losses.values()), 1)
        ]
        header = ["epoch", *(f"{init} loss" for init in losses)]
        print("\n".join(table_lines(header, rows, (5, 12, 12))) + "\n")
    print(experiment_finding(experiment, measured))
    print(f"paper: {experiment.paper}\n")


def init_table(experiment, measured, init_mode):
    """One init's per-layer stds beside theory's (and over several networks)."""
    report, pre_stds, predicted_pre, predicted_grad = measured["at_init"][init_mode]
    header = ["layer", "act std", "pre std", "theory", "grad std", "theory"]
    columns = [report["activation_std"], pre_stds, predicted_pre, report["gradient_std"]]
    columns.append(predicted_grad)
    if experiment.networks > 1:
        networks = measured["over_networks"][init_mode]
        header += [f"pre std, {experiment.networks} nets", "theory", "paper's claim"]
        columns += [networks.pooled, networks.one_layer, networks.chain]
    rows = [
        [str(layer), *(readable(v, ".2e") for v in values)]
        for layer, values in enumerate(zip(*columns), 1)
    ]
    return table_lines(header, rows, (5, 8, 8, 8, 9, 9))


def misses(predicted, measured):
    """How far a prediction misses, layer by layer: (the median layer's miss, the worst)."""
    off = [abs(p / m - 1.0) for p, m in zip(predicted, measured) if m > 0.0]
    return f"{100 * statistics.median(off):.0f}% at the median layer (worst {100 * max(off):.0f}%)"


def experiment_finding(experiment, measured):
    """The finding in words, every number from this run."""
    last, parts = len(experiment.layer_widths) - 2, []
    for init_mode, (report, pre_stds, predicted_pre, predicted_grad) in measured["at_init"].items():
        activations = change(report["activation_std"][0], report["activation_std"][-1])
        gradients = change(report["gradient_std"][-1], report["gradient_std"][0])
        part = (
            f"{init_mode}: activation std {activations} from layer 1 to {last}, gradient std "
            f"{gradients} from layer {last} down to 1; the one-layer theory misses the "
            f"pre-activation std by {misses(predicted_pre, pre_stds)}, the gradient std by "
            f"{misses(predicted_grad, report['gradient_std'])}"
        )
        if experiment.networks > 1:
            networks = measured["over_networks"][init_mode]
            pooled, chain = networks.pooled, networks.chain
            part += (
                f"; over {experiment.networks} networks by "
                f"{misses(networks.one_layer, pooled)}; the paper's claim, from the input alone, "
                f"says the pre-activation std {change(chain[0], chain[-1])} over the layers, and "
                f"over {experiment.networks} networks it {change(pooled[0], pooled[-1])}"
            )
        losses = measured["losses"].get(init_mode)
        if losses:
            learned = losses[-1] < LEARNS_BELOW * math.log(experiment.layer_widths[-1])
            verdict = "it learns" if learned else "it does not learn"
            part += f"; after {len(losses)} epochs the loss is {format_loss(losses[-1])}: {verdict}"
        parts.append(part)
    (first, (one, *_)), (second, (other, *_)) = measured["at_init"].items()
    spread = [report["activation_std"][0] / report["activation_std"][-1] for report in (one, other)]
    less = f"{spread[0] / spread[1]:.3g}x less over the layers"
    parts.append(f"{second} against {first}: the activation std shrinks {less}")
    if experiment.networks > 1:
        parts.append(
            "the one-layer relation holds at every layer of every network; the paper's chain "
            "multiplies expected ratios, and at width "
            f"{experiment.layer_widths[1]} each layer's ratio scatters around its expectation, "
            "a scatter that compounds over the layers"
        )
    return "finding: " + "; ".join(parts) + "."


def experiment_records(measured):
    """The experiment's JSON records, one per init and hidden layer."""
    keys = ("activation_std", "gradient_std", "pre_activation_std")
    keys += ("predicted_pre_activation_std", "predicted_gradient_std")
    return [
        dict(experiment=measured["name"], init=init_mode, layer=layer, **dict(zip(keys, stds)))
        for init_mode, (report, *columns) in measured["at_init"].items()
        for layer, stds in enumerate(
            zip(report["activation_std"], report["gradient_std"], *columns), 1
        )
    ]


# ----------------------------------------------------------------------------
# Pictures: every run as one HTML page of SVG charts, no script, nothing fetched
#
# One small set of SVG helpers draws every chart: axes with linear or log ticks
# (exact zeros get a band of their own below a log axis), lines or dots with
# their numbers in an SVG <title> (shown on hover), warning limits in grey with
# the region beyond them tinted, marks, a legend, and heatmap cells. Colours are
# Okabe and Ito's (2008), safe for colour-blind eyes; each line also has a dash
# pattern of its own, for grey print.

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
DASHES = ("", "6 3", "2 2", "9 3 2 3")
WIDTH, HEIGHT = 400, 270  # one chart, in px: three fit side by side at 1280 px
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 40, 76  # the plot's margins; the legend sits below
PAD, ZERO_BAND = 6, 18  # px inside the frame around the values; the band of exact zeros
LIMIT, TINT, NEVER = "#666", "#88888826", "#D55E00"  # limits, the region beyond, "never fired"
KIND_COLOURS = dict(zip(WARNING_KINDS, ("#D55E00", "#56B4E9", "#E69F00", "#CC79A7", "#009E73",
                                        "#000000", "#F0E442", "#999999")))  # fmt: skip
STYLE = (
    "body{font-family:sans-serif;max-width:1260px;margin:1em auto;color:#222}"
    "section{border-top:2px solid #0072B2;margin-top:1.5em}.charts{display:flex;"
    "flex-wrap:wrap;gap:8px}svg{background:#fff}.lead svg{border:2px solid #222}"
    "h3{margin:.6em 0 .2em}p,li{max-width:75em}"
)


def drawable(value, log):
    return math.isfinite(value) and (value > 0.0 or not log)


def axis(low, high, log, whole=False):
    """A range holding low..high on round values, and its ticks (log: decades; whole:
    whole numbers only)."""
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
        step = max(step, 1.0) if whole else step
        steps = range(math.floor(low / step), math.ceil(high / step) + 1)
        bounds = ticks = [round(k * step, 12) for k in steps]  # 0.6, not 0.6000000000000001
    bottom = max(value for value in bounds if value <= low * (1 + 1e-9))
    top = min(value for value in bounds if value >= high * (1 - 1e-9))
    return bottom, top, [tick for tick in ticks if bottom <= tick <= top]


def chart(title, x_label, y_label, series, log_y=False, y_range=None, limits=(), marks=(),
          x_labels=None, width=WIDTH, shown=None, whole=False):  # fmt: skip
    """One SVG chart of (name, [(x, y)], marker) series. limits: (value, "above", "below"
    or "line", label), a limit drawn grey, the region beyond it tinted. marks: (x, label)
    vertical lines. shown: formats a value for the hover text."""
    frame = chart_frame(series, log_y, y_range, limits, x_labels, width, whole)
    parts = [svg_open(width, HEIGHT, title)]
    for value, beyond, label in limits:
        edge = frame.y(value)
        top, bottom = (TOP, edge) if beyond == "above" else (edge, frame.floor)
        if beyond != "line":
            parts.append(
                f'<rect x="{LEFT}" y="{top:.1f}" width="{frame.inner_w}" '
                f'height="{bottom - top:.1f}" fill="{TINT}"><title>{escape(label)}'
                "</title></rect>"
            )
        parts.append(segment(LEFT, edge, LEFT + frame.inner_w, edge, LIMIT, "1 3", 1.5))
        below = beyond == "below"  # its label on its side of the line, away from the others
        parts.append(text(LEFT + frame.inner_w - 3, edge + (11 if below else -3), label, "end", 10,
                          fill=LIMIT))  # fmt: skip
    parts += axes(frame, x_labels, x_label, y_label)
    for x, label in marks:
        parts.append(segment(frame.x(x), TOP, frame.x(x), frame.bottom, "#000", "4 2"))
        side = "start" if frame.x(x) < LEFT + frame.inner_w / 2 else "end"
        parts.append(text(frame.x(x), TOP - 5, label, side, 10))
    legend = [(name, index, marker) for index, (name, _, marker) in enumerate(series)]
    for index, (name, line, marker) in enumerate(series):
        parts += drawn_series(frame, index, name, line, marker, shown or "{:.4g}".format)
    if any(beyond != "line" for _, beyond, _ in limits):
        legend.append(("beyond a warning limit", None, "region"))
    return "\n".join(parts + legend_parts(frame, legend)) + "</svg>"


class Frame(namedtuple("Frame", "width x_low x_high low high y_ticks log_y zeros x_labels")):
    """A chart's plot area, its x range and its y axis; zeros: a band for exact zeros."""

    def name(self, x):
        """How x is named: its category's label, or the number."""
        return self.x_labels[round(x)] if self.x_labels else f"{x:g}"

    inner_w = property(lambda self: self.width - LEFT - RIGHT)
    bottom = property(lambda self: HEIGHT - BOTTOM)  # the frame's bottom, below any band
    floor = property(lambda self: self.bottom - (ZERO_BAND if self.zeros else 0))

    def x(self, x):
        return LEFT + PAD + (self.inner_w - 2 * PAD) * (x - self.x_low) / (self.x_high - self.x_low)

    def y(self, y):
        """Where y is drawn: exact zeros below a log axis in their band, the rest inside."""
        if self.log_y and y <= 0.0:
            return self.bottom - ZERO_BAND / 2
        where = math.log10 if self.log_y else float
        position = (where(y) - where(self.low)) / (where(self.high) - where(self.low))
        return self.floor - PAD - (self.floor - TOP - 2 * PAD) * min(max(position, 0.0), 1.0)


def chart_frame(series, log_y, y_range, limits, x_labels, width, whole=False):
    """The frame holding every drawable y and each limit (a decade past it on a log axis)."""
    ys = [y for _, line, _ in series for _, y in line if drawable(y, log_y)]
    for value, beyond, _ in limits:
        ys.append(value * 10.0 if log_y and beyond == "above" else value / 10.0 if log_y else value)
    low, high = y_range or (min(ys, default=1.0), max(ys, default=1.0))
    low, high = (min(low, 0.0), max(high, 1e-12)) if not log_y else (low, max(high, low * 1.01))
    low, high, y_ticks = axis(low, high, log_y, whole)
    zeros = log_y and any(y == 0.0 for _, line, _ in series for _, y in line)
    xs = [x for _, line, _ in series for x, _ in line] or [1.0]
    x_low, x_high = min(xs), max(max(xs), min(xs) + 1)
    if x_labels:
        x_low, x_high = -0.5, len(x_labels) - 0.5
    return Frame(width, x_low, x_high, low, high, y_ticks, log_y, zeros, x_labels)


def axes(frame, x_labels, x_label, y_label):
    """Grid lines and tick labels (0 for the band of zeros), the axes and their names."""
    parts = []
    ticks = [(tick, f"{tick:g}") for tick in frame.y_ticks] + ([(0.0, "0")] if frame.zeros else [])
    for tick, name in ticks:
        y = frame.y(tick)
        parts.append(segment(LEFT, y, LEFT + frame.inner_w, y, "#e4e4e4", ""))
        parts.append(text(LEFT - 4, y + 4, name, "end"))
    if frame.zeros:  # the band's top edge, broken: zero is not on the log scale
        parts.append(segment(LEFT, frame.floor, LEFT + frame.inner_w, frame.floor, "#444", "3 3"))
    whole = not x_labels and frame.x_high - frame.x_low >= 1
    positions = list(range(len(x_labels or ())))
    if not x_labels:
        positions = axis(frame.x_low, frame.x_high, False, whole)[2]
    names = [name.split(" ", 1) for name in x_labels or [f"{p:g}" for p in positions]]
    # As many labels as fit side by side (~6 px a character at this size), two words
    # in two lines.
    widest = max(len(word) for name in names for word in name)
    step = 1 if x_labels else math.ceil(len(positions) * (widest + 2) * 6 / frame.inner_w)
    size = min(11, frame.inner_w / len(positions) / (widest + 1) * 1.9)  # every category fits
    for position, name in list(zip(positions, names))[::step]:
        if frame.x_low <= position <= frame.x_high:
            parts += [text(frame.x(position), frame.bottom + 14 + 11 * k, word, size=size)
                      for k, word in enumerate(name)]  # fmt: skip
    return [
        *parts,
        f'<rect x="{LEFT}" y="{TOP}" width="{frame.inner_w}" height="{frame.bottom - TOP}" '
        'fill="none" stroke="#444"/>',
        text(LEFT + frame.inner_w / 2, frame.bottom + (38 if x_labels else 30), x_label),
        text(14, (TOP + frame.bottom) / 2, y_label, rotate=True),
    ]


def drawn_series(frame, index, name, line, marker, shown):
    """One series in its colour and dash, with every value in its <title>."""
    colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
    points = [(frame.x(x), frame.y(y)) for x, y in line if drawable(y, frame.log_y) or y == 0.0]
    left_out = len(line) - len(points)
    note = f" ({left_out} NaN or inf, not drawn)" if left_out else ""
    values = ", ".join(f"{frame.name(x)}: {shown(y)}" for x, y in line)
    parts = [f"<g><title>{escape(f'{name}{note}: {values}')}</title>"]
    if marker == "line" and len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="1.8" stroke-dasharray="{dash}"/>'
        )
    elif marker == "bar":
        parts += [segment(x - 12, y, x + 12, y, colour, "", 3) for x, y in points]
    else:
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in points]
    return [*parts, "</g>"]


def legend_parts(frame, entries):
    """The legend below the x axis, as many entries a row as fit: each series' own mark."""
    parts, longest = [], max((len(name) for name, *_ in entries), default=0)
    columns = 4 if longest <= 10 else 2 if longest <= 24 else 1
    for number, (name, index, marker) in enumerate(entries):
        row, column = divmod(number, columns)
        x, y = LEFT + column * (frame.inner_w / columns), frame.bottom + 50 + 13 * row
        if marker == "region":
            parts.append(
                f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="14" height="10" fill="{TINT}" '
                f'stroke="{LIMIT}" stroke-dasharray="1 3"/>'
            )
        elif marker == "dot":
            colour = PALETTE[index % len(PALETTE)]
            parts.append(f'<circle cx="{x + 7:.1f}" cy="{y - 4:.1f}" r="2.5" fill="{colour}"/>')
        else:
            colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
            dash = "" if marker == "bar" else dash
            parts.append(segment(x, y - 4, x + 14, y - 4, colour, dash, 2.5))
        parts.append(text(x + 17, y, name, anchor="start", size=10))
    return parts


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


def text(x, y, words, anchor="middle", size=11, weight="normal", rotate=False, fill="#222"):
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'font-weight="{weight}" fill="{fill}"{turn}>{escape(words)}</text>'
    )


def heatmap(title, row_labels, cells, key):
    """Cells in rows (the first on top), a column per epoch, each a (colour, its <title>);
    key: (colour, what it means) swatches under the map."""
    columns = max(map(len, cells), default=1)
    cell_w, cell_h = (WIDTH - LEFT - RIGHT) / columns, min(14, 220 / max(len(row_labels), 1))
    bottom = TOP + cell_h * len(row_labels)
    parts = [svg_open(WIDTH, bottom + 34 + 13 * len(key), title)]
    for row, (label, line) in enumerate(zip(row_labels, cells)):
        y = TOP + row * cell_h
        if len(row_labels) <= 16 or row % 2 == 0:
            parts.append(text(LEFT - 4, y + cell_h - 3, label, anchor="end", size=10))
        parts += [
            f'<rect x="{LEFT + column * cell_w:.1f}" y="{y:.1f}" width="{cell_w:.1f}" '
            f'height="{cell_h:.1f}" fill="{colour}" stroke="#fff" stroke-width="0.5">'
            f"<title>{escape(f'{label}, epoch {column + 1}: {hover}')}</title></rect>"
            for column, (colour, hover) in enumerate(line)
        ]
    parts.append(text(LEFT + (WIDTH - LEFT - RIGHT) / 2, bottom + 14, f"epoch 1 to {columns}"))
    for row, (colour, meaning) in enumerate(key):
        x, y = LEFT, bottom + 32 + 13 * row
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="10" fill="{colour}"/>')
        parts.append(text(x + 16, y, meaning, anchor="start", size=10))
    return "\n".join(parts) + "</svg>"


def shade(share):
    """A share from 0 to 1 as a blue, darker for more (on a square-root scale)."""
    return f"#0072B2{round(255 * share**0.5):02x}" if share > 0 else "#ffffff"


# How the page formats each reading in its hover text, as the text chart does.
SHOWN = {
    "loss": format_loss,
    "activation_std": "{:.3g}".format,  # 3 digits: 0.000685, not 0.001, by a limit of 0.001
    "gradient_std": "{:.2e}".format,
    "gradient_max": "{:.2e}".format,
    "dead_count": "{:.1%}".format,
    "saturation_rate": "{:.1%}".format,
    "update_ratio": "{:.2e}".format,
}


def reading_charts(dosing, reports, ranges=None):
    """{key: chart} of the loss (with chance) and every reading of one run over the epochs,
    a line per layer, the first sign marked with its warning. ranges: y ranges to share."""
    ranges, first = ranges or {}, first_warned(reports)
    marks = [(first["epoch"], f"first sign: {first['warnings'][0].kind}")] if first else []
    losses = [("mean loss", [(r["epoch"], r["loss"]) for r in reports], "line")]
    limits = chance_line(dosing.layer_widths[-1])
    charts = {"loss": chart("loss, the temperature", "epoch", "cross-entropy (log)", losses, True,
                            ranges.get("loss"), limits, marks, shown=format_loss)}  # fmt: skip
    skip = ACTIVATIONS[dosing.activation].not_applicable
    for key, title, y_label, log, limits, _ in TRENDS:
        if key not in skip and key in reports[0]:  # the lesson's reports have six readings
            marked = [(value, beyond, f"warns {beyond} {value:g}") for value, beyond in limits]
            y_range = ranges.get(key, None if log else (0.0, 1.0))
            charts[key] = chart(title, "epoch", y_label, layer_series(reports, key), log, y_range,
                                marked, marks, shown=SHOWN[key])  # fmt: skip
    return charts


def chance_line(classes):
    """The loss of a guess, ln(classes), as a line to draw on a loss chart (none if unknown)."""
    if classes < 2:
        return []
    return [(math.log(classes), "line", f"chance, ln {classes} = {math.log(classes):.3f}")]


def layer_series(reports, key):
    """One (name, [(epoch, value)], "line") per hidden layer; dead counts as shares."""
    widths = reports[0]["layer_neuron_count"]
    return [
        (f"layer {layer + 1}", [(r["epoch"], r[key][layer] / scale) for r in reports], "line")
        for layer, scale in enumerate(widths if key == "dead_count" else [1] * len(widths))
    ]


def depth_chart(reports, key):
    """A reading against depth, at the first sign and at the end: a slope shows a disease
    that grows or shrinks on its way through the layers."""
    _, title, y_label, log, limits, _ = next(row for row in TRENDS if row[0] == key)
    first, last = first_warned(reports), reports[-1]
    chosen = [(f"epoch {first['epoch']}, first sign", first)] if first and first is not last else []
    chosen.append((f"epoch {last['epoch']}, the end", last))
    widths = last["layer_neuron_count"]
    series = [
        (name, [(layer, report[key][layer - 1] / (widths[layer - 1] if key == "dead_count" else 1))
                for layer in range(1, len(widths) + 1)], "line")
        for name, report in chosen
    ]  # fmt: skip
    marked = [(value, beyond, f"warns {beyond} {value:g}") for value, beyond in limits]
    return chart(f"{title} by depth", "hidden layer", y_label, series, log,
                 None if log else (0.0, 1.0), marked, shown=SHOWN[key])  # fmt: skip


def firing_maps(dosing, reports):
    """Per hidden layer, each neuron's share of the samples it worked for, epoch by
    epoch; a neuron that never did in an epoch is drawn in NEVER's colour."""
    if "firing_share" not in reports[0]:
        return []
    relu = dosing.activation != "tanh"
    # A ReLU's map shows how often each neuron fired; a tanh's how often it saturated.
    never = "never fired" if relu else "always saturated"
    colour, what = ("#0072B2", "fired") if relu else (f"{NEVER}80", "saturated")
    key = [(colour, f"{what}: darker, for more samples"), (NEVER, never)]

    def cell(share):
        if math.isnan(share):  # a file's: an epoch with no samples
            return "#ffffff", "no share recorded"
        if relu:
            return NEVER if share == 0 else shade(share), f"fired for {share:.0%} of the samples"
        colour = NEVER if share == 0 else f"{NEVER}{round(255 * (1 - share) ** 0.5):02x}"
        return colour, f"saturated for {1 - share:.0%} of the samples"

    maps = []
    for layer in range(len(reports[0]["firing_share"])):
        neurons = range(len(reports[0]["firing_share"][layer]))
        cells = [[cell(r["firing_share"][layer][n]) for r in reports] for n in neurons]
        maps.append(heatmap(f"layer {layer + 1}: each neuron, epoch by epoch",
                            [f"n{n + 1}" for n in neurons], cells, key))  # fmt: skip
    return maps


def warning_timeline(reports):
    """Per layer and epoch, the first kind of warning it gave (hover: every warning)."""
    layers = range(1, len(reports[0]["activation_std"]) + 1)
    cells = []
    for layer in layers:
        row = []
        for report in reports:
            given = [w for w in report["warnings"] if w.layer == layer]
            hover = "; ".join(w.text for w in given) or "no warning"
            row.append((KIND_COLOURS[given[0].kind] if given else "#f4f4f4", hover))
        cells.append(row)
    shown = {colour for row in cells for colour, _ in row}
    key = [(KIND_COLOURS[kind], kind) for kind in WARNING_KINDS if KIND_COLOURS[kind] in shown]
    names = [f"layer {layer}" for layer in layers]
    return heatmap("warnings: which layer, which epoch", names, cells, key or [("#f4f4f4", "none")])


def zero_gradient_chart(reports):
    """Each layer's share of exactly-zero gradients over time: a dead or cut-off layer."""
    series = [
        (f"layer {layer + 1}", [(r["epoch"], bucket_shares(r["gradient_histogram"][layer])[0])
                                for r in reports], "line")
        for layer in range(len(reports[0]["gradient_histogram"]))
    ]  # fmt: skip
    return chart("share of gradients exactly 0", "epoch", "share of dLoss/d(pre)", series,
                 y_range=(0.0, 1.0), shown="{:.1%}".format)  # fmt: skip


def distribution_chart(title, histograms, labels, marks=()):
    """One curve per layer over its histogram's buckets (Glorot and Bengio's Fig. 6)."""
    curves = [(f"layer {layer + 1}", list(enumerate(bucket_shares(counts))), "line")
              for layer, counts in enumerate(histograms)]  # fmt: skip
    return chart(title, "bucket, up to", "share of the values", curves, y_range=(0.0, 1.0),
                 marks=marks, x_labels=labels, shown="{:.1%}".format)  # fmt: skip


def distributions_then_and_now(reports, key, labels, what, marks=()):
    """A histogram reading's distribution, a curve per layer, at the first sign and the end."""
    if key not in reports[0]:
        return ""
    first, last = first_warned(reports), reports[-1]
    chosen = [first, last] if first and first is not last else [last]
    return "".join(
        distribution_chart(f"epoch {report['epoch']}: {what}", report[key], labels, marks)
        for report in chosen
    )


# The chart that shows each disease best, by the kind of the first warning: it
# leads its patient's section, under the verdict.
LEADS = {
    "dead neurons": "firing",
    "vanishing gradients": "gradient_std by depth",
    "exploding gradients": "gradient_std by depth",
    "saturation": "activations",
    "signal collapse": "activation_std by depth",
    "non-finite values": "loss",
    "update too large": "update_ratio",
    "update too small": "update_ratio",
}


def examination_charts(dosing, reports):
    """Every chart of an examination, the one that shows its disease best first."""
    first, last = first_warned(reports), reports[-1]
    charts = reading_charts(dosing, reports)
    charts["timeline"] = warning_timeline(reports)
    for key in (key for key in DEPTH_KEYS if key in last):
        charts[f"{key} by depth"] = depth_chart(reports, key)
    charts["firing"] = "".join(firing_maps(dosing, reports))
    labels = ACTIVATIONS[dosing.activation].labels
    charts["activations"] = distributions_then_and_now(reports, "histogram", labels, "activations")
    # The flat shoulders start at +-SATURATION_LIMIT: between the buckets either side.
    shoulders = [(i + 0.5, f"{edge:+g}") for i, edge in enumerate(PRE_EDGES)
                 if abs(edge) == SATURATION_LIMIT]  # fmt: skip
    charts["pre-activations"] = distributions_then_and_now(
        reports, "pre_histogram", PRE_LABELS, "pre-activations", shoulders
    )
    if "gradient_histogram" in last:
        charts["zero gradients"] = zero_gradient_chart(reports)
        charts["gradients"] = distributions_then_and_now(
            reports, "gradient_histogram", GRADIENT_LABELS, "|dLoss/d(pre)|"
        )
    lead = LEADS.get(first["warnings"][0].kind) if first else "loss"
    lead = lead if charts.get(lead) else "loss"
    return [charts[lead], *(chart for key, chart in charts.items() if chart and key != lead)]


DEPTH_KEYS = ("gradient_std", "activation_std", "update_ratio")


def examination_section(dosing, reports):
    """An examination: dosing, verdict, first sign, then its charts, the telling one first."""
    first, last = first_warned(reports), reports[-1]
    lead, *charts = examination_charts(dosing, reports)
    signs = "".join(f"<li>{escape(warning.text)}</li>" for warning in (first or last)["warnings"])
    return (
        f"<section><h2>{escape(dosing.label)}</h2><p>{escape(describe_dosing(dosing))}</p>"
        f"<p>{escape(places_line(reports[0]))}</p>"
        f"<p><b>{escape(verdict(reports))}</b></p>"
        + (f"<h3>first sign, epoch {first['epoch']}</h3><ul>{signs}</ul>" if first else "")
        + f'<div class="charts"><div class="lead">{lead}</div>{"".join(charts)}</div></section>'
    )


# The reading's worst layer, for comparing patients: the farthest past its warning
# limits (on a log scale: a 0 is infinitely far), or the largest share.
def worst_layer(values, log, limits):
    """The worst of a reading's per-layer values (NaN if it has none)."""
    values = [value for value in values if not math.isnan(value)]
    if not values or not log:
        return max(values, default=math.nan)

    def distance(value):
        if not 0.0 < value < math.inf:  # 0 and inf are both infinitely far
            return math.inf
        return max(math.log10(limit / value if beyond == "below" else value / limit)
                   for limit, beyond in limits) if limits else math.log10(value)  # fmt: skip

    return max(values, key=distance)


def comparison_section(runs):
    """Several patients side by side: the loss (with chance), and each reading's worst
    layer per patient, on shared axes."""
    limits = chance_line(runs[0][0].layer_widths[-1])
    series = [(d.patient, [(r["epoch"], r["loss"]) for r in rs], "line") for d, rs in runs]
    charts = [chart("loss, the temperature", "epoch", "cross-entropy (log)", series, True,
                    limits=limits, shown=format_loss)]  # fmt: skip
    for key, title, y_label, log, limits, _ in TRENDS:
        series = [
            (d.patient, [(r["epoch"], worst_layer(shares(r, key), log, limits)) for r in reports],
             "line")
            for d, reports in runs if key in reports[0]
        ]  # fmt: skip
        if not series:  # no run recorded it (the lesson's run has six readings)
            continue
        marked = [(value, beyond, f"warns {beyond} {value:g}") for value, beyond in limits]
        charts.append(chart(f"{title}, the worst layer", "epoch", y_label, series, log,
                            None if log else (0.0, 1.0), marked, shown=SHOWN[key]))  # fmt: skip
    names = ", ".join(dosing.label for dosing, _ in runs)
    return (
        f"<section><h2>Side by side: {escape(names)}</h2><p>Each reading's worst layer: the "
        "farthest past its warning limits (a share: the largest).</p>"
        f'<div class="charts">{"".join(charts)}</div></section>'
    )


def shares(report, key):
    """A report's reading per layer, a dead count as a share of the layer."""
    widths = report["layer_neuron_count"]
    return [v / w for v, w in zip(report[key], widths)] if key == "dead_count" else report[key]


def treatment_section(rounds):
    """The outcome, the loss and first sign of every round, then each round: its
    treatments and why, and its charts on axes of its own."""
    kept = kept_round(rounds)
    losses = [(f"round {n}", [(r["epoch"], r["loss"]) for r in round_.reports], "line")
              for n, round_ in enumerate(rounds)]  # fmt: skip
    limits = chance_line(rounds[0].dosing.layer_widths[-1])
    story = chart("loss, round by round", "epoch", "cross-entropy (log)", losses, True,
                  limits=limits, shown=format_loss)  # fmt: skip
    blocks = []
    for number, round_ in enumerate(rounds):
        state = " (withdrawn)" if round_.withdrawn else " (kept)" if round_ is kept else ""
        given = "".join(f"<li>{escape(f'{t.name}: {t.reason}')}</li>" for t in round_.prescription)
        first = first_warned(round_.reports)
        sign = "no warning"
        if first:
            sign = f"first sign at epoch {first['epoch']}: {first_of(first['warnings'])}"
        lead, *_ = examination_charts(round_.dosing, round_.reports)
        over_time = reading_charts(round_.dosing, round_.reports).values()
        charts = [lead, *(chart for chart in over_time if chart != lead)]
        blocks.append(
            f"<h3>round {number}: {escape(', '.join(round_.treatments) or 'untreated')}{state}</h3>"
            + (f"<ul>{given}</ul>" if given else "")
            + f"<p>{escape(sign)}</p>"
            + f'<div class="charts">{"".join(charts)}</div>'
        )
    return (
        f"<section><h2>{escape(rounds[0].dosing.label)}</h2>"
        f"<p><b>{escape(outcome(rounds, kept))}</b></p>"
        f'<div class="charts">{story}</div>{"".join(blocks)}</section>'
    )


def seeds_section(dosing, results):
    """Each seed pair's first epoch of each warning and its final loss, medians marked."""
    kinds = [kind for kind in WARNING_KINDS if any(kind in first for first, *_ in results)]
    # Each seed pair a little to the right of the last, so that equal epochs stay visible.
    shifted = [(first, k * 0.5 / len(results) - 0.25) for k, (first, *_) in enumerate(results)]
    dots = [(i + shift, first[kind]) for first, shift in shifted
            for i, kind in enumerate(kinds) if kind in first]  # fmt: skip
    medians = [(i, statistics.median([first[kind] for first, *_ in results if kind in first]))
               for i, kind in enumerate(kinds)]  # fmt: skip
    epochs = [("a seed pair", dots, "dot"), ("median", medians, "bar")]
    losses = [loss for _, loss, *_ in results]
    median = statistics.median([loss for loss in losses if not math.isnan(loss)] or [math.nan])
    final = [("a seed pair", list(enumerate(losses)), "dot")]
    final.append(("median", [(0, median), (len(losses) - 1, median)], "line"))
    limits = chance_line(dosing.layer_widths[-1])
    charts = [chart("first epoch of each warning", "kind of warning", "epoch", epochs,
                    x_labels=kinds, width=2 * WIDTH, shown="{:g}".format, whole=True)]  # fmt: skip
    charts = charts if kinds else []
    charts.append(chart("final loss of each seed pair", "seed pair k", "cross-entropy (log)",
                        final, True, limits=limits, shown=format_loss))  # fmt: skip
    summary = "\n".join(seed_summary(dosing, results))
    return (
        f"<section><h2>{escape(dosing.label)}: {len(results)} seed pairs</h2>"
        f'<pre>{escape(summary)}</pre><div class="charts">{"".join(charts)}</div></section>'
    )


def experiment_section(measured):
    """Each init's per-layer std beside the one-layer theory (and, over several
    networks, their spread and the paper's chain), its distributions, and the losses."""
    experiment, charts = EXPERIMENTS[measured["name"]], []
    for init, (report, pre_stds, predicted_pre, predicted_grad) in measured["at_init"].items():
        layers = range(1, len(pre_stds) + 1)
        lines = [("measured", list(zip(layers, pre_stds)), "line"),
                 ("one-layer theory", list(zip(layers, predicted_pre)), "line")]  # fmt: skip
        if experiment.networks > 1:
            networks = measured["over_networks"][init]
            dots = [point for stds in networks.stds for point in zip(layers, stds)]
            lines.append((f"{experiment.networks} networks", dots, "dot"))
            pooled = f"{experiment.networks} networks' mean variance"
            lines.append((pooled, list(zip(layers, networks.pooled)), "line"))
            lines.append(("paper's claim", list(zip(layers, networks.chain)), "line"))
        charts.append(chart(f"{init} init: pre-activation std", "hidden layer", "std (log)", lines,
                            True, shown="{:.3g}".format))  # fmt: skip
        lines = [("measured", list(zip(layers, report["gradient_std"])), "line"),
                 ("one-layer theory", list(zip(layers, predicted_grad)), "line")]  # fmt: skip
        charts.append(chart(f"{init} init: gradient std", "hidden layer", "std (log)", lines, True,
                            shown="{:.3g}".format))  # fmt: skip
        if len(layers) <= 8:  # one curve per layer: readable for a few layers only
            labels = ACTIVATIONS[experiment.activation].labels
            title = f"{init} init at initialization"
            charts.append(distribution_chart(f"{title}: activations", report["histogram"], labels))
            gradients = report["gradient_histogram"]
            charts.append(distribution_chart(f"{title}: |gradients|", gradients, GRADIENT_LABELS))
    if measured["losses"]:
        widths = experiment.layer_widths
        chance = chance_line(widths[-1])
        lines = [(f"{init} init", list(enumerate(losses, 1)), "line")
                 for init, losses in measured["losses"].items()]  # fmt: skip
        charts.append(chart("training loss", "epoch", "cross-entropy (log)", lines, True,
                            limits=chance, shown=format_loss))  # fmt: skip
    return (
        f"<section><h2>{escape(experiment.title)}</h2>"
        f"<p>{escape(experiment_finding(experiment, measured))}</p>"
        f"<p>{escape('paper: ' + experiment.paper)}</p>"
        f'<div class="charts">{"".join(charts)}</div></section>'
    )


def html_page(argv, sections):
    """The whole page: the command, then one section per run."""
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

RUN_KEYS = ("patient", "label", *DOSING_FIELDS, "data_seed", "network_seed")


def json_records(dosing, reports, **extra):
    """One JSON-ready dict per epoch: the dosing, the report and extra keys (NaN: null)."""
    run = {key: json_safe(getattr(dosing, key)) for key in RUN_KEYS}
    return [{**run, **{key: json_safe(value) for key, value in report.items() if key not in
                       ("warnings", "calm")}, **extra} for report in reports]  # fmt: skip


def json_safe(value):
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_file(path, text):
    """Write text whole or not at all: a temporary file beside path, then os.replace."""
    handle, temporary = tempfile.mkstemp(
        dir=os.path.dirname(os.path.abspath(path)), prefix=".health-", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        umask = os.umask(0o022)  # the umask can only be read by setting it
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


# ----------------------------------------------------------------------------
# Reading a run recorded elsewhere: per-epoch reports in JSON Lines, as examine
# --json writes them or the README's recorder for PyTorch does

# The lesson's readings, per hidden layer: every record must have them; the
# examination's own are optional, and what needs one that is missing is skipped.
RUN_READINGS = ("activation_mean", "activation_std", "gradient_std", "gradient_max")
RUN_READINGS += ("dead_count", "saturation_rate", "layer_neuron_count", "histogram")
OPTIONAL_READINGS = ("update_ratio", "nonfinite_count", "firing_share", "gradient_histogram")
OPTIONAL_READINGS += ("pre_histogram",)
MAX_RUN_BYTES = 256 * 2**20  # 10,000 epochs of a 100-layer model take ~200 MB
MAX_WHOLE = 2.0**53  # a float counts one by one up to here: a count above it is no count
COUNTS = ("dead_count", "nonfinite_count", "histogram", "gradient_histogram", "pre_histogram")
# Each reading's range (NaN passes: no value, or none that applies); counts are whole numbers.
RANGES = {key: (0.0, math.inf) for key in (*RUN_READINGS[1:], *OPTIONAL_READINGS)}
RANGES |= {key: (0.0, MAX_WHOLE) for key in COUNTS} | {"layer_neuron_count": (1.0, MAX_WHOLE)}
RANGES |= {"saturation_rate": (0.0, 1.0), "firing_share": (0.0, 1.0)}
COUNTS += ("layer_neuron_count",)  # a count too, but from 1


def is_number(value, low=-math.inf, high=math.inf, whole=False):
    """Whether value is a number (a whole one if asked) from low to high: not NaN, not a bool."""
    return (type(value) is int or (type(value) is float and not whole)) and low <= value <= high


# fmt: off
RUN_FIELDS = {  # a record's keys about its run: whether a value is right, what it must be
    **dict.fromkeys(("label", "patient", "init_mode"), (lambda v: type(v) is str, "a string")),
    "activation": (lambda v: type(v) is str and v in ACTIVATIONS,
                   f"one of {', '.join(ACTIVATIONS)}"),
    "norm": (lambda v: v in ("none", "layer"), "'none' or 'layer'"),
    "optimizer": (lambda v: v in ("sgd", "adam"), "'sgd' or 'adam'"),
    "learning_rate": (lambda v: is_number(v, 0.0, 1e300), "a number from 0"),
    **dict.fromkeys(("weight_scale_override", "clip"),
                    (lambda v: is_number(v, math.ulp(0.0), 1e300), "a number above 0")),
    "epochs": (lambda v: is_number(v, 1, MAX_WHOLE, whole=True), "a whole number from 1"),
    "layer_widths": (lambda v: type(v) is list and all(is_number(w, 1, MAX_WHOLE, True) for w in v),
                     "a list of whole numbers from 1"),
}
# fmt: on


class UnreadableRun(ValueError):
    """A run file that cannot be read; its message names the file, the line and the key."""


def read_run(path):
    """The reports of a JSON Lines file, checked line by line (each with its run's "run")."""
    if not os.path.isfile(path):
        raise UnreadableRun(f"{path}: no such file")
    if os.path.getsize(path) > MAX_RUN_BYTES:
        raise UnreadableRun(f"{path}: {os.path.getsize(path)} bytes, more than {MAX_RUN_BYTES}")
    reports = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                reports.append(read_record(line, f"{path}, line {number}", (reports or [None])[-1]))
    if not reports:
        raise UnreadableRun(f"{path}: no record in it")
    return reports


def read_record(line, where, last):
    """One line's report: in last's run, or the first of a run of its own (NaN for a null)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise UnreadableRun(f"{where}: not JSON ({error.args[0].split(':')[0]})") from None
    if not isinstance(record, dict):
        raise UnreadableRun(f"{where}: not a JSON object")
    for key in ("epoch", "loss", *RUN_READINGS):
        if key not in record:
            raise UnreadableRun(f"{where}, key {key!r}: missing")
    run = {key: record[key] for key in RUN_FIELDS if record.get(key) is not None}  # null: not said
    for key, value in run.items():
        if not RUN_FIELDS[key][0](value):
            raise UnreadableRun(f"{where}, key {key!r}: {value!r:.60} is not {RUN_FIELDS[key][1]}")
    epoch = record["epoch"]
    if not is_number(epoch, 1, MAX_WHOLE, whole=True):
        raise UnreadableRun(f"{where}, key 'epoch': {epoch!r:.60} is not a whole number from 1")
    # A run goes on until a record starts again at epoch 1 or is labelled otherwise.
    going_on = last and epoch != 1 and run.get("label") == last["run"].get("label")
    if going_on and epoch <= last["epoch"]:
        raise UnreadableRun(f"{where}, key 'epoch': {epoch} comes after {last['epoch']}")
    run, first = (last["run"], last) if going_on else (run, record)
    layers = len(first["activation_std"]) if isinstance(first["activation_std"], list) else 0
    report = {"epoch": epoch, "loss": as_number(record["loss"], where, "loss")}
    edges = {"histogram": ACTIVATIONS[record.get("activation") or "relu"].edges}
    edges |= {"gradient_histogram": GRADIENT_EDGES, "pre_histogram": PRE_EDGES}
    for key in (*RUN_READINGS, *OPTIONAL_READINGS):
        if key in record:
            sizes = [len(edges[key]) + 1] * layers if key in edges else ()
            sizes = report["layer_neuron_count"] if key == "firing_share" else sizes
            report[key] = per_layer(record[key], layers, where, key, sizes)
    widths = report["layer_neuron_count"]
    if going_on and widths != last["layer_neuron_count"]:
        raise UnreadableRun(f"{where}, key 'layer_neuron_count': not the run's widths")
    if going_on and (odd := (report.keys() ^ last.keys()) & set(OPTIONAL_READINGS)):
        raise UnreadableRun(f"{where}, key {min(odd)!r}: in some of the run's records only")
    if any(map(gt, report["dead_count"], widths)):
        raise UnreadableRun(f"{where}, key 'dead_count': more than the layer's neurons")
    if run.get("layer_widths", [0, *widths, 0])[1:-1] != widths:
        raise UnreadableRun(f"{where}, key 'layer_widths': not inputs, each layer's, outputs")
    if "sample_count" in record:
        report["sample_count"] = record["sample_count"]
    for key in (key for key in PLACES if key in record):
        (fits, what), values = PLACES[key], record[key]
        if type(values) is not list or len(values) != layers or not all(map(fits, values)):
            raise UnreadableRun(f"{where}, key {key!r}: give {what} per hidden layer ({layers})")
        report[key] = values
    return {**report, "run": run}


# fmt: off
PLACES = {  # optional per layer, as the README's recorder writes them (null: no weights)
    "layer_names": (lambda v: type(v) is str, "a name"),
    "layer_positions": (lambda v: is_number(v, 1, MAX_WHOLE, True), "a whole number from 1"),
    "init_std": (lambda v: v is None or is_number(v, math.ulp(0.0), 1e300), "a std above 0"),
    **dict.fromkeys(("fan_in", "fan_out"), (lambda v: v is None or is_number(v, 1, MAX_WHOLE,
                                                                             True), "a count")),
}
# fmt: on


def places_line(report):
    """Where each layer runs in the model, a convolution's as its channels ('' if unsaid)."""
    names, positions, said = report.get("layer_names"), report.get("layer_positions"), []
    for index, width in enumerate(report["layer_neuron_count"] if names or positions else ()):
        spread = positions[index] if positions else 1  # a convolution's neuron: a channel
        what = f"a convolution: {width} channels, {spread} positions each"
        what = what if spread > 1 else plural(width, "neuron")
        said.append(f"{index + 1}" + (f' at "{names[index]}"' if names else "") + f" ({what})")
    return "layers, by where they run in the model: " + ", ".join(said) if said else ""


def per_layer(values, layers, where, key, sizes=()):
    """A reading's numbers, one per hidden layer (or per layer a list of sizes[layer])."""
    shaped = isinstance(values, list) and len(values) == layers > 0
    if not shaped or (sizes and [len(v) if type(v) is list else -1 for v in values] != sizes):
        count = "its neurons'" if key == "firing_share" else sizes[0] if sizes else 0
        each = f"a list of {count} numbers" if sizes else "one value"
        raise UnreadableRun(f"{where}, key {key!r}: give {each} per hidden layer ({layers})")
    flat = [v for value in values for v in value] if sizes else values
    kinds = {type(v) for v in flat}
    if kinds - {int, float} or (int in kinds and key not in COUNTS):  # rare: value by value
        flat = [as_number(v, where, key) for v in flat]
        kinds, numbers = {type(v) for v in flat}, iter(flat)
        values = [[next(numbers) for _ in range(size)] for size in sizes] if sizes else flat
    nan = key == "dead_count" and all(v != v for v in flat if type(v) is float)  # n/a
    if key in COUNTS and kinds - {int} and not nan:
        raise UnreadableRun(f"{where}, key {key!r}: give whole numbers")
    low, high = RANGES.get(key, (-math.inf, math.inf))
    if any(map(low.__gt__, flat)) or any(map(high.__lt__, flat)):
        value = next(v for v in flat if not low <= v <= high and v == v)
        raise UnreadableRun(f"{where}, key {key!r}: {value!r} is not from {low:g} to {high:g}")
    return values


def as_number(value, where, key):
    """A number (null: NaN; a float unless a count), or an UnreadableRun naming where and key."""
    if value is not None and type(value) is not float and not is_number(value, -1e300, 1e300):
        wanted = "a number (or null, NaN, Infinity)"
        raise UnreadableRun(f"{where}, key {key!r}: {value!r:.60} is not {wanted}")
    return math.nan if value is None else value if key in COUNTS else float(value)


def run_dosing(path, reports, which=""):
    """The Dosing the run's records say, as far as they say it (the rest unknown)."""
    run = reports[0]["run"]
    for report in reports:
        del report["run"]
    widths = tuple(run.get("layer_widths") or (0, *reports[0]["layer_neuron_count"], 0))
    known = {key: run[key] for key in DOSING_FIELDS if key in run and key != "layer_widths"}
    unknown = {"init_mode": "unknown", "learning_rate": math.nan, "epochs": len(reports)}
    dosing = Dosing(**{**unknown, **known, "layer_widths": widths})
    label = run.get("label") or f"READ ({os.path.basename(path)}{which})"
    return replace(dosing, patient=run.get("patient", f"read{which}"), label=label)


# How each treatment is spelled in PyTorch, by the dosing field it changes.
IN_PYTORCH = {  # t: the Treatment
    "init_mode": lambda t: {
        "kaiming": 'torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")',
        "xavier": "torch.nn.init.xavier_normal_(layer.weight)",
    }[t.change["init_mode"]],
    "optimizer": lambda t: f"torch.optim.Adam(model.parameters(), lr={ADAM_LEARNING_RATE:g})",
    "learning_rate": lambda t: f"the optimizer's lr times {t.name.split(' x ')[1]}",
    "clip": lambda t: f"torch.nn.utils.clip_grad_norm_(model.parameters(), {t.change['clip']:g})",
    "norm": lambda t: "torch.nn.LayerNorm(width) before each activation (conv: GroupNorm(1, C))",
    "activation": lambda t: f"torch.nn.LeakyReLU({LEAKY_SLOPE:g})",
    "epochs": lambda t: f"train for {t.change['epochs']} epochs",
}


def prescription_lines(dosing, reports):
    """What the prescription table gives a read run, in words (and PyTorch's), and as data."""
    well, lines, data = is_well(reports, progressed, dosing), [], []
    prescription = [] if well else prescribe(reports, dosing, progress=progressed)  # ends well
    for treatment in prescription:
        field = next(key for key in IN_PYTORCH if key in treatment.change)
        spelled, change = IN_PYTORCH[field](treatment), json_safe(treatment.change)
        if field == "learning_rate":  # the rate a file does not know: the factor it is given
            change = {"learning_rate_factor": float(treatment.name.split(" x ")[1])}
        lines.append(f"- {treatment.name} (in PyTorch: {spelled}): {treatment.reason}")
        data.append(dict(name=treatment.name, change=change, in_pytorch=spelled,
                         answers=treatment.answers, source=treatment.source))  # fmt: skip
    if prescription:
        return ["prescription (nothing is treated here: the model is elsewhere):", *lines], data
    return [f"prescription: nothing{': it is well.' if well else ' in the table answers it.'}"], []


# ----------------------------------------------------------------------------
# The command line: a command, then only its own flags

# Bounds that keep one run within memory and minutes (at the lesson's size an
# epoch takes ~12 ms; a sample costs ~0.2 us per weight; a kept float ~32 bytes).
MAX_EPOCHS = 1_000  # every epoch's report is kept for the trends
MAX_SAMPLES = 10_000  # ~1.5 minutes at the lesson's size
MAX_WIDTH = 1_024  # any one layer
MAX_HIDDEN_NEURONS = 1_024  # the monitor keeps samples x this x 3 floats an epoch: <= 1 GB
MAX_WEIGHTS = 300_000  # ~60 ms a sample
MAX_SEED_PAIRS = 1_000  # a thousand runs of the lesson's size take ~10 minutes
MAX_SEED = 2**32 - 1
REPORT_EVERY = 10
# fmt: off
DOSING_FLAGS = dict(init="init_mode", scale="weight_scale_override", lr="learning_rate",
                    epochs="epochs", widths="layer_widths", activation="activation", norm="norm",
                    clip="clip", optimizer="optimizer", data_seed="data_seed",
                    network_seed="network_seed", samples="sample_count")  # flag: Dosing field


def build_parser():
    """The parser: a command, each with only its flags (and its function, to run it)."""
    parser = argparse.ArgumentParser(prog="main.py", allow_abbrev=False, description="No "
        "command: the lesson's run. A patient is a named dosing; dosing flags with no patient "
        "start from healthy, and the run is labelled CUSTOM by its dosing.")
    commands = parser.add_subparsers(metavar="COMMAND")
    seeds, size, dosing, files = shared_flags()
    for name, run, parents, about in (
        ("lesson", run_lesson, [seeds, size, files], "the lesson's run (the default)"),
        ("patients", run_patients, [], "list the patients and the diseases they show"),
        ("examine", run_examine, [dosing, seeds, size, files], "examine patients (default: "
         "healthy sick)"),
        ("treat", run_treat, [dosing, seeds, size, files], "examine, prescribe, treat, up to "
         f"{TREATMENT_ROUNDS} rounds (default: sick)"),
        ("seeds", run_seeds, [dosing, seeds, size], "patients on many seed pairs, on every core "
         "(default: healthy sick)"),
        ("experiment", run_experiment, [seeds, files], "readings at init beside theory: Glorot "
         "and Bengio 2010, or He et al. 2015"),
        ("read", run_read, [files], "examine a run recorded elsewhere (JSON Lines, as examine "
         "--json writes it, or the README's PyTorch recorder)"),
    ):
        command = commands.add_parser(name, parents=parents, help=about, description=about)
        command.set_defaults(run=run, command=name, parser=command)  # parser: for its errors
    examine, pairs, experiment, read = map(commands.choices.get, ("examine", "seeds", "experiment",
                                                                  "read"))
    read.add_argument("path", metavar="RUN.jsonl", help="one JSON object per epoch (README)")
    for command in (examine, read):
        command.add_argument("--report-every", type=number(int, 1, MAX_EPOCHS), metavar="N",
                             help=f"a chart every N epochs (default {REPORT_EVERY})")
    examine.add_argument("--halt-on-warning", action="store_true", help="stop at the first warning")
    pairs.add_argument("--pairs", type=number(int, 1, MAX_SEED_PAIRS), default=20, metavar="N",
                       help="seed pairs (default 20)")
    pairs.add_argument("--html", type=output_path, metavar="PATH", help="draw a page")
    experiment.add_argument("name", choices=EXPERIMENTS, help="glorot-bengio: 5 tanh layers, "
                            "standard vs Xavier init; he: 30 ReLU layers, Xavier vs Kaiming")
    return parser


def shared_flags():
    """The flags some commands share: seeds, size, dosing (with the patients) and files."""
    seeds, size, dosing, files = (argparse.ArgumentParser(add_help=False) for _ in range(4))
    seeds.add_argument("--data-seed", type=number(int, 0, MAX_SEED), metavar="N", help="default 7")
    seeds.add_argument("--network-seed", type=number(int, 0, MAX_SEED), metavar="N",
                       help="initial weights and sample order; default 11")
    size.add_argument("--samples", type=number(int, 1, MAX_SAMPLES), metavar="N",
                      help="training samples; default 80")
    dosing.add_argument("patients", nargs="*", metavar="PATIENT", help="see: main.py patients")
    dosing.add_argument("--init", choices=sorted(INIT_STDS.keys() | {"bad"}), metavar="MODE",
                        help="kaiming, xavier, standard, or bad (give --scale)")
    dosing.add_argument("--scale", type=number(float, 0), metavar="STD", help="the weights' std")
    dosing.add_argument("--lr", type=number(float, 0), help="learning rate")
    dosing.add_argument("--epochs", type=number(int, 1, MAX_EPOCHS), metavar="N", help="default 30")
    dosing.add_argument("--widths", type=layer_widths, metavar="8,16,...,4",
                        help="features, hidden widths, classes")
    dosing.add_argument("--activation", choices=ACTIVATIONS, metavar="NAME",
                        help=", ".join(ACTIVATIONS))
    dosing.add_argument("--norm", choices=("none", "layer"), metavar="KIND",
                        help="none, or layer: a layer norm before each activation")
    dosing.add_argument("--clip", type=number(float, 0), metavar="NORM", help="gradient clipping")
    dosing.add_argument("--optimizer", choices=("sgd", "adam"), metavar="NAME", help="sgd or adam")
    files.add_argument("--json", type=output_path, metavar="PATH", help="write the reports to PATH")
    files.add_argument("--html", type=output_path, metavar="PATH", help="draw a page of charts")
    return seeds, size, dosing, files
# fmt: on


def number(kind, low, high=math.inf):
    """An argparse type: a whole number (kind int) from low to high, or a finite float above low."""
    allowed = (
        f"a whole number from {low} to {high}" if kind is int else f"a finite number above {low}"
    )

    def parse(text):
        try:
            value = kind(text) if text == text.strip() else math.nan
        except ValueError:
            value = math.nan
        if not (low <= value <= high if kind is int else low < value < high):  # NaN fails both
            raise argparse.ArgumentTypeError(f"{text!r}: give {allowed}")
        return value

    return parse


def layer_widths(text):
    """An argparse type: layer widths, like 8,16,16,4."""
    parts = text.split(",")
    widths = tuple(map(int, parts)) if all(map(str.isdecimal, parts)) else ()
    weights, hidden = sum(map(mul, widths, widths[1:])), sum(widths[1:-1])
    if len(widths) < 3 or not 1 <= min(widths) <= max(widths) <= MAX_WIDTH or widths[-1] < 2:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give features, hidden widths and 2 or more classes, each 1 to {MAX_WIDTH}"
        )
    if hidden > MAX_HIDDEN_NEURONS or weights > MAX_WEIGHTS:
        limits = f"{MAX_HIDDEN_NEURONS} hidden neurons and {MAX_WEIGHTS} weights"
        raise argparse.ArgumentTypeError(f"{text!r}: give at most {limits}")
    return widths


def output_path(text):
    """An argparse type: a file path in a folder that exists."""
    if os.path.isdir(text) or text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder: give a file path")
    if not os.path.isdir(os.path.dirname(os.path.abspath(text))):
        raise argparse.ArgumentTypeError(f"{text!r} is in a folder that does not exist")
    return text


def dosings(args, default):
    """The runs a command asks for: each patient's Dosing with the flags' changes."""
    changes = {field: getattr(args, flag) for flag, field in DOSING_FLAGS.items()}
    changes = {field: value for field, value in changes.items() if value is not None}
    if args.init is not None and args.scale is None:
        changes["weight_scale_override"] = None  # an init mode brings its own std
    for name in args.patients:
        if name not in PATIENTS:
            args.parser.error(f"argument PATIENT: {name!r}: choose from {', '.join(PATIENTS)}")
    names = args.patients or (["custom"] if changes.keys() & set(DOSING_FIELDS) else default)
    runs = [patient(name, **changes) for name in names]
    for problem in filter(None, (dosing_problem(run, args.command) for run in runs)):
        args.parser.error(problem)
    return runs


def dosing_problem(dosing, command):
    """What no single flag can judge about a dosing, or "" if nothing."""
    if dosing.init_mode == "bad" and dosing.weight_scale_override is None:
        return "argument --init: 'bad' has no std of its own: give --scale too"
    if dosing.norm == "layer" and min(dosing.layer_widths[1:-1]) < 2:
        return "argument --norm: layer norm needs 2 or more neurons in every hidden layer"
    if command == "treat" and dosing.epochs < TREAT_MIN_EPOCHS:
        return f"argument --epochs: treat needs {TREAT_MIN_EPOCHS} or more to judge a cure"
    if dosing.sample_count < dosing.layer_widths[-1]:
        return "argument --samples: give at least one sample per class"
    return ""


def run_lesson(args):
    """The lesson's main() on the seeds and size asked for; its reports and page."""
    size = dict(data_seed=args.data_seed, network_seed=args.network_seed, sample_count=args.samples)
    size = {key: value for key, value in size.items() if value is not None}
    if size.get("sample_count", 4) < 4:
        args.parser.error("argument --samples: give at least one sample per class (4)")
    records, runs = [], []
    for name, reports in zip(("healthy", "sick"), main(**size)):  # as main()'s labels say
        for report in reports:
            report["warnings"], report["calm"] = flag_issues(report), []
        records += json_records(patient(name, **size), reports)
        runs.append((patient(name, **size), reports))
    return records, lambda: page_sections(runs)


def run_patients(args):
    for name, (dosing, _, disease) in PATIENTS.items():
        print(f"{name:<10} {describe_dosing(dosing)} -- {disease}")
    return [], list


def run_examine(args):
    records, runs = [], []
    for dosing in dosings(args, ["healthy", "sick"]):
        progress = progress_line(f"{dosing.patient}: epoch", dosing.epochs)
        reports = examine(dosing, samples_for(dosing), args.halt_on_warning, progress)
        if progress:  # a halted run ends early: clear its line
            progress(dosing.epochs)
        halted = args.halt_on_warning and bool(reports[-1]["warnings"])
        print_examination(dosing, reports, args.report_every or REPORT_EVERY, halted)
        records += json_records(dosing, reports)
        runs.append((dosing, reports))
    return records, lambda: page_sections(runs)


def page_sections(runs):
    """Each examined run's section, after a comparison when there are several."""
    sections = [examination_section(dosing, reports) for dosing, reports in runs]
    return [comparison_section(runs), *sections] if len(runs) > 1 else sections


def run_treat(args):
    records, treated = [], []
    for dosing in dosings(args, ["sick"]):
        rounds = treat(dosing, samples_for(dosing))
        print_treatment(rounds, REPORT_EVERY)
        for number, round_ in enumerate(rounds):
            extra = dict(round=number, treatments=round_.treatments)
            records += json_records(round_.dosing, round_.reports, **extra)
        treated.append(rounds)
    return records, lambda: [treatment_section(rounds) for rounds in treated]


def run_seeds(args):
    summaries = []
    for dosing in dosings(args, ["healthy", "sick"]):
        results, progress = [], progress_line(f"{dosing.patient}: seed pair", args.pairs)
        try:
            for result in on_every_core(first_signs, seed_pairs(dosing, args.pairs)):
                results.append(result)
                if progress:
                    progress(len(results))
        except KeyboardInterrupt:  # say what the pairs that finished found, then stop
            if results:
                stopped = f"(partial: stopped after {len(results)} of {args.pairs} seed pairs)"
                print("\n".join([*seed_summary(dosing, results), stopped]) + "\n")
            raise
        print("\n".join(seed_summary(dosing, results)) + "\n")
        summaries.append((dosing, results))
    return [], lambda: [seeds_section(dosing, results) for dosing, results in summaries]


def run_experiment(args):
    data_seed = 7 if args.data_seed is None else args.data_seed
    network_seed = 11 if args.network_seed is None else args.network_seed
    measured = measure_experiment(args.name, data_seed, network_seed)
    print_experiment(measured)
    return experiment_records(measured), lambda: [experiment_section(measured)]


def run_read(args):
    # Each run's reports share its first record's "run".
    runs = [list(run) for _, run in groupby(read_run(args.path), key=lambda r: id(r["run"]))]
    examined, records = [], []
    missing = [key for key in OPTIONAL_READINGS if any(key not in run[0] for run in runs)]
    if missing:
        skipped = f"{', '.join(missing)}; the examination skips what needs them"
        print(f"(not in {args.path}: {skipped})\n")
    for number, reports in enumerate(runs, 1):
        unsaid = set(RUN_KEYS) - reports[0]["run"].keys() - {"label", "patient"}  # kept unknown
        dosing = run_dosing(args.path, reports, f", run {number}" if len(runs) > 1 else "")
        for report in reports:
            report["warnings"], report["calm"] = examination_warnings(report)
        # A long run gets about ten charts unless asked for more.
        every = args.report_every or max(REPORT_EVERY, math.ceil(len(reports) / 10))
        if places_line(reports[0]):
            print(places_line(reports[0]) + "\n")
        print_examination(dosing, reports, every)
        lines, given = prescription_lines(dosing, reports)
        print("\n".join(lines) + "\n")
        examined.append((dosing, reports))
        records += [{key: value for key, value in record.items() if key not in unsaid}
                    for record in json_records(dosing, reports, prescription=given)]  # fmt: skip
    return records, lambda: page_sections(examined)


def command_line(argv):
    """Run what argv asks for and write the files it names."""
    parser = build_parser()
    # No command is the lesson's, flags and all; what a command does not take, its usage.
    lesson = not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help"))
    args, foreign = parser.parse_known_args(["lesson", *argv] if lesson else argv)
    if foreign:
        args.parser.error(f"unrecognized arguments: {' '.join(foreign)}")
    for key, value in vars(args).items():  # argparse before 3.13 makes [] of a value of '--'
        if value == [] and key != "patients":
            args.parser.error(f"argument --{key.replace('_', '-')}: '--' is not a value: give one")
    records, draw = args.run(args)  # draw: the page's sections, drawn only if asked for
    if getattr(args, "json", None):
        write_file(args.json, "".join(json.dumps(r, allow_nan=False) + "\n" for r in records))
        print(f"wrote {plural(len(records), 'report')} to {args.json}")
    if getattr(args, "html", None):
        write_file(args.html, html_page(argv, draw()))
        print(f"wrote the charts to {args.html}")
    sys.stdout.flush()  # here, so that a reader who has left is seen here


def stop(signum, frame):
    """Signal handler: the first stop raises KeyboardInterrupt(signum); later ones do nothing."""
    ignore_stops()
    raise KeyboardInterrupt(signum)


def ignore_stops():
    # A no-op handler, not SIG_IGN: a signal already on its way when SIG_IGN is
    # set raises "Signal ignored due to race condition".
    for each in STOPS:
        signal.signal(each, lambda signum, frame: None)


def run(argv):
    """command_line(argv)'s exit status: 0; 128 + N if stopped by signal N; 1 if stdout closed."""
    try:
        command_line(argv)
        hold_stops()  # done: a stop from now on changes nothing
        return 0
    except KeyboardInterrupt as interrupt:
        hold_stops()
        signum = interrupt.args[0] if interrupt.args else signal.SIGINT
        by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        clear = "\r\x1b[K" if sys.stderr.isatty() else ""  # over any progress line
        print(f"{clear}interrupted{by}: stopped.", file=sys.stderr)
        return 128 + signum
    except UnreadableRun as problem:  # one line, naming the file, the line and the key
        print(f"main.py read: error: {problem}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left: go quietly, as Python's docs do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    for each in STOPS:
        signal.signal(each, stop)
    sys.exit(run(sys.argv[1:]))
