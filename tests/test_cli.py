"""The command line and its robustness: bad arguments, the mode rule, --help,
the JSON file, a lost stdout, stop signals, and readings that survive inf/NaN.

In-process calls of main.command_line() wherever they can tell; a real
process (~0.1 s each) only for signals, pipes, a full or closed stdout and a
file size limit. Every process started here is killed in a finally.
"""

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

ROOT = Path(__file__).resolve().parent.parent
SHORT_RUN = ["--patient", "healthy", "--epochs", "3"]  # ~60 ms, ~3.6 kB of JSON
# A tiny network 40 hidden layers deep, a chart every epoch: ~125 kB of stdout in
# ~50 ms of training, more than a pipe (64 kB) and Python's buffer (8 kB) hold,
# so a lost stdout is found mid-run, while the run still has charts to print.
DEEP_RUN = ["--widths", "1," + "2," * 40 + "2", "--samples", "2", "--epochs", "10"]
DEEP_RUN += ["--report-every", "1"]
# The examination prints each patient's charts once it is trained: healthy's
# come after ~0.1 s, and 100 sick patients (~10 s) still to run keep the
# process going when the first line is read.
LONG_EXAMINATION = ["--epochs", "10", "--report-every", "1", "--patient", "healthy"]
LONG_EXAMINATION += ["--patient", "sick"] * 100


