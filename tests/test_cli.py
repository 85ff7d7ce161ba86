"""The command line: a command, then only its own flags. One test per rule.

In-process calls of main.command_line() wherever they can tell (argparse's
refusals raise SystemExit(2), its --help SystemExit(0)); a real process only
for the bytes `python main.py` prints, a pipe whose reader leaves, and stop
signals. Every process started here is killed in a finally.
"""

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from processes import catches_sigterm, stopped, wait_for

import main

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["lesson", "patients", "examine", "treat", "seeds", "experiment"]


def command(argv):
    return [sys.executable, "main.py", *argv]


def argv_id(value):
    """A parameter's id: an argv as it is typed, anything else as pytest names it."""
    return " ".join(value) if isinstance(value, list) else None


def case(argv, *values):
    """A parameter set named by its argv alone."""
    return pytest.param(argv, *values, id=" ".join(argv))


def refusal(argv, capsys):
    """argparse's refusal of argv: status 2, nothing on stdout; stderr's last line."""
    with pytest.raises(SystemExit) as stopped:
        main.command_line(argv)
    out, err = capsys.readouterr()
    assert stopped.value.code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith("usage: main.py"), err
    assert "error: " in lines[-1], err
    return lines[-1]


@contextlib.contextmanager
def started(argv, **kwargs):
    """`python main.py ARGV` in a session of its own; its group killed on the way out."""
    process = subprocess.Popen(command(argv), cwd=ROOT, start_new_session=True, **kwargs)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def printed(call):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        call()
    return out.getvalue()


@pytest.fixture(scope="module")
def lesson_runs(tmp_path_factory):
    """What main.main(), the lesson's run, prints; and what `python main.py`,
    `python main.py lesson` and `python main.py lesson --html PAGE`, run
    meanwhile, print: (stdout, stderr, status), in bytes."""
    page = tmp_path_factory.mktemp("lesson") / "lesson.html"
    runs = {"": [], "lesson": ["lesson"], "lesson --html": ["lesson", "--html", str(page)]}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with contextlib.ExitStack() as stack:
        processes = {
            name: stack.enter_context(started(argv, **pipes)) for name, argv in runs.items()
        }
        lesson_output = printed(main.main)
        results = {
            name: (*process.communicate(timeout=60), process.returncode)
            for name, process in processes.items()
        }
    return lesson_output, results, page


@pytest.fixture(scope="module")
def lesson_output(lesson_runs):
    """What main.main(), the lesson's run, prints."""
    return lesson_runs[0]


# ----------------------------------------------------------------------------
# The lesson's run


def test_no_command_prints_the_bytes_of_lesson_and_of_main(lesson_runs):
    lesson_output, results, _ = lesson_runs
    assert results[""] == results["lesson"] == (lesson_output.encode(), b"", 0)


@pytest.mark.parametrize(
    ("argv", "arguments"),
    [
        (["--data-seed", "8"], {"data_seed": 8}),
        (["--network-seed", "12", "--samples", "8"], {"network_seed": 12, "sample_count": 8}),
    ],
)
def test_lesson_flags_run_main_with_those_arguments(
    argv, arguments, lesson_output, monkeypatch, capsys
):
    calls, outputs, real_main = [], [], main.main

    def recorded_main(**kwargs):
        calls.append(kwargs)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            result = real_main(**kwargs)
        outputs.append(out.getvalue())
        sys.stdout.write(out.getvalue())
        return result

    monkeypatch.setattr(main, "main", recorded_main)
    main.command_line(["lesson", *argv])
    assert calls == [arguments]
    assert capsys.readouterr().out == outputs[0]  # main()'s output and nothing else
    assert "=== HEALTHY (kaiming init, lr=0.05) | epoch 10 |" in outputs[0] != lesson_output


def test_lesson_html_prints_the_lessons_bytes_and_one_line(lesson_runs):
    lesson_output, results, page = lesson_runs
    wrote = f"wrote the charts to {page}\n"
    assert results["lesson --html"] == ((lesson_output + wrote).encode(), b"", 0)
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert os.listdir(page.parent) == ["lesson.html"]


