"""Edge cases: odd inputs, odd files, odd streams and signals, exact wording."""

import contextlib
import errno
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import main


def test_matvec_of_an_iterator_of_rows_matches_the_list_version_after_an_overflow():
    # 1e308 + 1e308 overflows fsum in the second row, midway through the rows;
    # the fallback must then see every row again, not what is left of them.
    weights = [[1.0, 2.0], [1e308, 1e308], [3.0, -1.0]]
    vector = [1.0, 1.0]
    expected = main.matvec(weights, vector)
    assert expected == [3.0, float("inf"), 2.0]
    assert main.matvec(iter(weights), vector) == expected
    columns = [list(column) for column in zip(*weights)]
    assert main.matvec(zip(*columns), vector) == expected


NAN = float("nan")


@pytest.mark.parametrize(
    ("outputs", "dead"),
    [
        ([0.0, 0.0, 0.0], 1),
        ([0.0, 0.5, 0.0], 0),
        ([NAN, NAN, NAN], 0),  # no finite output: not dead, just diverged
        ([], 0),
    ],
)
def test_a_neuron_is_dead_when_every_finite_output_is_zero(outputs, dead):
    assert main.count_dead_neurons(outputs, 1) == dead


@pytest.mark.parametrize("position", [0, 1, 2, 3])
def test_a_nan_anywhere_in_a_neurons_outputs_does_not_change_the_count(position):
    for outputs, dead in (([0.0, 0.0, 0.0], 1), ([0.0, 2.0, 0.0], 0)):
        with_nan = [*outputs]
        with_nan.insert(position, NAN)
        assert main.count_dead_neurons(with_nan, 1) == dead


def test_dead_neurons_are_counted_per_neuron_in_sample_order():
    # two samples of a 3-wide layer: neuron 0 never fires, neuron 1 fires once,
    # neuron 2 has only NaN outputs
    post = [0.0, 0.0, NAN, 0.0, 3.0, NAN]
    assert main.count_dead_neurons(post, 3) == 1


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
    return report


def test_the_dead_column_widens_for_the_whole_table_when_a_count_needs_it():
    report = one_layer_report(0, 16)
    for key in ("activation_mean", "activation_std", "gradient_std", "gradient_max"):
        report[key] = report[key] * 3
    report["saturation_rate"] = [0.0] * 3
    report["dead_count"] = [12, 1000, 0]
    report["layer_neuron_count"] = [16, 1000, 12345]
    lines = main.health_table(report)
    bars = [[index for index, char in enumerate(line) if char == "|"] for line in lines]
    assert all(positions == bars[0] for positions in bars)
    assert lines[2].split(" | ")[5] == "    12/16"
    assert lines[4].split(" | ")[5] == "  0/12345"


def test_the_lesson_table_keeps_its_five_wide_dead_column():
    lines = main.health_table(one_layer_report(3, 16))
    assert lines[0] == "layer |  act mean |  act std |  grad std |  max grad |  dead | sat %"
    assert lines[1] == "----- | --------- | -------- | --------- | --------- | ----- | -----"
    assert lines[2].endswith(" |  3/16 |    0%")


def test_counts_of_one_are_singular():
    patient = dict(main.PATIENTS["healthy"], epochs=1)
    assert main.describe_dosing(patient).endswith(", 1 epoch")
    assert main.describe_dosing(main.PATIENTS["healthy"]).endswith(", 30 epochs")
    report = one_layer_report(0, 16)
    assert main.verdict([report]) == "verdict: no warning in 1 epoch; final loss 0.5000."
    assert main.trend_lines([report], "ascii")[0].startswith("trends over 1 epoch (")
    diverged = one_layer_report(0, 16, nonfinite_count=[1], loss=float("nan"))
    assert "Layer 1: 1 non-finite value (NaN/inf)" in main.flag_issues(diverged)
    line = main.verdict([diverged])
    assert "(1 non-finite value in the hidden layers" in line
    assert line.count("warning") == 1  # one warning: no "+N more"
    two = one_layer_report(0, 16, nonfinite_count=[2], activation_std=[1e-9])
    assert "(+1 more warning)." in main.verdict([two])
    assert "Layer 1: 2 non-finite values (NaN/inf)" in main.flag_issues(two)


