"""Tests of the examination beyond the lesson: its monitor's seventh reading,
its warnings, trends, verdict, export and command line."""

import io
import json
import math
import random
import sys

import pytest

import main


@pytest.fixture(scope="module")
def dead_reports():
    """The dead patient's examination, on its default seeds (7 and 11)."""
    dosing = main.patient("dead")
    return main.examine(dosing, main.samples_for(dosing))


def exam_report(loss=1.0, **changes):
    """A one-layer examined report that trips nothing, with some readings changed."""
    report = {
        "activation_mean": [0.5],
        "activation_std": [1.0],
        "gradient_std": [1e-2],
        "dead_count": [0],
        "saturation_rate": [0.0],
        "layer_neuron_count": [10],
        "nonfinite_count": [0],
        "update_ratio": [1e-3],
        "loss": loss,
    }
    report.update({key: [value] for key, value in changes.items()})
    return report


def test_finite_keeps_the_finite_values_in_order():
    assert main.finite([1.0, math.inf, math.nan, -2.0]) == [1.0, -2.0]
    assert main.finite([1e308, 1e308, -math.inf]) == [1e308, 1e308]  # the sum overflows
    assert main.finite([1e308, 1e308]) == [1e308, 1e308]
    assert main.finite([]) == []


def test_sums_and_std_from_sums_match_a_hand_computation():
    # [1, 2] x [3, 5] = entries 3, 5, 6, 10: they sum to 24, their squares to 170
    total, squares = main.outer_product_sums([1.0, 2.0], [3.0, 5.0])
    assert (total, squares) == (24.0, pytest.approx(170.0, rel=1e-15))
    # mean 6, mean square 42.5: variance 42.5 - 36 = 6.5
    assert main.std_from_sums(total, squares, 4) == pytest.approx(math.sqrt(6.5), rel=1e-15)
    # The same four entries as a matrix, summed row by row.
    assert main.matrix_sums([[3.0, 5.0], [6.0, 10.0]]) == (24.0, pytest.approx(170.0, rel=1e-15))
    # Equal numbers have no spread, even where rounding leaves a hair below 0
    # (three 0.2s: 0.04 - 0.2^2 = -6.9e-18), where a plain sqrt would raise.
    total, squares = math.fsum([0.2] * 3), math.fsum([0.2 * 0.2] * 3)
    assert squares / 3 - (total / 3) ** 2 < 0.0
    assert main.std_from_sums(total, squares, 3) == 0.0


def test_update_ratio_matches_a_hand_computation_on_a_tiny_network():
    # Per step: std(lr * dW) / std(W before the step), dW = grad x^T built in
    # full; the epoch's reading is the arithmetic mean over its steps.
    dosing = main.patient(
        "healthy", layer_widths=(2, 3, 2), epochs=1, network_seed=4, learning_rate=0.1
    )
    samples = [([1.0, -0.5], 0), ([0.3, 0.8], 1)]
    network = main.init_network([2, 3, 2], "kaiming", None, seed=4)
    order = [0, 1]
    random.Random(4).shuffle(order)  # the order training_run visits them in
    ratios = []
    for index in order:
        inputs, target_class = samples[index]
        trace = main.forward_with_trace(network, inputs)
        grads = main.backward(network, trace, target_class)
        update = [0.1 * g * x for g in grads[0] for x in trace["layer_inputs"][0]]  # all 6
        weights = [w for row in network[0][0] for w in row]
        ratios.append(main.mean_and_std(update)[1] / main.mean_and_std(weights)[1])
        main.sgd_step(network, trace, grads, 0.1)
    (report,) = main.dosed_run(dosing, samples, main.ExamMonitor([2, 3, 2]))
    assert report["update_ratio"] == [pytest.approx((ratios[0] + ratios[1]) / 2, rel=1e-12)]


class ExactRatioMonitor(main.ExamMonitor):
    """The update/weight ratio as its definition reads: both stds summed in
    full at every step, from the weights before the step."""

    def record_step(self, network, trace, grads, step_size):
        for index in range(self.num_hidden_layers):
            weights = [w for row in network[index][0] for w in row]
            grad, layer_input = grads[index], trace["layer_inputs"][index]
            update = [step_size * g * x for g in grad for x in layer_input]
            ratio = main.mean_and_std(update)[1] / main.mean_and_std(weights)[1]
            if not math.isnan(ratio):
                self.ratio_sums[index] += ratio
                self.ratio_counts[index] += 1