# ----------------------------------------------------------------------------
# Bad arguments: argparse's usage line and error, status 2


@pytest.mark.parametrize(
    ("argv", "foreign"),
    [
        case(["lesson", "--lr", "0.1"], "--lr 0.1"),
        case(["lesson", "sick"], "sick"),
        case(["patients", "--epochs", "3"], "--epochs 3"),
        case(["examine", "--pairs", "3"], "--pairs"),  # its value is taken for a PATIENT
        case(["treat", "--report-every", "5"], "--report-every"),
        case(["treat", "--halt-on-warning"], "--halt-on-warning"),
        case(["seeds", "--json", "run.jsonl"], "--json"),
        case(["seeds", "--report-every", "5"], "--report-every"),
        case(["experiment", "he", "--lr", "0.1"], "--lr 0.1"),
        case(["experiment", "he", "healthy"], "healthy"),
    ],
)
def test_each_command_takes_only_its_own_flags(argv, foreign, capsys):
    line = refusal(argv, capsys)
    assert line.endswith(f": error: unrecognized arguments: {foreign}")
    if argv == ["lesson", "--lr", "0.1"]:  # and so does a real process
        result = subprocess.run(command(argv), cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("usage: main.py ")
        assert result.stderr.splitlines()[-1] == line


def test_no_command_is_the_lesson_with_its_flags(tmp_path, capsys):
    main.command_line(["--json", str(tmp_path / "x.jsonl"), "--data-seed", "8"])
    printed = capsys.readouterr().out
    main.command_line(["lesson", "--data-seed", "8"])
    assert printed == capsys.readouterr().out + f"wrote 60 reports to {tmp_path / 'x.jsonl'}\n"
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 60


@pytest.mark.parametrize("name", ["lesson", "examine", "treat", "seeds", "experiment", "read"])
def test_each_commands_error_shows_its_own_usage(name, capsys):
    argv = [name, *{"experiment": ["he"], "read": ["run.jsonl"]}.get(name, []), "--bogus"]
    with pytest.raises(SystemExit):
        main.command_line(argv)
    err = capsys.readouterr().err
    assert err.startswith(f"usage: main.py {name} "), err
    assert err.splitlines()[-1] == f"main.py {name}: error: unrecognized arguments: --bogus"


OLD_PYTHON = Path.home() / ".pyenv" / "versions"


@pytest.mark.skipif(not list(OLD_PYTHON.glob("3.9*/bin/python")), reason="no Python 3.9 here")
def test_python_3_9_gets_one_line_and_status_1():
    python = sorted(OLD_PYTHON.glob("3.9*/bin/python"))[0]
    result = subprocess.run([python, "main.py"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("main.py needs Python 3.10 or newer; this is 3.9")
    assert len(result.stderr.splitlines()) == 1


WHOLE = "give a whole number from {} to {}"
ABOVE_0 = "give a finite number above 0"


NUMERIC_FLAGS = [
    case(["examine", "--epochs", "0"], WHOLE.format(1, 1000)),
    case(["treat", "--epochs", "1001"], WHOLE.format(1, 1000)),
    case(["examine", "--lr", "-1"], ABOVE_0),
    case(["examine", "--lr", "0"], ABOVE_0),
    case(["examine", "--scale", "0"], ABOVE_0),
    case(["examine", "--scale", "inf"], ABOVE_0),
    case(["examine", "--lr", "nan"], ABOVE_0),
    case(["examine", "--clip", "-0.5"], ABOVE_0),
    case(["lesson", "--samples", "0"], WHOLE.format(1, 10000)),
    case(["examine", "--samples", "10001"], WHOLE.format(1, 10000)),
    case(["seeds", "--pairs", "0"], WHOLE.format(1, 1000)),
    case(["examine", "--report-every", "0"], WHOLE.format(1, 1000)),
    case(["examine", "--widths", "8,4"], "2 or more classes, each 1 to 1024"),
    case(["examine", "--widths", "8,2000,4"], "each 1 to 1024"),
    case(["examine", "--widths", "8,512,513,4"], "at most 1024 hidden neurons and 300000"),
    case(["lesson", "--data-seed", "-1"], WHOLE.format(0, 2**32 - 1)),
    case(["experiment", "he", "--network-seed", "-1"], WHOLE.format(0, 2**32 - 1)),
    case(["examine", "--data-seed", "seven"], WHOLE.format(0, 2**32 - 1)),
]


@pytest.mark.parametrize(("argv", "phrase"), NUMERIC_FLAGS)
def test_a_bad_number_names_the_flags_allowed_range(argv, phrase, capsys):
    flag, value = argv[-2:]
    line = refusal(argv, capsys)
    assert line.startswith(f"main.py {argv[0]}: error: argument {flag}: {value!r}")
    assert phrase in line


@pytest.mark.parametrize(
    "argv",
    [
        ["examine", "--epochs=--"],
        ["examine", "--lr=--"],
        ["examine", "--init=--"],
        ["examine", "--json=--"],
        ["lesson", "--data-seed=--"],
        ["seeds", "--pairs=--"],
        ["experiment", "he", "--network-seed=--"],
    ],
    ids=argv_id,
)
def test_a_value_of_double_dash_is_refused(argv, capsys):
    flag = argv[-1].split("=")[0]
    assert f"error: argument {flag}: '--' " in refusal(argv, capsys)


# ----------------------------------------------------------------------------
# Which runs a command makes


def headers(out):
    """The patient of each chart or summary, in order of first appearance."""
    return list(dict.fromkeys(re.findall(r"^=== ([A-Z]+) \(", out, flags=re.MULTILINE)))


@pytest.mark.parametrize(
    ("argv", "label"),
    [
        case(["examine", "--lr", "0.2", "--epochs", "2"], "kaiming init, lr=0.2"),
        case(["examine", "--activation", "tanh", "--epochs", "1"], "kaiming init, tanh, lr=0.05"),
        case(
            ["seeds", "--init", "xavier", "--epochs", "2", "--pairs", "2"], "xavier init, lr=0.05"
        ),
        case(["treat", "--lr", "0.2", "--epochs", "10", "--samples", "8"], "kaiming init, lr=0.2"),
    ],
)
def test_dosing_flags_with_no_patient_make_one_custom_run(argv, label, capsys):
    main.command_line(argv)
    out = capsys.readouterr().out
    assert headers(out) == ["CUSTOM"]
    epochs = argv[argv.index("--epochs") + 1]
    assert f"=== CUSTOM ({label}, widths 8-16-16-16-16-4, {epochs} epoch" in out


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        case(["examine"], ["HEALTHY", "SICK"]),
        case(["treat"], ["SICK"]),
        case(["seeds", "--pairs", "1"], ["HEALTHY", "SICK"]),
    ],
)
def test_each_command_has_its_default_patients(argv, names, monkeypatch, capsys):
    epochs = main.TREAT_MIN_EPOCHS if argv[0] == "treat" else 1  # short runs, same patients
    for name, (dosing, words, disease) in list(main.PATIENTS.items()):
        monkeypatch.setitem(main.PATIENTS, name, (replace(dosing, epochs=epochs), words, disease))
    main.command_line(argv)
    out = capsys.readouterr().out
    assert headers(out) == names
    labels = {"HEALTHY": "kaiming init, lr=0.05", "SICK": "oversized init, lr=0.8"}
    assert all(f"=== {name} ({labels[name]}) |" in out for name in names)


@pytest.mark.parametrize(
    ("flags", "init_mode", "std", "label"),
    [
        case(["--init", "kaiming"], "kaiming", None, "kaiming init, lr=0.8"),
        case(["--init", "kaiming", "--scale", "0.3"], "kaiming", 0.3, "init std=0.3, lr=0.8"),
        case(["--lr", "0.1"], "bad", 1.0, "init std=1, lr=0.1"),  # no --init: sick's std kept
    ],
)
def test_an_explicit_init_replaces_the_sick_patients_std(
    flags, init_mode, std, label, tmp_path, capsys
):
    path = tmp_path / "run.jsonl"
    main.command_line(["examine", "sick", *flags, "--epochs", "1", "--json", str(path)])
    (record,) = map(json.loads, path.read_text().splitlines())
    assert (record["init_mode"], record["weight_scale_override"]) == (init_mode, std)
    assert record["label"] == f"SICK ({label}, widths 8-16-16-16-16-4, 1 epoch)"
    assert f"=== {record['label']} | epoch 1 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["examine", "--init", "bad"],
        ["examine", "saturated", "--init", "bad"],  # its own std goes with an explicit init
        ["treat", "--init", "bad"],
        ["seeds", "healthy", "--init", "bad", "--lr", "0.1"],
    ],
    ids=argv_id,
)
def test_a_bad_init_without_a_scale_is_refused(argv, capsys):
    line = refusal(argv, capsys)
    assert line.endswith("error: argument --init: 'bad' has no std of its own: give --scale too")