def test_one_epoch_writes_1_report(tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    assert main.command_line(["--patient", "healthy", "--epochs", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"wrote 1 report to {path}\n")
    assert "=== HEALTHY (kaiming init, lr=0.05, widths 8-16-16-16-16-4, 1 epoch) |" in out


def refusal(argv, capsys):
    """The one stderr line of a refused command line (which must exit 2 and
    print nothing on stdout)."""
    with pytest.raises(SystemExit) as stop:
        main.command_line(argv)
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    return captured.err.rstrip("\n")


@pytest.mark.parametrize(
    ("widths", "problem"),
    [
        ("8,4", "no hidden layer"),
        ("8,16,1", "give 2 or more classes"),
        ("8,100000000000,4", "from 1 to 1024"),
        ("2000,16,4", "from 1 to 1024"),
        ("8,1024,1,4", "1025 hidden neurons: give at most 1024"),
        ("8,512,512,4", None),
        ("8,512,512,128", "331776 weights: give widths with at most 300000"),
        ("8," + "1," * 1025 + "4", "1025 hidden neurons"),
    ],
)
def test_widths_need_a_hidden_layer_two_classes_and_a_size_that_fits(widths, problem, capsys):
    if problem is None:
        assert main.layer_widths(widths) == [8, 512, 512, 4]
        return
    line = refusal(["--widths", widths], capsys)
    assert line.startswith(f"main.py: error: argument --widths: {widths!r} is not allowed: ")
    assert problem in line


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["--epochs", "1001"], "from 1 to 1000"),
        (["--samples", "10001"], "from 1 to 10000"),
        (["--data-seed", "-5"], "0 or above"),
        (["--network-seed", "-1"], "0 or above"),
        (["--report-every", "0"], "1 or above"),
    ],
)
def test_numbers_out_of_bounds_are_refused(argv, allowed, capsys):
    line = refusal(argv, capsys)
    assert line == (
        f"main.py: error: argument {argv[0]}: {argv[1]!r} is not allowed: "
        f"give a whole number {allowed}"
    )


def test_seed_zero_and_the_largest_bounds_are_allowed():
    args = main.build_parser().parse_args(
        ["--data-seed", "0", "--network-seed", "0", "--epochs", "1000", "--samples", "10000"]
    )
    assert (args.data_seed, args.network_seed, args.epochs, args.samples) == (0, 0, 1000, 10000)


def test_an_explicit_init_replaces_a_patients_std(capsys):
    parser = main.build_parser()

    def run(*argv):
        (patient,) = main.patient_runs(parser.parse_args(["--patient", *argv]), parser)
        return patient

    kaiming = run("sick", "--init", "kaiming")
    assert kaiming["weight_scale_override"] is None
    assert kaiming["label"] == "SICK (kaiming init, lr=0.8, widths 8-16-16-16-16-4, 30 epochs)"
    assert run("sick", "--init", "kaiming", "--scale", "0.3")["weight_scale_override"] == 0.3
    assert run("sick", "--lr", "0.1")["weight_scale_override"] == 1.0  # no --init: std kept
    # the saturated patient's 'bad' init has no std once --init bad is given anew
    line = refusal(["--patient", "saturated", "--init", "bad"], capsys)
    assert line.startswith("main.py: error: argument --init: 'bad' has no std of its own")