def one_line(err):
    """The one line of a stderr that must hold exactly one."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err[:-1]


def run_main(argv, **kwargs):
    return subprocess.run([sys.executable, "main.py", *argv], cwd=ROOT, timeout=60, **kwargs)


@contextlib.contextmanager
def started(argv, **kwargs):
    """`python main.py ARGV` running; killed and reaped on the way out, whatever happened."""
    process = subprocess.Popen([sys.executable, "main.py", *argv], cwd=ROOT, **kwargs)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# ----------------------------------------------------------------------------
# Bad arguments: one line on stderr, status 2, naming what is allowed

LR = "give a finite number above 0"
EPOCHS = "give a whole number from 1 to 1000"
WIDTHS = (
    "give whole numbers, comma-separated, like 8,16,16,4, each from 1 to 1024: features, "
    "hidden, classes"
)
PATIENT_CHOICES = "'healthy', 'sick', 'exploding', 'vanishing', 'dead', 'saturated', 'collapsed'"


def bad(argv, phrase, *marks):
    return pytest.param(argv, phrase, id=" ".join(argv), marks=marks)


BAD_ARGUMENTS = [
    # not a number, or not an allowed one
    bad(["--lr", "abc"], f"argument --lr: 'abc' is not allowed: {LR}"),
    bad(["--lr", "0"], f"argument --lr: '0' is not allowed: {LR}"),
    bad(["--lr", "nan"], f"argument --lr: 'nan' is not allowed: {LR}"),
    bad(["--lr", "inf"], f"argument --lr: 'inf' is not allowed: {LR}"),
    bad(["--lr="], f"argument --lr: '' is not allowed: {LR}"),
    bad(["--scale", "NaN"], f"argument --scale: 'NaN' is not allowed: {LR}"),
    bad(["--scale=-inf"], f"argument --scale: '-inf' is not allowed: {LR}"),
    bad(["--clip", "0"], f"argument --clip: '0' is not allowed: {LR}"),
    bad(["--clip", "nan"], f"argument --clip: 'nan' is not allowed: {LR}"),
    bad(["--epochs", "ten"], f"argument --epochs: 'ten' is not allowed: {EPOCHS}"),
    bad(["--epochs", "2.5"], f"argument --epochs: '2.5' is not allowed: {EPOCHS}"),
    bad(["--samples", "1e3"], "'1e3' is not allowed: give a whole number from 1 to 10000"),
    bad(["--report-every", "x"], "'x' is not allowed: give a whole number 1 or above"),
    bad(["--data-seed", "seven"], "'seven' is not allowed: give a whole number 0 or above"),
    bad(["--seeds", "many"], "'many' is not allowed: give a whole number from 1 to 1000"),
    bad(["--epochs", "+-5"], EPOCHS),
    bad(["--epochs", "\u00b2"], EPOCHS),
    bad(["--widths", "8,\u00b2,4"], WIDTHS),
    # a value that looks like a flag is the flag's value, judged as such
    bad(["--lr", "-1e-3"], f"argument --lr: '-1e-3' is not allowed: {LR}"),
    bad(["--scale", "-inf"], f"argument --scale: '-inf' is not allowed: {LR}"),
    bad(["--epochs", "-3"], f"argument --epochs: '-3' is not allowed: {EPOCHS}"),
    bad(["--data-seed", "-5"], "'-5' is not allowed: give a whole number 0 or above"),
    bad(["--widths", "-8,16,4"], f"argument --widths: '-8,16,4' is not allowed: {WIDTHS}"),
    bad(
        ["--json", "-x"],
        "argument --json: '-x' cannot be written: give a file path "
        "(./-name for a name that starts with '-')",
    ),
    bad(
        ["--patient", "-x"],
        f"argument --patient: invalid choice: '-x' (choose from {PATIENT_CHOICES})",
    ),
    # a missing value, at the end or before the next flag
    bad(["--lr"], f"argument --lr: expected one argument: {LR}"),
    bad(["--lr", "--epochs", "3"], f"argument --lr: expected one argument: {LR}"),
    bad(["--epochs", "--5"], f"argument --epochs: expected one argument: {EPOCHS}"),
    bad(["--widths"], "argument --widths: expected one argument: give whole numbers, comma-sep"),
    bad(
        ["--patient"],
        "argument --patient: expected one argument: give one of healthy, sick, exploding, "
        "vanishing, dead, saturated, collapsed",
    ),
    bad(["--json"], "argument --json: expected one argument: give a file path"),
    # a newline in an argument is printed escaped: the line stays one line
    bad(["--lr", "1\n2"], f"argument --lr: '1\\n2' is not allowed: {LR}"),
    bad(["--widths", "8,16\n,4"], f"argument --widths: '8,16\\n,4' is not allowed: {WIDTHS}"),
    bad(["--patient", "he\nalthy"], "invalid choice: 'he\\nalthy' (choose from 'healthy', "),
    bad(["--fo\no"], "unrecognized arguments: --fo\\no"),
    # widths
    bad(["--widths", "8"], f"argument --widths: '8' is not allowed: {WIDTHS}"),
    bad(["--widths", "8,0,4"], f"'8,0,4' is not allowed: {WIDTHS}"),
    bad(["--widths", "8,16.5,4"], f"'8,16.5,4' is not allowed: {WIDTHS}"),
    bad(["--widths", "8,sixteen,4"], f"'8,sixteen,4' is not allowed: {WIDTHS}"),
    bad(["--widths", "8,100000000000,4"], f"'8,100000000000,4' is not allowed: {WIDTHS}"),
    bad(
        ["--widths", "8,4"],
        "'8,4' is not allowed: there is no hidden layer to examine: give one or more hidden "
        "widths, like 8,16,4",
    ),
    bad(
        ["--widths", "8,16,1"],
        "'8,16,1' is not allowed: one class is nothing to learn: give 2 or more classes "
        "(the last width)",
    ),
    # choices
    bad(["--patient", "zombie"], f"invalid choice: 'zombie' (choose from {PATIENT_CHOICES})"),
    bad(["--init", "random"], "(choose from 'kaiming', 'xavier', 'standard', 'bad')"),
    bad(["--activation", "sigmoid"], "(choose from 'relu', 'leaky_relu', 'tanh')"),
    bad(["--norm", "batch"], "(choose from 'none', 'layer')"),
    bad(["--experiment", "lecun"], "(choose from 'glorot-bengio', 'he')"),
    # values each allowed, their combination not
    bad(["--init", "bad"], "argument --init: 'bad' has no std of its own: give --scale too"),
    bad(["--patient", "saturated", "--init", "bad"], "'bad' has no std of its own: give --scale"),
    bad(["--samples", "3"], "argument --samples: 3 is fewer than the 4 classes: give at least"),
    bad(
        ["--widths", "8,16,10", "--samples", "9"],
        "argument --samples: 9 is fewer than the 10 classes: give at least one sample per class",
    ),
    bad(
        ["--treat", "--epochs", "3"],
        "argument --epochs: 3 is too few to judge a cure: --treat needs 10 or more",
    ),
    bad(
        ["--widths", "8,1,4", "--norm", "layer"],
        "argument --norm: layer norm needs 2 or more neurons in every hidden layer",
    ),
    # mode conflicts (every row is given a --json too)
    bad(["--seeds", "2", "--treat"], "argument --treat: not allowed with --seeds"),
    bad(["--seeds", "2"], "argument --json: not allowed with --seeds"),
    bad(["--seeds", "2", "--halt-on-warning"], "--halt-on-warning: not allowed with --seeds"),
    bad(["--treat", "--timing"], "argument --timing: not allowed with --treat"),
    bad(["--list-patients", "--patient", "sick"], "--patient: not allowed with --list-patients"),
    bad(["--experiment", "he", "--lr", "0.1"], "argument --lr: not allowed with --experiment"),
    bad(["--experiment", "he", "--treat"], "argument --treat: not allowed with --experiment"),
    # what is no flag at all (no abbreviations either)
    bad(["--foo"], "unrecognized arguments: --foo"),
    bad(["stray"], "unrecognized arguments: stray"),
    bad(["--epoch", "3"], "unrecognized arguments: --epoch 3"),
]


@pytest.mark.parametrize(("argv", "phrase"), BAD_ARGUMENTS)
def test_a_bad_argument_is_one_line_naming_what_is_allowed_and_status_2(
    argv, phrase, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    status = main.command_line(["--json", "run.jsonl", *argv])
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert status == 2
    assert line.startswith("main.py: error: ")
    assert phrase in line
    assert captured.out == ""  # nothing started
    assert os.listdir(tmp_path) == []  # no JSON file, no temporary file


def test_a_bad_argument_in_a_real_process_is_one_line_without_a_traceback():
    result = run_main(["--lr", "1\n2"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert one_line(result.stderr) == f"main.py: error: argument --lr: '1\\n2' is not allowed: {LR}"


BOUNDS = [  # flag, the value at the limit (allowed), the value beyond it, the refusal's phrase
    ("--epochs", "1000", "1001", EPOCHS),
    ("--epochs", "1", "0", EPOCHS),
    ("--samples", "10000", "10001", "give a whole number from 1 to 10000"),
    ("--samples", "4", "3", "3 is fewer than the 4 classes"),
    ("--seeds", "1000", "1001", "give a whole number from 1 to 1000"),
    ("--data-seed", "0", "-1", "give a whole number 0 or above"),
    ("--network-seed", "0", "-1", "give a whole number 0 or above"),
    ("--report-every", "1", "0", "give a whole number 1 or above"),
    ("--widths", "1024,16,4", "1025,16,4", "each from 1 to 1024"),
    ("--widths", "8,512,512,4", "8,512,513,4", "1025 hidden neurons: give at most 1024 in all"),
    ("--widths", "998,300,2", "999,300,2", "300300 weights: give at most 300000 in all"),
]


@pytest.mark.parametrize(("flag", "limit", "beyond", "phrase"), BOUNDS)
def test_bounds_are_accepted_at_the_limit_and_refused_beyond(flag, limit, beyond, phrase, capsys):
    parser = main.build_parser()
    args = parser.parse_args(main.joined_values([flag, limit], parser))
    main.check_args(args, parser)
    assert main.patient_runs(args, parser)  # refused, this would have raised SystemExit
    value = vars(args)[parser._option_string_actions[flag].dest]
    assert value == ([int(w) for w in limit.split(",")] if flag == "--widths" else int(limit))
    assert main.command_line([flag, beyond]) == 2
    assert phrase in one_line(capsys.readouterr().err)


def test_an_explicit_init_replaces_a_patients_std():
    parser = main.build_parser()

    def run(*argv):
        (patient,) = main.patient_runs(parser.parse_args(["--patient", *argv]), parser)
        return patient

    kaiming = run("sick", "--init", "kaiming")
    assert kaiming["weight_scale_override"] is None
    assert kaiming["label"] == "SICK (kaiming init, lr=0.8, widths 8-16-16-16-16-4, 30 epochs)"
    assert run("sick", "--init", "kaiming", "--scale", "0.3")["weight_scale_override"] == 0.3
    assert run("sick", "--lr", "0.1")["weight_scale_override"] == 1.0  # no --init: std kept


# ----------------------------------------------------------------------------
# The mode rule: no flag, or only seeds and size, is the lesson's run


@pytest.fixture(scope="module")
def lesson_output():
    """What main(), the lesson's run, prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main.main()
    return out.getvalue()


