"""The README's pasted output stays true: every command it shows is run, and
its output must contain what the README pastes.

A block the README pastes output in is a ```console block whose first line
is `$ python main.py ...`. A line that is only `...` marks a cut: the pieces
between cuts must each appear in the real output, whole lines in a row, in
their order. Timings are machine-dependent: the README pastes them in
```text blocks, which are not checked.

Every `python main.py ...` the README shows, in a block or in the prose, must
parse with main.py's own parser, and no flag the command line retired may
appear: the README speaks the command line main.py has.
"""

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CUT = "..."


def console_blocks(text):
    """(command, pasted output lines) for every ```console block of text."""
    blocks = []
    for body in re.findall(r"^```console\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL):
        first, *output = body.rstrip("\n").split("\n")
        assert first.startswith("$ python main.py"), f"a console block runs {first!r}"
        blocks.append((first[2:], output))
    return blocks


BLOCKS = console_blocks(README)
# Up to a comment, a table's column, or the end of the inline code.
COMMANDS = sorted(
    {found.rstrip(" \\") for found in re.findall(r"python main\.py[^`\n|#]*", README)}
)
# The commands whose pasted output is argparse's error: they must be refused.
REFUSED = {command for command, output in BLOCKS if any(": error: " in line for line in output)}
RETIRED_FLAGS = [
    "--patient",
    "--treat",
    "--seeds",
    "--list-patients",
    "--experiment",
    "--timing",
    "--ascii",
]


def run(command):
    result = subprocess.run(
        [sys.executable, *shlex.split(command)[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def outputs():
    """Every command's real output, the commands run side by side."""
    commands = sorted({command for command, _ in BLOCKS})
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(commands, pool.map(run, commands)))


def pieces(lines):
    """The pasted lines, split at the cuts."""
    found, piece = [], []
    for line in [*lines, CUT]:
        if line == CUT:
            if piece:
                found.append(piece)
            piece = []
        else:
            piece.append(line)
    return found


def test_the_readme_pastes_some_output():
    assert len(BLOCKS) >= 5


@pytest.mark.slow  # it runs every command the README pastes: about 15 seconds on 2 cores
@pytest.mark.parametrize(("command", "pasted"), BLOCKS, ids=[c for c, _ in BLOCKS])
def test_pasted_output_is_the_real_output(command, pasted, outputs):
    real = outputs[command].split("\n")
    position = 0
    for piece in pieces(pasted):
        for start in range(position, len(real) - len(piece) + 1):
            if real[start : start + len(piece)] == piece:
                position = start + len(piece)
                break
        else:
            pytest.fail(f"{command}: not in the real output, in this order:\n" + "\n".join(piece))


def test_pieces_split_at_cuts():
    assert pieces(["a", "b", "...", "c", "..."]) == [["a", "b"], ["c"]]


def test_the_prescription_table_is_the_code_table():
    rows = [
        f"| {kind} | `{condition}` | `{treatment}` |"
        for kind, condition, treatment in main.PRESCRIPTIONS
    ]
    table = "\n".join(["| kind of warning | condition | treatment |", "|---|---|---|", *rows])
    assert table in README


def test_every_condition_and_treatment_is_explained():
    for name in [*main.CONDITIONS, *main.TREATMENTS]:
        assert f"| `{name}` |" in README or f"`{name}`, " in README, name


def test_the_lesson_map_names_functions_of_the_lessons_part():
    """Every name in the README's map from the lesson to main.py is defined
    in main.py before the 'Beyond the lesson' banner."""
    source = (ROOT / "main.py").read_text(encoding="utf-8")
    lesson_part = source[: source.index("\n# Beyond the lesson")]
    table = README[README.index("| the lesson | in main.py |") :].split("\n\n")[0]
    names = re.findall(r"`(\w+)`", table)
    assert len(names) >= 10
    for name in names:
        assert re.search(rf"^(def |class ){name}\b|^{name} = ", lesson_part, re.MULTILINE), name


def test_the_readme_shows_the_commands():
    assert "python main.py lesson" in COMMANDS and len(COMMANDS) >= 15


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_the_readme_shows_parses(command):
    """main.py's parser takes it (or refuses it, if the README shows the refusal)."""
    argv = [word for word in shlex.split(command)[2:] if word != "--help"]
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), pytest.raises(SystemExit) as refused:
        args = main.build_parser().parse_args(argv)
        assert set(getattr(args, "patients", [])) <= main.PATIENTS.keys(), command
        raise SystemExit(0)
    assert (refused.value.code == 2) == (command in REFUSED), f"{command}: {errors.getvalue()}"


@pytest.mark.parametrize("flag", RETIRED_FLAGS)
def test_no_retired_flag_is_mentioned(flag):
    assert not re.search(rf"{flag}\b", README), flag