@pytest.mark.parametrize(
    "argv", [["treat", "--epochs", "5"], ["treat", "dead", "--epochs", "9"]], ids=argv_id
)
def test_treat_refuses_too_few_epochs_to_judge_a_cure(argv, capsys):
    assert "argument --epochs: treat needs 10 or more" in refusal(argv, capsys)


# ----------------------------------------------------------------------------
# The files


def tree(folder):
    return sorted((str(path), path.is_dir()) for path in Path(folder).rglob("*"))


@pytest.mark.parametrize("flag", ["--json", "--html"])
@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("folder", "is a folder: give a file path"),
        ("new/", "is a folder: give a file path"),
        ("missing/run.out", "is in a folder that does not exist"),
    ],
)
def test_a_file_path_that_is_a_folder_or_in_a_missing_one_is_refused(
    flag, where, reason, tmp_path, monkeypatch, capsys
):
    (tmp_path / "folder").mkdir()
    before = tree(tmp_path)

    def trained(*args, **kwargs):
        raise AssertionError("it trained before refusing")

    monkeypatch.setattr(main, "dosed_run", trained)
    path = f"{tmp_path}/{where}"
    line = refusal(["examine", "healthy", "--epochs", "1", flag, path], capsys)
    assert line == f"main.py examine: error: argument {flag}: {path!r} {reason}"
    assert tree(tmp_path) == before


