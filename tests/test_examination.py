"""Tests of the part beyond the lesson: patients, trends, verdict, export, CLI."""

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import main


def examine(name, capsys, **options):
    patient = dict(main.PATIENTS[name], patient=name, network_seed=11)
    widths = patient["layer_widths"]
    samples = main.make_training_data(80, widths[0], widths[-1], seed=7)
    reports = main.examine(patient, samples, report_every=10, **options)
    return reports, capsys.readouterr().out


@pytest.fixture(scope="module")
def patient_reports():
    """Every patient's reports, with its default dosing and seeds (7 and 11)."""
    reports = {}
    for name in main.PATIENTS:
        patient = dict(main.PATIENTS[name], network_seed=11)
        widths = patient["layer_widths"]
        samples = main.make_training_data(80, widths[0], widths[-1], seed=7)
        monitor = main.ExamMonitor(widths, patient["activation"])
        reports[name] = [report for _, report in main.dosed_run(patient, samples, monitor)]
    return reports


def layer_rows(report):
    """(layer number, that layer's readings) for every hidden layer."""
    keys = [key for key, value in report.items() if isinstance(value, list)]
    count = len(report["activation_std"])
    return [(index + 1, {key: report[key][index] for key in keys}) for index in range(count)]


def test_the_healthy_patient_trips_no_warning_at_any_epoch(patient_reports):
    assert all(main.all_warnings(report) == [] for report in patient_reports["healthy"])


def test_outer_product_sums_match_a_hand_computation():
    # [1, 2] x [3, 5] = entries 3, 5, 6, 10: they sum to 24, their squares to 170
    total, squares = main.outer_product_sums([1.0, 2.0], [3.0, 5.0])
    assert (total, squares) == (24.0, pytest.approx(170.0, rel=1e-15))
    assert main.std_from_sums(total, squares, 4) == pytest.approx(math.sqrt(26 / 4))


def test_update_ratio_matches_a_hand_computation_on_a_tiny_network():
    # Per step: std(lr * dW) / std(W before the step), dW built in full; the
    # epoch's reading is the arithmetic mean over its steps.
    patient = dict(main.PATIENTS["healthy"], layer_widths=[2, 3, 2], epochs=1, network_seed=4)
    patient["learning_rate"] = 0.1
    samples = [([1.0, -0.5], 0), ([0.3, 0.8], 1)]
    network = main.init_network([2, 3, 2], "kaiming", None, seed=4)
    order = [0, 1]
    random.Random(4).shuffle(order)
    ratios = []
    for index in order:
        inputs, target_class = samples[index]
        trace = main.forward_with_trace(network, inputs)
        pre_grads, weight_grads, _ = main.backward(network, trace, target_class)
        update = [0.1 * g for row in weight_grads[0] for g in row]  # all 6 entries
        weights = [w for row in network[0][0] for w in row]
        ratios.append(main.mean_and_std(update)[1] / main.mean_and_std(weights)[1])
        main.sgd_step(network, trace, pre_grads, 0.1)
    monitor = main.ExamMonitor([2, 3, 2])
    ((_, report),) = main.dosed_run(patient, samples, monitor)
    assert report["update_ratio"] == [pytest.approx((ratios[0] + ratios[1]) / 2, rel=1e-12)]


def test_sgd_step_moves_every_weight_by_its_gradient():
    network = main.init_network([3, 4, 2], "kaiming", None, seed=2)
    before = [([list(row) for row in w], list(b)) for w, b in network]
    trace = main.forward_with_trace(network, [0.5, -1.0, 2.0])
    pre_grads, weight_grads, bias_grads = main.backward(network, trace, 1)
    main.sgd_step(network, trace, pre_grads, 0.1)
    for (w, b), (w0, b0), dw, db in zip(network, before, weight_grads, bias_grads):
        for row, row0, grad_row in zip(w, w0, dw):
            assert row == pytest.approx([x - 0.1 * g for x, g in zip(row0, grad_row)], rel=1e-15)
        assert b == pytest.approx([x - 0.1 * g for x, g in zip(b0, db)], rel=1e-15)


def test_trends_and_heatmap_have_one_column_per_epoch(capsys):
    reports, _ = examine("dead", capsys)
    for charset in ("unicode", "ascii"):
        trend_rows = [line for line in main.trend_lines(reports, charset) if "layer" in line]
        assert len(trend_rows) == 5 * 4  # five readings, four layers
        assert all(len(line.split()[-1]) == len(reports) for line in trend_rows)
        heat_rows = [line for line in main.histogram_heatmap(reports, charset) if "|" in line]
        assert heat_rows
        assert all(len(line.split("|")[1]) == len(reports) for line in heat_rows)
    ascii_lines = main.trend_lines(reports, "ascii") + main.histogram_heatmap(reports, "ascii")
    assert all(line.isascii() for line in ascii_lines)


def test_sparkline_marks_zero_and_nonfinite_values():
    assert main.sparkline([1e-3, 1.0, 0.0, math.nan], 1e-3, 1.0, True, "ascii") == ".@_!"
    assert main.sparkline([0.0, 0.5, 1.0], 0.0, 1.0, False, "ascii") == ".+@"


def test_verdict_names_the_first_warning_epoch_and_where_it_starts(capsys):
    _, out = examine("dead", capsys)
    assert (
        "verdict: first warning at epoch 8, loss then 1.0671 (epoch 1: 1.2300): "
        "Layer 2: 38% dead neurons (6/16)"
    ) in out
    assert "Dead neurons travel forward: they start at layer 2, the lowest layer" in out