def lesson_on(monkeypatch, data_seed=7, network_seed=11, sample_count=80):
    """What main() prints with its two train() calls on these seeds and size."""
    make_data, train = main.make_training_data, main.train
    out = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(
            main,
            "make_training_data",
            lambda **kw: make_data(**{**kw, "seed": data_seed, "sample_count": sample_count}),
        )
        patch.setattr(main, "train", lambda **kw: train(**{**kw, "network_seed": network_seed}))
        with contextlib.redirect_stdout(out):
            main.main()
    return out.getvalue()


@pytest.mark.parametrize(
    ("argv", "seeds"),
    [
        ([], {}),  # as a real process: `python main.py` prints main()'s bytes
        (["--data-seed", "7", "--network-seed", "11", "--samples", "80"], {}),
        (["--data-seed", "8"], {"data_seed": 8}),
        (["--network-seed", "12", "--samples", "8"], {"network_seed": 12, "sample_count": 8}),
    ],
)
def test_no_flag_or_only_seeds_and_size_give_the_lessons_run(
    argv, seeds, lesson_output, monkeypatch, capsys
):
    expected = lesson_on(monkeypatch, **seeds) if seeds else lesson_output
    assert "verdict:" not in expected  # the lesson's format, not the examination's
    if not argv:
        result = run_main([], capture_output=True)
        assert (result.returncode, result.stderr) == (0, b"")
        assert result.stdout == expected.encode()
        return
    assert main.command_line(argv) == 0
    assert capsys.readouterr().out == expected