@pytest.fixture(scope="module")
def lesson_output():
    """What main(), the lesson's run, prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main.main()
    return out.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--data-seed", "7"],
        ["--network-seed", "11", "--samples", "80", "--report-every", "10"],
        ["--ascii"],
    ],
)
def test_flags_that_repeat_the_lessons_values_keep_the_lessons_run(argv, lesson_output, capsys):
    assert main.command_line(argv) == 0
    assert capsys.readouterr().out == lesson_output


@pytest.mark.parametrize(
    "argv",
    [
        ["--data-seed", "8"],
        ["--network-seed", "12"],
        ["--samples", "81"],
        ["--report-every", "5"],
        ["--epochs", "30"],  # a custom patient: one run with healthy's dosing
        ["--patient", "healthy", "--patient", "sick"],
        ["--timing"],
        ["--halt-on-warning"],
        ["--json", "out.jsonl"],
    ],
)
def test_any_other_run_or_an_examination_view_gets_the_examination(argv):
    args = main.build_parser().parse_args(argv)
    assert not main.asks_for_the_lesson(args)


def test_every_flag_has_its_lesson_value_or_leaves_the_lesson_alone():
    flags = set(vars(main.build_parser().parse_args([])))
    assert flags == set(main.LESSON_RUN) | set(main.LESSON_NEUTRAL_FLAGS)
    assert main.asks_for_the_lesson(main.build_parser().parse_args([]))


def test_help_names_every_patient_and_every_dosing_default(capsys):
    with pytest.raises(SystemExit):
        main.command_line(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "healthy, sick, exploding, vanishing, dead, saturated, collapsed" in text
    for default in (
        "healthy's kaiming",
        "healthy has none",
        "healthy's 0.05",
        "healthy's 30",
        "healthy's 8,16,16,16,16,4",
        "(default 80)",
        "(default 7)",
        "(default 11)",
        "(default 10)",
    ):
        assert default in text
    for bound in ("at most 1000", "at most 10000", "at most 1024", "at most 300000 weights"):
        assert bound in text
    assert "exactly as the lesson prints them" in text


def json_refusal(path, capsys):
    line = refusal(["--patient", "healthy", "--epochs", "1", "--json", str(path)], capsys)
    assert line.startswith(f"main.py: error: argument --json: {str(path)!r} ")
    return line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_is_refused_and_stays_a_fifo(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert "it is a named pipe (FIFO), not a regular file" in json_refusal(fifo, capsys)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]


def test_a_device_is_refused_and_stays_a_device(tmp_path, capsys):
    # A private copy of /dev/null (character device 1, 3): were the check ever
    # to fail, the run would replace this node, not the machine's /dev/null.
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (AttributeError, PermissionError):
        pytest.skip("making a device node needs root on Linux")
    assert "it is a device, not a regular file" in json_refusal(device, capsys)
    assert stat.S_ISCHR(os.lstat(device).st_mode)


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_symbolic_link_is_refused_and_stays_a_link(tmp_path, capsys, target_exists):
    target = tmp_path / "target.jsonl"
    if target_exists:
        target.write_text("keep me\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert "it is a symbolic link, not a regular file" in json_refusal(link, capsys)
    assert link.is_symlink()
    assert not target_exists or target.read_text() == "keep me\n"


def test_a_folder_is_refused(tmp_path, capsys):
    assert "it is a folder, not a regular file" in json_refusal(tmp_path, capsys)


@pytest.mark.parametrize("exists", [True, False])
def test_a_path_ending_in_a_slash_is_refused(tmp_path, capsys, exists, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if exists:
        os.mkdir("newdir")
    assert "ending in a slash names a folder" in json_refusal("newdir/", capsys)
    assert os.listdir(tmp_path) == (["newdir"] if exists else [])


def test_a_name_too_long_for_the_file_system_is_refused(tmp_path, capsys):
    path = tmp_path / ("x" * 300 + ".jsonl")
    assert "File name too long" in json_refusal(path, capsys)
    assert os.listdir(tmp_path) == []


def test_an_empty_json_path_is_refused_not_ignored(capsys):
    assert json_refusal("", capsys) == (
        "main.py: error: argument --json: '' cannot be written: give a file path"
    )


def test_an_existing_regular_file_is_replaced(tmp_path, capsys):
    path = tmp_path / "old.jsonl"
    path.write_text("old\n")
    assert main.command_line(["--patient", "healthy", "--epochs", "1", "--json", str(path)]) == 0
    assert json.loads(path.read_text())["epoch"] == 1


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_json_file_gets_the_mode_the_umask_gives(tmp_path, capsys, umask):
    path = tmp_path / "run.jsonl"
    old = os.umask(umask)
    try:
        assert (
            main.command_line(["--patient", "healthy", "--epochs", "1", "--json", str(path)]) == 0
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["run.jsonl"]


def test_a_replaced_json_file_keeps_its_mode(tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    path.write_text("old\n")
    path.chmod(0o640)
    assert main.command_line(["--patient", "healthy", "--epochs", "1", "--json", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


ROOT = Path(__file__).resolve().parent.parent
SHORT_RUN = ["--patient", "healthy", "--epochs", "3"]


def test_a_full_disk_while_writing_the_json_is_one_line_and_status_1(tmp_path, capsys, monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    real_fdopen = os.fdopen

    def fdopen_on_a_full_disk(handle, *args, **kwargs):
        os.close(handle)  # the temporary file stays, empty, as on a full disk
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), *args, **kwargs)

    monkeypatch.setattr(main.os, "fdopen", fdopen_on_a_full_disk)
    path = tmp_path / "run.jsonl"
    assert main.command_line([*SHORT_RUN, "--json", str(path)]) == 1
    captured = capsys.readouterr()
    assert "verdict:" in captured.out  # training finished first
    assert "wrote" not in captured.out
    assert captured.err == (
        f"main.py: error: could not write the JSON file {str(path)!r}: "
        "No space left on device; nothing was written\n"
    )
    assert os.listdir(tmp_path) == []  # no temporary file left behind


def test_no_permission_to_replace_the_json_file_is_one_line_and_status_1(
    tmp_path, capsys, monkeypatch
):
    path = tmp_path / "run.jsonl"
    path.write_text("old\n")

    def replace_refused(source, target):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), target)

    monkeypatch.setattr(main.os, "replace", replace_refused)
    assert main.command_line([*SHORT_RUN, "--json", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.endswith(": Permission denied; nothing was written\n")
    assert err.count("\n") == 1
    assert os.listdir(tmp_path) == ["run.jsonl"]
    assert path.read_text() == "old\n"


@pytest.mark.parametrize("ignore_sigxfsz", [True, False])
def test_a_file_size_limit_while_writing_the_json_is_one_line_and_status_1(
    tmp_path, ignore_sigxfsz
):
    resource = pytest.importorskip("resource")

    def limit_file_size():
        # 3 epochs of reports are ~5 kB of JSON; stdout is a pipe, not limited.
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
        if ignore_sigxfsz:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    path = tmp_path / "run.jsonl"
    result = subprocess.run(
        [sys.executable, "main.py", *SHORT_RUN, "--json", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"main.py: error: could not write the JSON file {str(path)!r}: "
        "File too large; nothing was written\n"
    )
    assert os.listdir(tmp_path) == []


def stopped_by(signum, tmp_path, json):
    """Start a long run, wait for its first chart, send signum; return the
    exit status, stdout and stderr."""
    argv = ["--patient", "healthy", "--epochs", "1000", "--report-every", "1"]
    if json:
        argv += ["--json", str(tmp_path / "out.jsonl")]
    process = subprocess.Popen(
        [sys.executable, "main.py", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    first_line = process.stdout.readline()  # training has started
    assert first_line.startswith("=== HEALTHY")
    time.sleep(0.3)
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)])
@pytest.mark.parametrize("json", [True, False])
def test_a_stop_signal_stops_cleanly_with_the_shells_status(tmp_path, name, status, json):
    if not hasattr(signal, name):
        pytest.skip(f"no {name} here")
    returncode, out, err = stopped_by(getattr(signal, name), tmp_path, json)
    assert returncode == status
    assert "per-layer health" in out  # the charts printed so far stay
    by = "" if name == "SIGINT" else f" by {name}"
    unwritten = "; no JSON file was written" if json else ""
    assert err == f"interrupted{by}: stopped cleanly{unwritten}.\n"
    assert os.listdir(tmp_path) == []  # no JSON, no temporary file


def test_ctrl_c_without_json_does_not_mention_json(capsys, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(main, "examine", interrupted)
    assert main.command_line(SHORT_RUN) == 130
    assert capsys.readouterr().err == "interrupted: stopped cleanly.\n"


def test_ctrl_c_while_writing_the_json_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(main.json, "dumps", interrupted)
    assert main.command_line([*SHORT_RUN, "--json", str(tmp_path / "run.jsonl")]) == 130
    assert capsys.readouterr().err == "interrupted: stopped cleanly; no JSON file was written.\n"
    assert os.listdir(tmp_path) == []


LONG_RUN = ["--patient", "healthy", "--epochs", "60", "--report-every", "1"]  # ~50 kB of charts


def run_with_stdout(argv, stdout, preexec_fn=None):
    return subprocess.run(
        [sys.executable, "main.py", *argv],
        cwd=ROOT,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
        timeout=60,
    )


def reader_leaves_after_one_line(argv):
    """Like `python main.py ARGV | head -1`: read one line, close the pipe,
    and return the exit status and stderr."""
    process = subprocess.Popen(
        [sys.executable, "main.py", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().startswith("=== HEALTHY")
    process.stdout.close()
    err = process.stderr.read()
    return process.wait(timeout=60), err


def test_a_reader_that_leaves_stops_the_run_quietly_with_status_141():
    # 1000 epochs would take ~30 s: the run must stop at once instead.
    status, err = reader_leaves_after_one_line(["--patient", "healthy", "--epochs", "1000"])
    assert status == main.BROKEN_PIPE_STATUS == 141
    assert err == ""


def test_a_reader_that_leaves_still_gets_the_json_written(tmp_path):
    path = tmp_path / "run.jsonl"
    status, err = reader_leaves_after_one_line([*LONG_RUN, "--json", str(path)])
    assert status == 141
    assert err == ""
    assert len(path.read_text().splitlines()) == 60
    assert os.listdir(tmp_path) == ["run.jsonl"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("json", [True, False])
def test_a_full_stdout_is_one_line_and_status_1(tmp_path, json):
    path = tmp_path / "run.jsonl"
    argv = [*LONG_RUN, "--json", str(path)] if json else LONG_RUN
    with open("/dev/full", "w") as full:
        result = run_with_stdout(argv, full)
    assert result.returncode == 1
    went_on = f"the run went on and wrote 60 reports to {str(path)!r}" if json else "stopped"
    assert result.stderr == (
        f"main.py: error: cannot write to stdout: No space left on device; {went_on}\n"
    )
    assert os.listdir(tmp_path) == (["run.jsonl"] if json else [])


def test_the_lesson_to_a_full_stdout_is_one_line_and_status_1():
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    with open("/dev/full", "w") as full:
        result = run_with_stdout([], full)  # all 7 kB are written as Python would exit
    assert result.returncode == 1
    assert (
        result.stderr
        == "main.py: error: cannot write to stdout: No space left on device; stopped\n"
    )


@pytest.mark.parametrize("json", [True, False])
def test_a_closed_stdout_is_one_line_and_status_1(tmp_path, json):
    path = tmp_path / "run.jsonl"
    argv = [*SHORT_RUN, "--json", str(path)] if json else SHORT_RUN
    result = run_with_stdout(argv, None, preexec_fn=lambda: os.close(1))  # `>&-`
    assert result.returncode == 1
    went_on = f"the run went on and wrote 3 reports to {str(path)!r}" if json else "stopped"
    assert result.stderr == f"main.py: error: cannot write to stdout: it is closed; {went_on}\n"
    assert os.listdir(tmp_path) == (["run.jsonl"] if json else [])


def short_run_writing_json(path, stdout_encoding):
    """A short run with --json path, its stdout encoded as stdout_encoding."""
    return subprocess.run(
        [sys.executable, "main.py", *SHORT_RUN, "--json", path],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": stdout_encoding},
    )


def test_a_file_name_with_an_undecodable_byte_is_printed_escaped(tmp_path):
    path = os.fsencode(tmp_path) + b"/run-\xff.jsonl"  # not UTF-8: argv decodes it to \udcff
    result = short_run_writing_json(path, "utf-8")
    assert result.returncode == 0
    assert result.stderr == b""
    assert result.stdout.endswith(
        b"wrote 3 reports to " + os.fsencode(tmp_path) + b"/run-\\udcff.jsonl\n"
    )
    assert os.listdir(os.fsencode(tmp_path)) == [b"run-\xff.jsonl"]


def test_a_non_ascii_file_name_on_an_ascii_stdout_is_printed_escaped(tmp_path):
    path = tmp_path / "résumé.jsonl"
    result = short_run_writing_json(str(path), "ascii")
    assert result.returncode == 0
    assert result.stderr == b""
    assert result.stdout.endswith(
        b"wrote 3 reports to " + os.fsencode(tmp_path) + b"/r\\xe9sum\\xe9.jsonl\n"
    )
    assert path.exists()


@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stop_signal_stops_every_seeds_worker(name, status):
    # Ctrl-C reaches the whole process group, workers too: they leave it to
    # the parent, which stops them all; no process of the group outlives it.
    process = subprocess.Popen(
        [sys.executable, "main.py", "--patient", "healthy", "--seeds", "20"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(1.5)  # the workers are training
    os.killpg(process.pid, getattr(signal, name))
    out, err = process.communicate(timeout=30)
    assert process.returncode == status
    assert out == ""
    assert err.startswith("interrupted") and err.count("\n") == 1
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)