def test_a_backward_disease_is_traced_from_the_top():
    report = {"gradient_std": [1e-6, 1e-4, 1e-2], "activation_std": [1.0, 1.0, 1.0]}
    warnings = ["Layer 1: gradient std 1.00e-06 (vanishing)"]
    assert main.origins(report, warnings) == [
        "Vanishing gradients travel backward, from the top: the gradient std shrinks 1e+04x "
        "from layer 3 down to layer 1."
    ]


def test_change_says_how_a_reading_moves():
    assert main.change(10.0, 1.0) == "shrinks 10x"
    assert main.change(1.0, 2.5) == "grows 2.5x"
    assert main.change(3.0, 0.0) == "falls to 0"
    assert main.change(math.nan, 1.0) == "cannot be compared (n/a)"


def test_halt_on_warning_stops_at_the_first_warning_epoch(capsys):
    reports, out = examine("dead", capsys, halt_on_warning=True)
    assert [r["epoch"] for r in reports] == list(range(1, 9))
    assert "=== DEAD (lr=0.09) | epoch 8 | per-layer health ===\nfirst sign" in out
    assert "halted at epoch 8" in out


def test_json_lines_hold_one_complete_object_per_epoch(tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    status = main.command_line(["--patient", "healthy", "--epochs", "3", "--json", str(path)])
    assert status == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [record["epoch"] for record in records] == [1, 2, 3]
    for record in records:
        for key in (*main.REPORT_KEYS, *main.RUN_KEYS, "update_ratio", "loss", "sample_count"):
            assert key in record
        assert len(record["activation_std"]) == 4
    assert not list(tmp_path.glob(".health-*"))  # no temporary file left behind


def test_dosing_flags_override_a_named_patient(tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    argv = ["--patient", "healthy", "--lr", "0.2", "--epochs", "2", "--json", str(path)]
    assert main.command_line(argv) == 0
    record = json.loads(path.read_text().splitlines()[0])
    assert record["learning_rate"] == 0.2
    assert record["init_mode"] == "kaiming"
    assert record["patient"] == "healthy"
    assert "lr=0.2" in record["label"]


def test_dosing_flags_alone_make_a_custom_patient(capsys):
    status = main.command_line(["--init", "xavier", "--widths", "8,12,4", "--epochs", "2"])
    assert status == 0
    out = capsys.readouterr().out
    assert "=== CUSTOM (xavier init, lr=0.05, widths 8-12-4, 2 epochs) | epoch 2" in out


def test_list_patients_lists_all_seven(capsys):
    assert main.command_line(["--list-patients"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(main.PATIENTS)
    assert len(lines) == 7


def test_a_terminal_without_unicode_gets_plain_characters():
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "main.py", "--patient", "dead", "--epochs", "3"],
        cwd=root,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        check=True,
    )
    assert result.stdout.isascii()
    assert b"trends over 3 epochs" in result.stdout


class ExactRatioMonitor(main.ExamMonitor):
    """The update/weight ratio as its definition reads: both stds summed in
    full at every step, from the weights before the step."""

    def record_step(self, network, trace, pre_activation_grads, step_size):
        for index in range(self.num_hidden_layers):
            weights = [w for row in network[index][0] for w in row]
            grad, layer_input = pre_activation_grads[index], trace["layer_inputs"][index]
            update = [step_size * g * x for g in grad for x in layer_input]
            ratio = main.mean_and_std(update)[1] / main.mean_and_std(weights)[1]
            if not math.isnan(ratio):
                self.ratio_sum_per_layer[index] += ratio
                self.ratio_count_per_layer[index] += 1


@pytest.mark.parametrize(
    ("activation", "norm", "learning_rate"),
    [("relu", "none", 0.05), ("tanh", "layer", 0.05), ("relu", "none", 0.5)],
)
def test_the_carried_weight_sums_give_the_ratio_its_definition_gives(
    activation, norm, learning_rate
):
    # lr 0.5 blows the weights up and down again within an epoch: the
    # carried sums must then be summed in full again, not lose their digits.
    widths = [8, 12, 12, 4]
    patient = dict(
        main.PATIENTS["healthy"],
        layer_widths=widths,
        activation=activation,
        norm=norm,
        learning_rate=learning_rate,
        epochs=4,
        network_seed=11,
    )
    samples = main.make_training_data(40, 8, 4, seed=7)
    carried = [r for _, r in main.dosed_run(patient, samples, main.ExamMonitor(widths, activation))]
    exact = [r for _, r in main.dosed_run(patient, samples, ExactRatioMonitor(widths, activation))]
    for fast, slow in zip(carried, exact, strict=True):
        assert fast["update_ratio"] == pytest.approx(slow["update_ratio"], rel=1e-6)


def test_a_step_that_cancels_the_weights_makes_the_monitor_sum_them_again():
    monitor = main.ExamMonitor([2, 1, 2])
    network = [([[1.0, 1.0]], [0.0]), ([[1.0], [1.0]], [0.0, 0.0])]
    trace = {"layer_inputs": [[1.0, 1.0], [2.0]], "pre_activations": [[2.0], [2.0, 2.0]]}
    step = 1.0 - 1e-9  # W - step * grad x^T = [1e-9, 1e-9]: all but 9 digits cancel
    monitor.record_step(network, trace, [[1.0], [0.1, -0.1]], step)
    assert monitor.weight_sums == [None]  # to be summed in full at the next step
    network[0] = ([[1e-9, 1e-9]], [0.0])
    trace["pre_activations"][0] = [2e-9]  # W x + b with the new weights
    monitor.record_step(network, trace, [[1e-12], [0.1, -0.1]], 1.0)
    # Summed in full, then carried through this small step exactly:
    assert monitor.weight_sums[0][1] == pytest.approx(2 * (1e-9 - 1e-12) ** 2, rel=1e-9)
