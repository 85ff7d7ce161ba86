"""Benchmark of the hot loops: run with `python tests/bench.py` (not a test).

Reports the whole `python main.py` run, microseconds per sample-step (forward,
backward and SGD update of one sample) for hidden widths 16, 32 and 64, what
the monitors add to training, and peak memory. Each timing is the best of
REPEATS runs, so a busy machine inflates it less.
"""

import resource
import subprocess
import sys
import time
import tracemalloc
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import main  # noqa: E402

REPEATS = 5
EPOCHS = 3


class NoMonitor:
    """Records nothing: training alone, the baseline for the monitor's cost."""

    def reset(self):
        pass

    def record(self, trace, pre_activation_grads):
        pass

    def report(self):
        return {}


def best_seconds(run):
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def train(widths, samples, make_monitor):
    monitor = make_monitor(widths)
    for _ in main.training_run(widths, "kaiming", None, 0.05, EPOCHS, samples, 11, monitor):
        pass


def multiply_adds(widths):
    return sum(fan_in * fan_out for fan_in, fan_out in pairwise(widths))


def main_run_seconds():
    return best_seconds(
        lambda: subprocess.run(
            [sys.executable, "main.py"], cwd=ROOT, check=True, capture_output=True
        )
    )


def bench():
    print(f"Python {sys.version.split()[0]}, best of {REPEATS} runs")
    print(f"python main.py (whole process, both patients, 30 epochs): {main_run_seconds():.2f}s")
    print()
    samples = main.make_training_data(80, 8, 4, seed=7)
    steps = EPOCHS * len(samples)
    print("hidden width | multiply-adds/step | us/step, no monitor | ns per multiply-add")
    for width in (16, 32, 64):
        widths = [8, width, width, width, width, 4]
        seconds = best_seconds(lambda w=widths: train(w, samples, lambda _: NoMonitor()))
        per_step = 1e6 * seconds / steps
        macs = multiply_adds(widths)
        print(f"{width:>12} | {macs:>18} | {per_step:>19.1f} | {1e3 * per_step / macs:>19.1f}")
    print()
    widths = main.LESSON_WIDTHS
    baseline = best_seconds(lambda: train(widths, samples, lambda _: NoMonitor()))
    lesson = best_seconds(lambda: train(widths, samples, main.TrainingMonitor))
    exam = best_seconds(lambda: train(widths, samples, lambda w: main.ExamMonitor(w, 0.05)))
    print("monitor overhead on the lesson's network (8-16-16-16-16-4):")
    print(f"  TrainingMonitor (the lesson's six readings):   {100 * (lesson / baseline - 1):5.1f}%")
    print(f"  ExamMonitor (plus the update/weight ratio):    {100 * (exam / baseline - 1):5.1f}%")
    print()
    tracemalloc.start()
    train(widths, samples, main.TrainingMonitor)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        f"peak memory: {peak / 2**20:.2f} MiB traced by tracemalloc during training "
        f"(the monitor's epoch of traces included); process max RSS {max_rss / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    bench()