@pytest.mark.parametrize(
    ("activation", "norm", "learning_rate"),
    [("relu", "none", 0.05), ("tanh", "layer", 0.05), ("relu", "none", 0.5)],
)
def test_the_carried_weight_sums_give_the_ratio_its_definition_gives(
    activation, norm, learning_rate
):
    # lr 0.5 blows the weights up and down again within an epoch: the
    # carried sums must then be summed in full again, not lose their digits.
    widths = (8, 12, 12, 4)
    dosing = main.patient(
        "healthy", layer_widths=widths, activation=activation, norm=norm,
        learning_rate=learning_rate, epochs=4,
    )  # fmt: skip
    samples = main.make_training_data(40, 8, 4, seed=7)
    carried = list(main.dosed_run(dosing, samples, main.ExamMonitor(widths, activation)))
    exact = list(main.dosed_run(dosing, samples, ExactRatioMonitor(widths, activation)))
    assert len(carried) == len(exact) == 4
    for fast, slow in zip(carried, exact):
        assert not any(map(math.isnan, slow["update_ratio"]))
        assert fast["update_ratio"] == pytest.approx(slow["update_ratio"], rel=1e-6)


def test_a_step_that_cancels_the_weights_makes_the_monitor_sum_them_again():
    monitor = main.ExamMonitor([2, 1, 2])
    network = [([[1.0, 1.0]], [0.0]), ([[1.0], [1.0]], [0.0, 0.0])]
    trace = {"layer_inputs": [[1.0, 1.0], [2.0]], "linear_outputs": [[2.0]]}  # W x + b
    step = 1.0 - 1e-9  # W - step * grad x^T = [1e-9, 1e-9]: all but 9 digits cancel
    monitor.record_step(network, trace, [[1.0], [0.1, -0.1]], step)
    assert monitor.weight_sums == [None]  # to be summed in full at the next step
    network[0] = ([[1e-9, 1e-9]], [0.0])
    trace["linear_outputs"] = [[2e-9]]  # W x + b with the new weights
    monitor.record_step(network, trace, [[1e-12], [0.1, -0.1]], 1.0)
    # Summed in full, then carried through this small step exactly:
    assert monitor.weight_sums[0][1] == pytest.approx(2 * (1e-9 - 1e-12) ** 2, rel=1e-9)
    assert monitor.weight_sums[0][0] == pytest.approx(2 * (1e-9 - 1e-12), rel=1e-12)


def test_record_update_adds_std_of_update_over_std_of_weights():
    monitor = main.ExamMonitor([2, 2, 2])
    # Weights 1, 2, 3, 4: std sqrt(1.25); update 0.1, 0.1, 0.1, 0.3: std sqrt(0.0075)
    monitor.record_update(0, (0.6, 0.12), (10.0, 30.0))
    # Weights with no spread give no ratio (not a division by 0).
    monitor.record_update(0, (0.6, 0.12), (8.0, 16.0))
    monitor.record_update(0, (0.0, 0.0), (10.0, 30.0))  # a step that moved nothing: 0
    ratio = math.sqrt(0.0075 / 1.25)
    assert monitor.report()["update_ratio"] == [pytest.approx(ratio / 2, rel=1e-12)]


@pytest.mark.parametrize(
    ("past", "short", "kind", "text"),
    [
        ({"nonfinite_count": 1}, {}, "non-finite values", "1 non-finite value (NaN/inf)"),
        (
            {"update_ratio": 1.01e-1},
            {"update_ratio": 1e-1},
            "update too large",
            "update/weight ratio 1.01e-01 (too large)",
        ),
        (
            {"update_ratio": 9.9e-6},
            {"update_ratio": 1e-5},
            "update too small",
            "update/weight ratio 9.90e-06 (too small)",
        ),
    ],
)
def test_each_examination_threshold_trips_just_past_it_and_stays_quiet_short_of_it(
    past, short, kind, text
):
    counted, calm = main.examination_warnings(exam_report(**past))
    assert (counted, calm) == ([main.HealthWarning(1, kind, f"Layer 1: {text}")], [])
    assert main.examination_warnings(exam_report(**short)) == ([], [])


