"""Bad input, Ctrl-C, numerical blow-ups and byte-for-byte determinism."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import main

ROOT = Path(__file__).resolve().parent.parent

BAD_ARGUMENTS = [
    # (argv, the argument named, the value named)
    (["--lr", "abc"], "--lr", "'abc'"),
    (["--epochs", "ten"], "--epochs", "'ten'"),
    (["--samples", "1e3"], "--samples", "'1e3'"),
    (["--report-every", "x"], "--report-every", "'x'"),
    (["--data-seed", "seven"], "--data-seed", "'seven'"),
    (["--epochs", "0"], "--epochs", "'0'"),
    (["--epochs", "-3"], "--epochs", "'-3'"),
    (["--epochs", "2.5"], "--epochs", "'2.5'"),
    (["--samples", "0"], "--samples", "'0'"),
    (["--samples", "-80"], "--samples", "'-80'"),
    (["--report-every", "0"], "--report-every", "'0'"),
    (["--report-every", "-1"], "--report-every", "'-1'"),
    (["--lr", "0"], "--lr", "'0'"),
    (["--lr", "-0.05"], "--lr", "'-0.05'"),
    (["--lr", "nan"], "--lr", "'nan'"),
    (["--lr", "inf"], "--lr", "'inf'"),
    (["--scale", "0"], "--scale", "'0'"),
    (["--scale", "-1"], "--scale", "'-1'"),
    (["--scale", "NaN"], "--scale", "'NaN'"),
    (["--scale=-inf"], "--scale", "'-inf'"),
    (["--widths", "8"], "--widths", "'8'"),
    (["--widths", "8,0,4"], "--widths", "'8,0,4'"),
    (["--widths", "8,-16,4"], "--widths", "'8,-16,4'"),
    (["--widths", "8,16.5,4"], "--widths", "'8,16.5,4'"),
    (["--widths", "8,sixteen,4"], "--widths", "'8,sixteen,4'"),
    (["--samples", "3"], "--samples", "3"),  # fewer samples than the 4 classes
    (["--widths", "8,16,10", "--samples", "9"], "--samples", "9"),
    (["--patient", "zombie"], "--patient", "'zombie'"),
    (["--init", "bad"], "--init", "'bad'"),  # 'bad' has no std without --scale
    (["--init", "random"], "--init", "'random'"),
    (["--activation", "sigmoid"], "--activation", "'sigmoid'"),
    (["--norm", "batch"], "--norm", "'batch'"),
    (["--clip", "0"], "--clip", "'0'"),
    (["--clip", "nan"], "--clip", "'nan'"),
    (["--seeds", "0"], "--seeds", "'0'"),
    (["--seeds", "many"], "--seeds", "'many'"),
    (["--experiment", "lecun"], "--experiment", "'lecun'"),
]


@pytest.mark.parametrize(("argv", "argument", "value"), BAD_ARGUMENTS)
def test_a_bad_argument_gets_one_line_and_status_2(argv, argument, value, tmp_path, capsys):
    json_path = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as stop:
        main.command_line([*argv, "--json", str(json_path)])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no training started
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert f"argument {argument}" in lines[0]
    assert value in lines[0]
    assert not json_path.exists()


def test_a_json_path_in_a_missing_folder_is_refused(tmp_path, capsys):
    path = tmp_path / "no-such-folder" / "out.jsonl"
    with pytest.raises(SystemExit) as stop:
        main.command_line(["--json", str(path)])
    assert stop.value.code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not path.parent.exists()


def test_a_json_path_that_is_a_folder_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main.command_line(["--json", str(tmp_path)])
    assert stop.value.code == 2
    assert "cannot be written" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_json_path_in_an_unwritable_folder_is_refused(capsys):
    # /proc refuses new files even to root, for whom os.access() would say yes.
    with pytest.raises(SystemExit) as stop:
        main.command_line(["--json", "/proc/health.jsonl"])
    assert stop.value.code == 2
    assert "cannot be written" in capsys.readouterr().err


def test_a_bad_argument_prints_no_traceback():
    result = subprocess.run(
        [sys.executable, "main.py", "--lr", "fast"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_a_blow_up_is_a_diagnosis_not_a_crash(capsys):
    status = main.command_line(
        ["--init", "bad", "--scale", "1e3", "--lr", "1e300", "--epochs", "2"]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "verdict: training diverged at epoch 1 (" in out
    assert "non-finite values (NaN/inf)" in out
    assert "nan" not in out.replace("non-finite", "")  # NaN statistics print as n/a


def test_the_monitor_counts_and_skips_nonfinite_values():
    monitor = main.TrainingMonitor([2, 3, 2])
    pre = [float("nan"), 2.0, float("inf")]
    trace = {
        "layer_inputs": [[1.0, 1.0], [0.0, 2.0, 0.0]],
        "pre_activations": [pre, [0.0, 0.0]],
        "post_activations": [[main.safe_relu(v) for v in pre], [0.5, 0.5]],
    }
    monitor.record(trace, [[0.0, 0.5, float("-inf")], [0.1, -0.1]])
    report = monitor.report()
    # pre: nan and inf; post: nan (inf is capped); grads: -inf
    assert report["nonfinite_count"] == [4]
    assert report["activation_mean"] == [pytest.approx((2.0 + 1e6) / 2)]
    assert report["gradient_max"] == [0.5]
    assert report["saturation_rate"] == [0.0]  # the one finite pre-activation is 2.0
    assert "Layer 1: 4 non-finite values (NaN/inf)" in main.flag_issues(report)


def test_std_survives_values_whose_squares_overflow():
    centre, spread = main.mean_and_std([1e200, -1e200, 3e200])
    assert centre == pytest.approx(1e200)
    assert spread == pytest.approx(1e200 * (8 / 3) ** 0.5)


def test_python_main_prints_the_same_bytes_twice():
    def run():
        return subprocess.run(
            [sys.executable, "main.py"], cwd=ROOT, capture_output=True, check=True
        ).stdout

    first = run()
    assert first == run()
    assert b"=== SICK (oversized init, lr=0.8) | epoch 30 | per-layer health ===" in first


def test_finite_keeps_the_finite_values_in_order():
    assert main.finite([1.0, math.inf, math.nan, -2.0]) == [1.0, -2.0]
    assert main.finite([1e308, 1e308, -math.inf]) == [1e308, 1e308]  # the sum overflows
    assert main.finite([1e308, 1e308]) == [1e308, 1e308]
    assert main.finite([]) == []


def test_largest_size_is_the_largest_absolute_value():
    assert main.largest_size([-3.0, 2.0, 0.5]) == 3.0
    assert main.largest_size([0.5, 2.0]) == 2.0
    assert math.copysign(1.0, main.largest_size([-0.0, -0.0])) == 1.0  # prints 0, never -0
    assert math.isnan(main.largest_size([]))
