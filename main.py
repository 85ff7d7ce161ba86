"""Training health monitor: read a network's chart, not only its temperature.

The runnable companion to the lesson "Activation and Gradient Health". It trains
two small list-based networks on the same toy task -- a healthy patient (Kaiming
init, learning rate 0.05) and a sick one (oversized init, learning rate 0.8) --
and every 10 epochs prints each hidden layer's six readings, a tiny histogram
of its activations, and the warnings the readings trip.

    python main.py             the lesson's two patients
    python main.py --help      more patients, your own dosing, trends, export
    python -m pytest           the tests

Pure Python, standard library only. The first part of this file is the lesson,
whole and in the lesson's order; everything after the "Beyond the lesson"
banner is extra, so a reader beside the lesson can stop there.
"""

import math
import random
from bisect import bisect_left
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
    """Multiply a matrix (a list of rows) by a vector."""
    try:
        return [math.fsum(map(mul, row, vector)) for row in weights]
    except (OverflowError, ValueError):  # see exact_sum
        return [exact_sum(list(map(mul, row, vector))) for row in weights]


def add_vectors(left, right):
    return [a + b for a, b in zip(left, right)]


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
    # ReLU, clamped at RELU_CAP. The NaN of a diverged network passes through.
    return 0.0 if value <= 0.0 else min(value, RELU_CAP)


def mean(values):
    return exact_sum(values) / len(values)


def std(values):
    """Population standard deviation (two passes: no cancellation)."""
    centre = mean(values)
    return math.sqrt(
        exact_sum([(value - centre) * (value - centre) for value in values]) / len(values)
    )


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
    a layer's input to its pre-activation. The weight std is
      "kaiming": sqrt(2 / fan_in), which keeps a ReLU layer's variance steady;
      "xavier":  sqrt(2 / (fan_in + fan_out)), Glorot's choice for tanh;
      "bad":     weight_scale_override, whatever dose you give it.
    A weight_scale_override replaces the std of any mode.
    """
    rng = random.Random(seed)
    network = []
    for fan_in, fan_out in pairwise(layer_widths):
        if weight_scale_override is not None:
            scale = weight_scale_override
        elif init_mode == "kaiming":
            scale = math.sqrt(2.0 / fan_in)
        elif init_mode == "xavier":
            scale = math.sqrt(2.0 / (fan_in + fan_out))
        else:
            raise ValueError(f"init_mode {init_mode!r} needs a weight_scale_override")
        weights = [[rng.gauss(0.0, scale) for _ in range(fan_in)] for _ in range(fan_out)]
        network.append((weights, [0.0] * fan_out))
    return network


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


def backward(network, trace, target_class):
    """Backprop the cross-entropy loss of one sample through the traced pass.

    Returns (pre_activation_grads, weight_grads, bias_grads): dLoss/dpre for
    every layer, hidden and output, and the gradient of every weight and bias.
    The ReLU derivative is 1 for any positive pre-activation and 0 otherwise,
    as the lesson states it, also above RELU_CAP: the cap only keeps forward
    values finite (a straight-through choice). That is what lets the sick
    patient's exploded layers be pushed down until they die.
    """
    probabilities = trace["post_activations"][-1]
    # Softmax followed by cross-entropy has the famously simple gradient p - y.
    grad = [p - (1.0 if index == target_class else 0.0) for index, p in enumerate(probabilities)]
    pre_activation_grads = [None] * len(network)
    weight_grads = [None] * len(network)
    bias_grads = [None] * len(network)
    for layer_index in range(len(network) - 1, -1, -1):
        layer_input = trace["layer_inputs"][layer_index]
        pre_activation_grads[layer_index] = grad
        weight_grads[layer_index] = [[g * x for x in layer_input] for g in grad]
        bias_grads[layer_index] = list(grad)
        if layer_index > 0:
            weights, _ = network[layer_index]
            # W^T grad: each column of W collects the gradient it passed on.
            upstream = matvec(zip(*weights), grad)
            below = trace["pre_activations"][layer_index - 1]
            grad = [u if pre > 0.0 else 0.0 for u, pre in zip(upstream, below)]
    return pre_activation_grads, weight_grads, bias_grads


def sgd_step(network, weight_grads, bias_grads, learning_rate):
    """Move every weight and bias against its gradient, in place."""
    for (weights, biases), layer_weight_grads, layer_bias_grads in zip(
        network, weight_grads, bias_grads
    ):
        for row_index, grad_row in enumerate(layer_weight_grads):
            weights[row_index] = [
                w - learning_rate * g for w, g in zip(weights[row_index], grad_row)
            ]
        biases[:] = [b - learning_rate * g for b, g in zip(biases, layer_bias_grads)]


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
        # A ReLU output is never below 0, so a maximum still at 0.0 at the end
        # of the epoch means the neuron never fired.
        self.neuron_max_per_layer = [[0.0] * width for width in self.layer_widths[1:-1]]
        self.sample_count = 0

    def record(self, trace, pre_activation_grads):
        for layer_index in range(self.num_hidden_layers):
            pre = trace["pre_activations"][layer_index]
            post = trace["post_activations"][layer_index]
            grad_pre = pre_activation_grads[layer_index]
            self.pre_activations_per_layer[layer_index].extend(pre)
            self.post_activations_per_layer[layer_index].extend(post)
            self.grad_pre_per_layer[layer_index].extend(grad_pre)
            # The lesson's per-neuron "if value > max" loop, as one map().
            self.neuron_max_per_layer[layer_index] = list(
                map(max, self.neuron_max_per_layer[layer_index], post)
            )
        self.sample_count += 1

    def report(self):
        """Reduce the epoch to one summary number (or histogram) per hidden layer.

        Statistics are taken over a layer's finite values; the inf and NaN of
        a diverged network are counted in "nonfinite_count" instead.
        """
        report = {key: [] for key in REPORT_KEYS}
        for layer_index in range(self.num_hidden_layers):
            pre = self.pre_activations_per_layer[layer_index]
            post = self.post_activations_per_layer[layer_index]
            grads = self.grad_pre_per_layer[layer_index]
            finite_pre, finite_post, finite_grads = (
                finite_values(values) for values in (pre, post, grads)
            )
            nonfinite = (
                len(pre)
                + len(post)
                + len(grads)
                - len(finite_pre)
                - len(finite_post)
                - len(finite_grads)
            )
            report["activation_mean"].append(mean_or_nan(finite_post))
            report["activation_std"].append(std_or_nan(finite_post))
            report["gradient_std"].append(std_or_nan(finite_grads))
            report["gradient_max"].append(max(map(abs, finite_grads), default=math.nan))
            report["dead_count"].append(
                sum(1 for peak in self.neuron_max_per_layer[layer_index] if not peak > 0.0)
            )
            report["saturation_rate"].append(saturation_rate(finite_pre, len(pre)))
            report["layer_neuron_count"].append(self.layer_widths[layer_index + 1])
            report["histogram"].append(histogram(finite_post))
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


def finite_values(values):
    return [value for value in values if math.isfinite(value)]


def mean_or_nan(values):
    return mean(values) if values else math.nan


def std_or_nan(values):
    return std(values) if values else math.nan


def saturation_rate(finite_pre, total_count):
    """Share of pre-activations past +-SATURATION_LIMIT (an inf one counts as NaN, not here)."""
    if not total_count:
        return math.nan
    return sum(1 for value in finite_pre if abs(value) > SATURATION_LIMIT) / total_count


def histogram(values):
    """Count values per HISTOGRAM_EDGES bucket: = 0, <= 0.01, <= 0.1, ..., > 1e5."""
    counts = [0] * (len(HISTOGRAM_EDGES) + 1)
    for value in values:
        counts[bisect_left(HISTOGRAM_EDGES, value)] += 1
    return counts


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
            warnings.append(f"{layer_label}: {nonfinite_count} non-finite values (NaN/inf)")
    return warnings


# ----------------------------------------------------------------------------
# The chart


def format_activation(value):
    # Three decimals for a healthy layer; one for an exploded one in the 1e5s.
    return f"{value:.3f}" if abs(value) < 1000.0 else f"{value:.1f}"


def health_table(report):
    """The lesson's per-layer table, one row per hidden layer."""
    lines = [
        "layer |  act mean |  act std |  grad std |  max grad |  dead | sat %",
        "----- | --------- | -------- | --------- | --------- | ----- | -----",
    ]
    for index in range(len(report["activation_mean"])):
        dead = f"{report['dead_count'][index]}/{report['layer_neuron_count'][index]}"
        lines.append(
            f"{index + 1:>5} | {format_activation(report['activation_mean'][index]):>9} | "
            f"{format_activation(report['activation_std'][index]):>8} | "
            f"{report['gradient_std'][index]:>9.2e} | {report['gradient_max'][index]:>9.2e} | "
            f"{dead:>5} | {100.0 * report['saturation_rate'][index]:>4.0f}%"
        )
    return lines