# Each flag, given even with the lesson's own value, and whether it keeps the
# lesson's run; a flag added to the parser must be added here.
FLAG_EXAMPLES = {
    "--data-seed": (["8"], True),
    "--network-seed": (["12"], True),
    "--samples": (["40"], True),
    "--patient": (["healthy"], False),
    "--list-patients": ([], False),
    "--init": (["kaiming"], False),
    "--scale": (["0.5"], False),
    "--lr": (["0.05"], False),
    "--epochs": (["30"], False),
    "--widths": (["8,16,16,16,16,4"], False),
    "--activation": (["relu"], False),
    "--norm": (["none"], False),
    "--clip": (["1"], False),
    "--optimizer": (["sgd"], False),
    "--report-every": (["10"], False),
    "--halt-on-warning": ([], False),
    "--ascii": ([], False),
    "--timing": ([], False),
    "--json": (["run.jsonl"], False),
    "--html": (["page.html"], False),
    "--treat": ([], False),
    "--seeds": (["2"], False),
    "--experiment": (["he"], False),
}
FLAGS = [action.option_strings[-1] for action in main.build_parser()._actions][1:]  # not --help
# These run for real (healthy and sick cut to 2 epochs): the headers they print.
HEALTHY_AND_SICK = ["=== HEALTHY (kaiming init, lr=0.05) | epoch 2 |", "=== SICK (oversized init, "]
EXAMINED = {
    "--ascii": HEALTHY_AND_SICK,
    "--json": HEALTHY_AND_SICK,
    "--lr": ["=== CUSTOM (kaiming init, lr=0.05, widths 8-16-16-16-16-4, 2 epochs) | epoch 2 |"],
}