@pytest.mark.parametrize("stopped", [False, True], ids=["written", "stopped at the rename"])
def test_json_is_written_whole_by_a_rename_and_leaves_no_temporary_file(
    stopped, tmp_path, monkeypatch, capsys
):
    path = tmp_path / "run.jsonl"
    path.write_text("old\n")
    renames, real_replace = [], os.replace

    def recorded_replace(source, target):
        renames.append((source, target))
        if stopped:
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(main.os, "replace", recorded_replace)
    argv = ["examine", "healthy", "dead", "--epochs", "3", "--json", str(path)]
    with pytest.raises(KeyboardInterrupt) if stopped else contextlib.nullcontext():
        main.command_line(argv)
    ((temporary, target),) = renames  # written beside it, then renamed over it
    assert Path(temporary).parent == tmp_path and Path(temporary) != path
    assert target == str(path)
    assert os.listdir(tmp_path) == ["run.jsonl"]  # no temporary file either way
    if stopped:
        assert path.read_text() == "old\n"
        return
    text = path.read_text()
    assert text.endswith("}\n")
    records = [json.loads(line) for line in text.splitlines()]
    assert [(r["patient"], r["epoch"]) for r in records] == [
        (name, epoch) for name in ("healthy", "dead") for epoch in (1, 2, 3)
    ]
    assert capsys.readouterr().out.endswith(f"wrote 6 reports to {path}\n")


