"""Stopping `seeds` at any moment: many trials, so this is in the slow set
(`python -m pytest -m slow`; the one fast trial is in test_cli.py).

Each trial starts `python main.py seeds healthy sick --pairs 20` (~8 s on two
cores) in a session of its own and sends one stop: SIGINT to its whole
process group (as Ctrl-C does) in half the trials, SIGTERM to the parent
alone (as kill does) in the other half. The moment is drawn at random (a
seeded draw) from 0 to 2 s after main.py has set its handlers, or, every
fifth trial, is the moment its first worker process exists. The run must end
within 2 s with the shell's status for that signal and one line on stderr,
and leave no process of its group behind.

Before main.py sets its handlers the run is still in Python's own start-up
and the compile of main.py, before any line of it runs: a stop there gets
the signal's default action (SIGINT: Python's KeyboardInterrupt traceback),
which no code in the file can change. So the trials start their clock at
the handlers, read from /proc.
"""

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import catches_sigterm, stopped, wait_for

ROOT = Path(__file__).resolve().parent.parent
ARGV = [sys.executable, "main.py", "seeds", "healthy", "sick", "--pairs", "20"]
TRIALS = 20
RNG = random.Random(2026)
# (signal, to the whole group?, when): alternating, at worker start or a random moment
PLAN = [
    (
        signal.SIGINT if k % 2 == 0 else signal.SIGTERM,
        k % 2 == 0,
        "worker start" if k % 5 == 0 else round(RNG.uniform(0.0, 2.0), 3),
    )
    for k in range(TRIALS)
]
LINES = {signal.SIGINT: "interrupted: stopped.", signal.SIGTERM: "interrupted by SIGTERM: stopped."}


def workers(pid):
    children = Path(f"/proc/{pid}/task").glob("*/children")
    return [child for path in children for child in path.read_text().split()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("stop", "to_group", "when"),
    PLAN,
    ids=[
        f"{k}-{signal.Signals(stop).name}-{'group' if group else 'parent'}-{when}"
        for k, (stop, group, when) in enumerate(PLAN)
    ],
)
def test_a_stop_at_any_moment_ends_seeds_cleanly(stop, to_group, when):
    process = subprocess.Popen(
        ARGV,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: catches_sigterm(process.pid))
        if when == "worker start":
            wait_for(lambda: workers(process.pid))
        else:
            time.sleep(when)
        took, _, err = stopped(process, stop, to_group)  # it asserts the group is gone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()
    assert process.returncode == 128 + stop, err
    assert err == LINES[stop] + "\n"
    assert took < 2.0