def test_examination_warnings_print_shares_with_one_decimal_the_lessons_whole_percents():
    report = exam_report(dead_count=6, saturation_rate=0.303)
    report["layer_neuron_count"] = [16]
    lesson = main.flag_issues(report)
    assert [w.text for w in lesson] == [
        "Layer 1: 38% dead neurons (6/16)",
        "Layer 1: 30% of pre-activations are saturating (|value| > 6)",
    ]
    counted, _ = main.examination_warnings(report)
    assert [w.text for w in counted] == [
        "Layer 1: 37.5% dead neurons (6/16)",
        "Layer 1: 30.3% of pre-activations are saturating (|value| > 6)",
    ]
    assert [(w.layer, w.kind) for w in counted] == [(w.layer, w.kind) for w in lesson]
    # A warning without a share is left as it is.
    vanishing = main.HealthWarning(1, "vanishing gradients", "Layer 1: gradient std 1e-06")
    assert main.one_decimal(vanishing, report) is vanishing


def test_examination_warnings_come_by_layer_in_each_layers_own_order():
    report = exam_report()
    for value in report.values():
        if isinstance(value, list):
            value.append(value[0])  # a second layer, like the first
    report["dead_count"] = [0, 5]  # flag_issues' warning, at layer 2
    report["update_ratio"] = [0.5, 0.5]  # the seventh reading's, at layers 1 and 2
    counted, _ = main.examination_warnings(report)
    assert [(w.layer, w.kind) for w in counted] == [
        (1, "update too large"),
        (2, "dead neurons"),
        (2, "update too large"),
    ]


def test_a_fitted_network_small_gradients_and_steps_are_calm_not_counted():
    # Below FITTED_LOSS the network has fit its data: vanishing gradients and
    # too-small steps are its calm. Any other warning still counts.
    readings = dict(gradient_std=1e-6, update_ratio=1e-7, dead_count=5)
    counted, calm = main.examination_warnings(exam_report(loss=0.009, **readings))
    assert [w.kind for w in counted] == ["dead neurons"]
    assert [w.kind for w in calm] == ["vanishing gradients", "update too small"]
    counted, calm = main.examination_warnings(exam_report(loss=0.011, **readings))
    assert [w.kind for w in counted] == ["dead neurons", "vanishing gradients", "update too small"]
    assert calm == []


def test_trends_have_one_column_per_epoch(dead_reports):
    for charset in ("unicode", "ascii"):
        lines = main.trend_lines(dead_reports, charset)
        trend_rows = [line for line in lines if "layer" in line]
        assert len(trend_rows) == 1 + 5 * 4  # the loss, then five readings of four layers
        assert trend_rows[0].startswith("    all layers ")
        assert all(len(line.split()[-1]) == len(dead_reports) for line in trend_rows)
        losses = [report["loss"] for report in dead_reports]
        marks = trend_rows[0].split()[-1]
        assert marks[losses.index(max(losses))] == main.SPARK_LEVELS[charset][-1]
        assert marks[losses.index(min(losses))] == main.SPARK_LEVELS[charset][0]
    assert all(line.isascii() for line in main.trend_lines(dead_reports, "ascii"))
    # A reading that means nothing for the activation is left out.
    lines = main.trend_lines(dead_reports, "ascii", ("dead_count",))
    assert len([line for line in lines if "layer" in line]) == 1 + 4 * 4
    assert not any("dead share" in line for line in lines)


def test_sparkline_marks_zero_and_nonfinite_values():
    assert main.sparkline([1e-3, 1.0, 0.0, math.nan], 1e-3, 1.0, True, "ascii") == ".@_!"
    assert main.sparkline([0.0, 0.5, 1.0], 0.0, 1.0, False, "ascii") == ".+@"