# ----------------------------------------------------------------------------
# --help


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_fits_the_screen(name, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as stopped:
        main.command_line([name, "--help"] if name else ["--help"])
    out, err = capsys.readouterr()
    assert (stopped.value.code, err) == (0, "")
    assert out.startswith(f"usage: main.py {name}".rstrip())
    assert len(out.splitlines()) <= (30 if name else 25)


# ----------------------------------------------------------------------------
# A reader that leaves, stop signals


# A tiny network 40 hidden layers deep, a chart every epoch: ~125 kB of stdout,
# more than a pipe (64 kB) and Python's buffer (8 kB) hold.
DEEP_RUN = ["--widths", "1," + "2," * 40 + "2", "--samples", "2", "--epochs", "10"]
DEEP_RUN += ["--report-every", "1"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("argv", "statuses"),
    [(["examine", "dead"], (0, 1)), (["examine", *DEEP_RUN], (1,))],
    ids=["examine dead", "a long output"],
)
def test_a_reader_that_leaves_ends_the_run_quietly(argv, statuses):
    python = " ".join(map(shlex.quote, command(argv)))
    script = f"{python} | head -1; exit ${{PIPESTATUS[0]}}"
    start = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert time.monotonic() - start < 5
    assert result.stderr == ""
    assert result.returncode in statuses
    assert result.stdout.startswith("=== ") and result.stdout.count("\n") == 1


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


@needs_proc
@pytest.mark.parametrize(
    ("stop", "to_group", "line"),
    [
        (signal.SIGINT, True, "interrupted: stopped.\n"),
        (signal.SIGTERM, False, "interrupted by SIGTERM: stopped.\n"),
    ],
    ids=["SIGINT to the group", "SIGTERM to the parent"],
)
def test_a_stop_ends_the_examination_with_the_shells_status_and_one_line(stop, to_group, line):
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with started(["examine", "dead", "--epochs", "300"], **pipes) as process:  # ~3 s
        wait_for(lambda: catches_sigterm(process.pid))
        time.sleep(0.3)  # training
        took, _, err = stopped(process, stop, to_group)
    assert took < 2
    assert process.returncode == 128 + stop
    assert err == line


def workers(pid):
    children = Path(f"/proc/{pid}/task").glob("*/children")
    return [child for path in children for child in path.read_text().split()]


@needs_proc
def test_ctrl_c_stops_every_seeds_worker_and_leaves_no_process():
    # Ctrl-C reaches the whole process group, workers too: they leave it to
    # the parent, which stops them all. (Many moments: test_signals.py, slow.)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with started(["seeds", "--pairs", "20"], **pipes) as process:  # ~8 s on 2 cores
        wait_for(lambda: len(workers(process.pid)) >= min(2, os.cpu_count() or 1))
        time.sleep(0.1)  # the workers are training
        took, out, err = stopped(process, signal.SIGINT, True)
    assert took < 2
    assert process.returncode == 130
    assert (out, err) == ("", "interrupted: stopped.\n")


def test_progress_shows_only_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert main.progress_line("epoch", 10) is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(main, "PROGRESS_AFTER", 0.0)
    show = main.progress_line("epoch", 10)
    show(3)
    show(10)  # done: the line is cleared
    assert capsys.readouterr().err == "\repoch 3 of 10\r\x1b[K"


def test_a_stopped_seeds_run_prints_what_the_finished_pairs_found(monkeypatch, capsys):
    def two_then_a_stop(function, items):
        yield from map(function, items[:2])
        raise KeyboardInterrupt(2)

    monkeypatch.setattr(main, "on_every_core", two_then_a_stop)
    with pytest.raises(KeyboardInterrupt):
        main.command_line(["seeds", "dead", "--pairs", "5", "--epochs", "10"])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith(
        "=== DEAD (kaiming init, lr=0.09, widths 8-16-16-16-16-4, 10 epochs) | 2"
    )
    assert out[-1] == "(partial: stopped after 2 of 5 seed pairs)"
