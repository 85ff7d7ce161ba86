"""Helpers for the tests that stop a running main.py (Linux /proc)."""

import contextlib
import os
import re
import signal
import time
from pathlib import Path


def catches_sigterm(pid):
    """Whether the process has set a SIGTERM handler: main.py's, set before it runs."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, flags=re.MULTILINE)[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def wait_for(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def group_gone(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def stopped(process, stop, to_group):
    """Send the stop; (seconds to the end, stdout, stderr); the group must be gone."""
    (os.killpg if to_group else os.kill)(process.pid, stop)
    sent = time.monotonic()
    out, err = process.communicate(timeout=20)
    took = time.monotonic() - sent
    with contextlib.suppress(AssertionError):  # a moment for the kernel to finish reaping
        wait_for(lambda: group_gone(process.pid), 0.2)
    assert group_gone(process.pid), "a process of its group was left running"
    return took, out, err