def histogram_chart(report, bar_width=10):
    """The activation histogram as bars: one row per bucket, one column per layer.

    Each '#' is 10% of the layer's values; a '.' marks a bucket that holds
    some values, but fewer than 5%.
    """
    label_width = max(map(len, HISTOGRAM_LABELS))
    header = [f"{'bucket':<{label_width}}"]
    header += [f"layer {index + 1:<{bar_width - 1}}" for index in range(len(report["histogram"]))]
    rows = [header]
    for bucket, label in enumerate(HISTOGRAM_LABELS):
        row = [f"{label:<{label_width}}"]
        for counts in report["histogram"]:
            share = counts[bucket] / max(sum(counts), 1)
            bar = "#" * round(share * bar_width) or ("." if counts[bucket] else "")
            row.append(f"{bar:<{bar_width}} {100.0 * share:3.0f}%")
        rows.append(row)
    lines = ["activation histogram (share of post-activations per bucket):"]
    lines += [("  " + " | ".join(row)).rstrip() for row in rows]
    return lines


def print_health_chart(label, report, show_histogram=False):
    print(f"=== {label} | epoch {report['epoch']} | per-layer health ===")
    print(f"loss: {report['loss']:.4f}")
    print("\n".join(health_table(report)))
    if show_histogram:
        print("\n".join(histogram_chart(report)))
    warnings = flag_issues(report)
    if warnings:
        print("WARNINGS:")
        print("\n".join(f"- {warning}" for warning in warnings))
    else:
        print("no warnings: every layer is healthy.")
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
    monitor = monitor or TrainingMonitor(layer_widths)
    order = list(range(len(samples)))
    for epoch in range(1, epochs + 1):
        monitor.reset()
        shuffler.shuffle(order)
        losses = []
        for sample_index in order:
            inputs, target_class = samples[sample_index]
            trace = forward_with_trace(network, inputs)
            losses.append(cross_entropy(trace["pre_activations"][-1], target_class))
            pre_activation_grads, weight_grads, bias_grads = backward(network, trace, target_class)
            monitor.record(trace, pre_activation_grads)
            sgd_step(network, weight_grads, bias_grads, learning_rate)
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


if __name__ == "__main__":
    main()
