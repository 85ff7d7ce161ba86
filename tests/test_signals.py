"""Stopping `--seeds` at any moment: many trials, so this is in the slow set
(`python -m pytest -m slow`).

Each trial starts `python main.py --patient healthy --seeds 20` in a session
of its own and sends one stop (SIGINT, SIGTERM or SIGHUP) to the parent or to
its whole process group: either the moment its first worker process exists,
or at a random moment from 0.25 s to 2 s in (a seeded draw). The run must end
within 2 s with the shell's status for that signal and one line on stderr,
and leave no process of its group behind.

Before 0.25 s the run may still be in Python's own start-up and the compile of
main.py, before any line of it runs: a stop there gets the signal's default
action (SIGINT: Python's KeyboardInterrupt traceback), which no code in the
file can change.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STOPS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
TRIALS = 60
RNG = random.Random(2026)
# (signal, to the whole group?, when): every combination, at worker start and at random moments
PLAN = [
    (STOPS[k % 3], (k // 3) % 2 == 1, "worker start" if k % 4 == 0 else RNG.uniform(0.25, 2.0))
    for k in range(TRIALS)
]


def group_members(pgid):
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    return found.stdout.split()


def wait_for_a_worker(pid, deadline):
    while time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        if children.stdout.split():
            return
        time.sleep(0.002)
    raise AssertionError("no worker process started")


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "group", "when"), PLAN)
def test_a_stop_at_any_moment_ends_seeds_cleanly(stop, group, when):
    process = subprocess.Popen(
        [sys.executable, "main.py", "--patient", "healthy", "--seeds", "20"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        if when == "worker start":
            wait_for_a_worker(process.pid, time.monotonic() + 10)
        else:
            time.sleep(when)
        (os.killpg if group else os.kill)(process.pid, stop)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=10)
        took = time.monotonic() - sent
        time.sleep(0.05)  # let the kernel finish reaping before looking
        left = group_members(process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 128 + stop, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted"), stderr
    assert took < 2.0
    assert not left, f"left running: {left}"