@pytest.mark.parametrize("flag", FLAGS)
def test_any_other_flag_gives_the_examination(flag, tmp_path, monkeypatch, capsys):
    assert flag in FLAG_EXAMPLES, (
        f"{flag}: add it to FLAG_EXAMPLES, with whether it keeps the lesson"
    )
    values, keeps_the_lesson = FLAG_EXAMPLES[flag]
    argv = [flag, *values]
    assert main.asks_for_the_lesson(main.build_parser().parse_args(argv)) == keeps_the_lesson
    if flag in EXAMINED:
        monkeypatch.chdir(tmp_path)
        for name in ("healthy", "sick"):
            monkeypatch.setitem(main.PATIENTS[name], "epochs", 2)
        assert main.command_line(argv) == 0
        out = capsys.readouterr().out
        assert all(header in out for header in EXAMINED[flag])
        assert out.count("\nverdict: ") == len(EXAMINED[flag])  # the examination's format
        assert os.listdir(tmp_path) == (["run.jsonl"] if flag == "--json" else [])


def test_help_fits_50_lines_and_names_the_patients_bounds_and_defaults(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    assert main.command_line(["--help"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert captured.err == ""
    assert len(lines) <= 50
    assert max(map(len, lines)) <= 80
    text = " ".join(captured.out.split())  # argparse wraps lines
    assert "healthy, sick, exploding, vanishing, dead, saturated, collapsed" in text
    for phrase in ("epochs, 1 to 1000", "1 per class to 10000", "default 7", "default 11"):
        assert phrase in text
    assert "default 80" in text and "(default 10)" in text
    assert all(flag in text for flag in FLAGS)


# ----------------------------------------------------------------------------
# The JSON file


def tree(folder):
    """Every entry under folder: its kind and its content (a link's target)."""
    entries = {}
    for path in sorted(Path(folder).rglob("*")):
        mode = path.lstat().st_mode
        content = path.read_bytes() if stat.S_ISREG(mode) else None
        entries[path] = (stat.S_IFMT(mode), os.readlink(path) if path.is_symlink() else content)
    return entries


def fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs named pipes")
    os.mkfifo(tmp_path / "pipe")
    return tmp_path / "pipe", "it is a named pipe (FIFO), not a regular file"


def device(tmp_path):
    # A private copy of /dev/null (character device 1, 3): were the check ever
    # to fail, the run would replace this node, not the machine's /dev/null.
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (AttributeError, PermissionError):
        pytest.skip("making a device node needs root on Linux")
    return tmp_path / "null", "it is a device, not a regular file"


def link_to_a_file(tmp_path):
    (tmp_path / "target.jsonl").write_text("keep me\n")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "target.jsonl")
    return tmp_path / "link.jsonl", "it is a symbolic link, not a regular file"


def dangling_link(tmp_path):
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    return tmp_path / "link.jsonl", "it is a symbolic link, not a regular file"


def folder(tmp_path):
    (tmp_path / "folder").mkdir()
    return tmp_path / "folder", "it is a folder, not a regular file"


def slash_after_a_folder(tmp_path):
    (tmp_path / "newdir").mkdir()
    return f"{tmp_path}/newdir/", "a path ending in a slash names a folder: give a file path"


def slash_after_a_new_name(tmp_path):
    return f"{tmp_path}/newdir/", "a path ending in a slash names a folder: give a file path"


def name_too_long(tmp_path):
    return tmp_path / ("x" * 300 + ".jsonl"), "File name too long: give a file path"


def empty(tmp_path):
    return "", "give a file path"


def missing_folder(tmp_path):
    return tmp_path / "no" / "run.jsonl", f"the folder {str(tmp_path / 'no')!r} does not exist"


def unwritable_folder(tmp_path):
    # /proc refuses new files even to root, for whom os.access() would say yes.
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc")
    return "/proc/health.jsonl", "give a file path in a writable folder"


@pytest.mark.parametrize(
    "make",
    [
        fifo,
        device,
        link_to_a_file,
        dangling_link,
        folder,
        slash_after_a_folder,
        slash_after_a_new_name,
        name_too_long,
        empty,
        missing_folder,
        unwritable_folder,
    ],
)
def test_a_json_path_that_cannot_be_written_is_refused_and_left_untouched(make, tmp_path, capsys):
    path, reason = make(tmp_path)
    before = tree(tmp_path)
    status = main.command_line(["--patient", "healthy", "--epochs", "1", "--json", str(path)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    line = one_line(captured.err)
    assert line.startswith(f"main.py: error: argument --json: {str(path)!r} cannot be written: ")
    assert reason in line
    assert tree(tmp_path) == before  # the special file is what it was, nothing added


@pytest.mark.parametrize(
    ("umask", "old_mode"), [(0o022, None), (0o077, None), (0o002, None), (0o077, 0o640)]
)
def test_the_json_file_is_renamed_into_place_with_the_umasks_mode_or_its_own(
    umask, old_mode, tmp_path, monkeypatch, capsys
):
    path = tmp_path / "run.jsonl"
    if old_mode is not None:
        path.write_text("old\n")
        path.chmod(old_mode)
    renames, replace = [], os.replace

    def recorded_replace(*paths):
        renames.append(paths)
        replace(*paths)

    monkeypatch.setattr(main.os, "replace", recorded_replace)
    old_umask = os.umask(umask)
    try:
        status = main.command_line(["--patient", "healthy", "--epochs", "1", "--json", str(path)])
    finally:
        os.umask(old_umask)
    assert status == 0
    assert capsys.readouterr().out.endswith(f"wrote 1 report to {path}\n")
    ((temporary, target),) = renames  # written whole beside it, then renamed over it
    assert Path(temporary).parent == tmp_path and Path(temporary).name.startswith(".health-")
    assert target == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == (old_mode or 0o666 & ~umask)
    assert json.loads(path.read_text())["epoch"] == 1  # an old file is replaced
    assert os.listdir(tmp_path) == ["run.jsonl"]


def full_disk(monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    fdopen = os.fdopen

    def fdopen_on_a_full_disk(handle, *args, **kwargs):
        os.close(handle)  # the temporary file stays, empty, as on a full disk
        return fdopen(os.open("/dev/full", os.O_WRONLY), *args, **kwargs)

    monkeypatch.setattr(main.os, "fdopen", fdopen_on_a_full_disk)


def no_permission(monkeypatch):
    def replace_refused(source, target):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), target)

    monkeypatch.setattr(main.os, "replace", replace_refused)


def limit_file_size(limit=2000):
    """For preexec_fn: files up to limit bytes (the JSON of SHORT_RUN is ~3.6 kB;
    stdout, a pipe, has no limit), with SIGXFSZ's default, which kills."""
    resource = pytest.importorskip("resource")
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (full_disk, "No space left on device"),
        (no_permission, "Permission denied"),
        ("file size limit", "File too large"),
    ],
)
def test_a_failure_writing_the_json_is_one_line_and_status_1(
    failure, reason, tmp_path, monkeypatch, capsys
):
    path = tmp_path / "run.jsonl"
    path.write_text("old\n")
    path.chmod(0o640)
    argv = [*SHORT_RUN, "--json", str(path)]
    if failure == "file size limit":
        pytest.importorskip("resource")
        result = run_main(argv, capture_output=True, text=True, preexec_fn=limit_file_size)
        status, out, err = result.returncode, result.stdout, result.stderr
    else:
        failure(monkeypatch)
        status = main.command_line(argv)
        out, err = capsys.readouterr()
    assert status == 1
    assert one_line(err) == (
        f"main.py: error: could not write {str(path)!r}: {reason}; nothing was written"
    )
    assert "verdict:" in out and "wrote" not in out  # training finished first
    assert os.listdir(tmp_path) == ["run.jsonl"]  # no temporary file left behind
    assert path.read_text() == "old\n" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_ctrl_c_while_writing_the_json_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(main.json, "dumps", interrupted)
    assert main.command_line([*SHORT_RUN, "--json", str(tmp_path / "run.jsonl")]) == 130
    assert capsys.readouterr().err == "interrupted: stopped cleanly; no JSON file was written.\n"
    assert os.listdir(tmp_path) == []


def test_a_stop_while_the_json_is_written_does_not_say_it_was_not_written(tmp_path, monkeypatch):
    # Stops are held while the file is written; one that came meanwhile is
    # delivered after the rename: the file is there, and the line must not
    # say it is not.
    path, replace = tmp_path / "run.jsonl", os.replace

    def replace_as_sigterm_comes(*paths):
        os.kill(os.getpid(), signal.SIGTERM)  # held until the write is over
        replace(*paths)

    monkeypatch.setattr(main.os, "replace", replace_as_sigterm_comes)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    handlers = {stop: signal.signal(stop, main.stop_like_ctrl_c) for stop in main.STOPS}
    try:
        main.command_line(["--patient", "healthy", "--epochs", "1", "--json", str(path)])
    finally:
        for stop, handler in handlers.items():
            signal.signal(stop, handler)
    said_unwritten = "no JSON file was written" in sys.stderr.getvalue()
    assert said_unwritten == (not path.exists())


@pytest.mark.parametrize(
    ("encoding", "name", "printed"),
    [
        ("utf-8", "run-\udcff.jsonl", "run-\\udcff.jsonl"),  # from argv's undecodable byte \xff
        ("ascii", "r\u00e9sum\u00e9.jsonl", "r\\xe9sum\\xe9.jsonl"),
    ],
)
def test_a_file_name_stdout_cannot_hold_is_printed_escaped(
    encoding, name, printed, tmp_path, monkeypatch
):
    stdout = io.TextIOWrapper(io.BytesIO(), encoding=encoding)
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main.command_line([*SHORT_RUN, "--json", f"{tmp_path}/{name}"]) == 0
    stdout.flush()
    out = stdout.buffer.getvalue()
    assert out.endswith(f"wrote 3 reports to {tmp_path}/{printed}\n".encode())
    assert encoding != "ascii" or out.isascii()  # the charts fall back to plain characters
    assert os.listdir(tmp_path) == [name]


# ----------------------------------------------------------------------------
# A lost stdout


@pytest.mark.parametrize("json_asked", [False, True])
def test_a_reader_that_leaves_gets_status_141_and_nothing_on_stderr(json_asked, tmp_path):
    # Like `python main.py ... | head -1`: the run must stop at once (within 3 s,
    # not the ~10 s it has left); with --json it goes on to write the file.
    path = tmp_path / "run.jsonl"
    argv = [*DEEP_RUN, "--json", str(path)] if json_asked else LONG_EXAMINATION
    with started(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout.readline().startswith("=== ")
        process.stdout.close()
        err = process.stderr.read()
        status = process.wait(timeout=3)
    assert status == main.BROKEN_PIPE_STATUS == 141
    assert err == ""
    assert os.listdir(tmp_path) == (["run.jsonl"] if json_asked else [])
    assert not json_asked or len(path.read_text().splitlines()) == 10


@pytest.mark.parametrize(
    "argv", [["--help"], DEEP_RUN, [*DEEP_RUN, "--json"]], ids=["help", "run", "run-json"]
)
@pytest.mark.parametrize(
    ("stdout", "reason"), [("full", "No space left on device"), ("closed", "it is closed")]
)
def test_a_full_or_closed_stdout_is_one_line_and_status_1(stdout, reason, argv, tmp_path):
    if stdout == "full" and not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    path = tmp_path / "run.jsonl"
    json_asked = argv[-1] == "--json"
    argv = [*argv, str(path)] if json_asked else argv
    if stdout == "full":
        with open("/dev/full", "w") as full:
            result = run_main(argv, stdout=full, stderr=subprocess.PIPE, text=True)
    else:  # `>&-`
        result = run_main(argv, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1))
    went_on = f"the run went on and wrote {str(path)!r}" if json_asked else "stopped"
    assert result.returncode == 1
    assert one_line(result.stderr) == f"main.py: error: cannot write to stdout: {reason}; {went_on}"
    assert os.listdir(tmp_path) == (["run.jsonl"] if json_asked else [])
    assert not json_asked or len(path.read_text().splitlines()) == 10


def test_a_full_stdout_and_an_unwritten_json_file_never_say_it_was_written(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    pytest.importorskip("resource")
    path = tmp_path / "run.jsonl"
    with open("/dev/full", "w") as full:
        result = run_main(
            [*SHORT_RUN, "--json", str(path)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=limit_file_size,
        )
    assert result.returncode == 1
    assert os.listdir(tmp_path) == []
    assert "could not write" in result.stderr
    assert "wrote" not in result.stderr.replace("could not write", "")


# ----------------------------------------------------------------------------
# Stop signals


@pytest.mark.parametrize("json_asked", [False, True])
@pytest.mark.parametrize(("name", "status"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_stop_signal_ends_the_examination_with_the_shells_status_and_one_line(
    name, status, json_asked, tmp_path
):
    if not hasattr(signal, name):
        pytest.skip(f"no {name} here")
    argv = [*LONG_EXAMINATION, *(["--json", str(tmp_path / "run.jsonl")] if json_asked else [])]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Unbuffered here too: communicate() reads the pipe itself, past any buffer.
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "bufsize": 0}
    with started(argv, env=env, **pipes) as process:
        assert process.stdout.readline().startswith(b"=== HEALTHY")  # examining, handlers set
        process.send_signal(getattr(signal, name))
        out, err = (output.decode() for output in process.communicate(timeout=20))
    assert process.returncode == status
    assert "\nlayer |  act mean" in out.split("\n\n")[0]  # the chart printed stays whole
    by = "" if name == "SIGINT" else f" by {name}"
    unwritten = "; no JSON file was written" if json_asked else ""
    assert err == f"interrupted{by}: stopped cleanly{unwritten}.\n"
    assert os.listdir(tmp_path) == []  # no JSON, no temporary file


def test_ctrl_c_stops_every_seeds_worker_and_leaves_no_process():
    # Ctrl-C reaches the whole process group, workers too: they leave it to
    # the parent, which stops them all. (The many-moment trials are slow tests.)
    workers = min(20, os.cpu_count() or 1)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    argv = ["--patient", "healthy", "--seeds", "20"]  # ~3 s per core
    with started(argv, text=True, start_new_session=True, **pipes) as process:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        deadline = time.monotonic() + 10
        try:
            while len(children.read_text().split()) < workers:
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.01)
        except FileNotFoundError:
            pytest.skip("needs Linux /proc/PID/task/PID/children")
        time.sleep(0.1)  # the workers are training
        try:
            os.killpg(process.pid, signal.SIGINT)
            out, err = process.communicate(timeout=20)
            assert process.returncode == 130
            assert out == ""
            assert err == "interrupted: stopped cleanly.\n"
            with pytest.raises(ProcessLookupError):  # nothing of the group outlives it
                os.killpg(process.pid, 0)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