def test_stdout_charset_follows_what_stdout_can_encode(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert main.stdout_charset() == "ascii"
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert main.stdout_charset() == "unicode"


def test_verdict_names_the_first_warning_epoch_and_where_it_starts(dead_reports):
    line = main.verdict(dead_reports)
    assert line.startswith(
        "verdict: first warning at epoch 8, loss then 1.0671 (epoch 1: 1.2300): "
        "Layer 2: 37.5% dead neurons (6/16)"
    )
    assert "Dead neurons travel forward: they start at layer 2, the lowest layer" in line
    assert main.first_warned(dead_reports) is dead_reports[7]


def test_a_backward_disease_is_traced_from_the_top():
    text = "Layer 1: gradient std 1.00e-06 (vanishing)"
    report = {
        "gradient_std": [1e-6, 1e-4, 1e-2],
        "activation_std": [1.0, 1.0, 1.0],
        "warnings": [main.HealthWarning(1, "vanishing gradients", text)],
    }
    assert main.origins(report) == [
        "Vanishing gradients travel backward, from the top: the gradient std shrinks 1e+04x "
        "from layer 3 down to layer 1."
    ]


def test_change_says_how_a_reading_moves():
    assert main.change(10.0, 1.0) == "shrinks 10x"
    assert main.change(1.0, 2.5) == "grows 2.5x"
    assert main.change(3.0, 0.0) == "falls to 0"
    assert main.change(2.0, 2.005) == "stays the same"
    assert main.change(math.nan, 1.0) == "cannot be compared (n/a)"


def test_halt_on_warning_stops_at_the_first_warning_epoch(dead_reports, capsys):
    dosing = main.patient("dead")
    reports = main.examine(dosing, main.samples_for(dosing), halt_on_warning=True)
    assert [r["epoch"] for r in reports] == list(range(1, 9))
    assert reports == dead_reports[:8]  # halting measures the same epochs
    main.print_examination(dosing, reports, 10, halted=True)
    out = capsys.readouterr().out
    assert "=== DEAD (lr=0.09) | epoch 8 | per-layer health ===\nfirst sign" in out
    assert "halted at epoch 8" in out
    assert "- Layer 2: 37.5% dead neurons (6/16)" in out


def test_json_lines_hold_one_complete_record_per_epoch(tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    main.command_line(["examine", "healthy", "--epochs", "3", "--json", str(path)])
    assert capsys.readouterr().out.endswith(f"wrote 3 reports to {path}\n")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [record["epoch"] for record in records] == [1, 2, 3]
    # A record holds the run's dosing and seeds, and every reading of the
    # examination (its warnings are the readings' words).
    assert set(main.RUN_KEYS) == {"patient", "label", *main.DOSING_FIELDS} | {
        "data_seed",
        "network_seed",
    }
    dosing = main.patient("healthy", epochs=3)
    reports = main.examine(dosing, main.samples_for(dosing))
    readings = [key for key in reports[0] if key not in ("warnings", "calm")]
    assert all(list(record) == [*main.RUN_KEYS, *readings] for record in records)
    assert len(records[0]["activation_std"]) == 4
    # The same readings as the examination in-process.
    assert records == main.json_records(dosing, reports)
    assert not list(tmp_path.glob(".health-*"))  # no temporary file left behind


def test_json_writes_nan_and_inf_as_null():
    assert main.json_safe([1.0, math.nan, [math.inf, -math.inf, 2]]) == [1.0, None, [None, None, 2]]
    assert main.json_safe((8, 16, 4)) == [8, 16, 4]


def test_dosing_flags_override_a_named_patient(tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    main.command_line(["examine", "healthy", "--lr", "0.2", "--epochs", "2", "--json", str(path)])
    record = json.loads(path.read_text().splitlines()[0])
    assert record["learning_rate"] == 0.2
    assert record["init_mode"] == "kaiming"
    assert record["patient"] == "healthy"
    assert "lr=0.2" in record["label"]


def test_dosing_flags_alone_make_a_custom_patient(capsys):
    main.command_line(["examine", "--init", "xavier", "--widths", "8,12,4", "--epochs", "2"])
    out = capsys.readouterr().out
    assert "=== CUSTOM (xavier init, lr=0.05, widths 8-12-4, 2 epochs) | epoch 2" in out


def test_patients_lists_all_seven(capsys):
    main.command_line(["patients"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(main.PATIENTS)
    assert len(lines) == 7


def test_a_terminal_without_unicode_gets_plain_characters(monkeypatch):
    # An ASCII-only stdout: a single non-ASCII character would raise.
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stdout)
    main.command_line(["examine", "dead", "--epochs", "3"])
    stdout.flush()
    out = stdout.buffer.getvalue().decode("ascii")
    assert "trends over 3 epochs" in out
    assert "    all layers " in out


# The chart and the verdict with inf, NaN and counts of one


def one_layer_report(dead, width, **changes):
    report = {
        "activation_mean": [0.5],
        "activation_std": [1.0],
        "gradient_std": [1e-2],
        "gradient_max": [0.1],
        "dead_count": [dead],
        "saturation_rate": [0.0],
        "layer_neuron_count": [width],
        "histogram": [[0] * len(main.HISTOGRAM_LABELS)],
        "nonfinite_count": [0],
        "update_ratio": [1e-3],
        "epoch": 1,
        "loss": 0.5,
    }
    report.update(changes)
    report["warnings"], report["calm"] = main.examination_warnings(report)
    return report


def test_the_dead_column_is_five_wide_unless_a_count_needs_more():
    lines = main.health_table(one_layer_report(3, 16))
    assert lines[0] == "layer |  act mean |  act std |  grad std |  max grad |  dead | sat %"
    assert lines[1] == "----- | --------- | -------- | --------- | --------- | ----- | -----"
    assert lines[2].endswith(" |  3/16 |    0%")
    report = one_layer_report(0, 16)
    for key in ("activation_mean", "activation_std", "gradient_std", "gradient_max"):
        report[key] = report[key] * 3
    report["saturation_rate"] = [0.0] * 3
    report["dead_count"] = [12, 1000, 0]
    report["layer_neuron_count"] = [16, 1000, 12345]
    lines = main.health_table(report)
    bars = [[index for index, char in enumerate(line) if char == "|"] for line in lines]
    assert all(positions == bars[0] for positions in bars)  # the whole table widens
    assert lines[2].split(" | ")[5] == "    12/16"
    assert lines[4].split(" | ")[5] == "  0/12345"


def test_counts_of_one_are_singular(tmp_path, capsys):
    assert main.describe_dosing(main.patient("healthy", epochs=1)).endswith(", 1 epoch")
    assert main.describe_dosing(main.patient("healthy")).endswith(", 30 epochs")
    report = one_layer_report(0, 16)
    assert main.verdict([report]) == "verdict: no warning in 1 epoch; final loss 0.5000."
    assert main.trend_lines([report], "ascii")[0].startswith("trends over 1 epoch (")
    diverged = one_layer_report(0, 16, nonfinite_count=[1], loss=math.nan)
    assert "Layer 1: 1 non-finite value (NaN/inf)" in [w.text for w in diverged["warnings"]]
    line = main.verdict([diverged])
    assert "(1 non-finite value in the hidden layers" in line
    assert line.count("warning") == 1  # one warning: no "+N more"
    two = one_layer_report(0, 16, nonfinite_count=[2], activation_std=[1e-9])
    assert "(+1 more warning)." in main.verdict([two])
    assert "Layer 1: 2 non-finite values (NaN/inf)" in [w.text for w in two["warnings"]]
    path = tmp_path / "run.jsonl"
    main.command_line(["examine", "healthy", "--epochs", "1", "--json", str(path)])
    out = capsys.readouterr().out
    assert "=== HEALTHY (kaiming init, lr=0.05, widths 8-16-16-16-16-4, 1 epoch) | epoch 1 |" in out
    assert out.endswith(f"wrote 1 report to {path}\n")


def test_a_blow_up_is_a_diagnosis_not_a_crash(capsys):
    main.command_line(
        ["examine", "--init", "bad", "--scale", "1e3", "--lr", "1e300", "--epochs", "2"]
    )
    out = capsys.readouterr().out
    assert "verdict: training diverged at epoch 1 (" in out
    assert "non-finite values (NaN/inf)" in out
    assert "nan" not in out.replace("non-finite", "")  # NaN statistics print as n/a


def test_the_exam_monitor_counts_and_skips_nonfinite_values():
    monitor = main.ExamMonitor([2, 3, 2])
    pre = [math.nan, 2.0, math.inf]
    trace = {
        "layer_inputs": [[1.0, 1.0], [0.0, 2.0, 0.0]],
        "pre_activations": [pre, [0.0, 0.0]],
        "post_activations": [[main.safe_relu(v) for v in pre], [0.5, 0.5]],
    }
    monitor.record(trace, [[0.0, 0.5, -math.inf], [0.1, -0.1]])
    report = dict(monitor.report(), loss=0.5)
    # pre: nan and inf; post: nan (inf is capped); grads: -inf
    assert report["nonfinite_count"] == [4]
    assert report["sample_count"] == 1
    assert report["activation_mean"] == [pytest.approx((2.0 + 1e6) / 2)]
    assert report["gradient_max"] == [0.5]
    assert report["saturation_rate"] == [0.0]  # the one finite pre-activation is 2.0
    texts = [warning.text for warning in main.examination_warnings(report)[0]]
    assert "Layer 1: 4 non-finite values (NaN/inf)" in texts
