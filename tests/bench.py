"""Benchmark of the hot loops: run with `python tests/bench.py` (not a test).

Reports, all machine-dependent:
- the whole `python main.py` against the speed yardstick
  ../shared/bench/pure_tight_fsum.py: whole processes, run in turn, median of
  the paired ratio of their wall times;
- where the default run's time goes, phase by phase;
- microseconds per training step (forward, backward and update of one
  sample) for hidden widths 16, 32 and 64, and for each activation with and
  without layer norm;
- what the monitors add to training, and peak memory;
- the wall time of `treat NAME` and of `seeds NAME --pairs 20` on every patient.
Each in-process timing is the best of REPEATS runs, so a busy machine
inflates it less.
"""

import contextlib
import io
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import main  # noqa: E402

YARDSTICK = ROOT.parent / "shared" / "bench" / "pure_tight_fsum.py"
REPEATS = 5
PAIRS = 11  # whole-process runs of main.py and the yardstick, in turn
EPOCHS = 3


class NoMonitor(main.TrainingMonitor):
    """Records nothing: training alone, the baseline for the monitors' cost."""

    def reset(self):
        pass

    def record(self, trace, pre_activation_grads):
        pass

    def record_step(self, network, trace, pre_activation_grads, step_size):
        pass

    def record_update(self, index, update_sums, weight_sums):
        pass

    def report(self):
        return {}


class LessonOnly(main.TrainingMonitor):
    """The lesson's monitor, ignoring the step dosed_run reports."""

    def record_step(self, network, trace, pre_activation_grads, step_size):
        pass

    def record_update(self, index, update_sums, weight_sums):
        pass


def best_seconds(run):
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def process_seconds(argv):
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def yardstick_ratio():
    """Median over PAIRS of (main.py's wall time / the yardstick's), run in turn."""
    ours, theirs = [], []
    for _ in range(PAIRS):
        ours.append(process_seconds([sys.executable, "main.py"]))
        theirs.append(process_seconds([sys.executable, str(YARDSTICK)]))
    ratios = [a / b for a, b in zip(ours, theirs)]
    return statistics.median(ratios), statistics.median(ours), statistics.median(theirs)


def phase_profile():
    """Seconds per phase of the lesson's two patients: the lesson's own
    train(), its forward, backward, step and monitor wrapped in stopwatches
    (which add a little to each). The rest is the loss, the loop and printing."""
    phases = Counter()

    def timed(phase, function):
        def run(*args):
            start = time.perf_counter()
            result = function(*args)
            phases[phase] += time.perf_counter() - start
            return result

        return run

    class TimedMonitor(main.TrainingMonitor):
        record = timed("monitor record", main.TrainingMonitor.record)
        report = timed("monitor report", main.TrainingMonitor.report)

    steps = (
        timed("forward", main.forward_with_trace),
        timed("backward", main.backward),
        timed("SGD step", main.sgd_step),
    )
    samples = main.make_training_data(80, 8, 4, seed=7)
    start = time.perf_counter()
    for name in ("healthy", "sick"):
        patient = main.patient(name)
        widths = list(patient.layer_widths)
        network = main.init_network(widths, patient.init_mode, patient.weight_scale_override, 11)
        monitor = TimedMonitor(widths)
        runs = main.training_run(network, samples, 30, patient.learning_rate, 11, monitor, steps)
        for report in runs:
            if report["epoch"] % 10 == 0:
                with contextlib.redirect_stdout(io.StringIO()):
                    main.print_health_chart("X", report, show_histogram=report["epoch"] == 30)
    phases["the rest"] = time.perf_counter() - start - sum(phases.values())
    phases["start-up (import)"] = process_seconds([sys.executable, "-c", "import main"])
    return phases


def dosed_patient(widths, activation="relu", norm="none"):
    return replace(main.patient("healthy"), layer_widths=tuple(widths), activation=activation,
                   norm=norm, epochs=EPOCHS, network_seed=11)  # fmt: skip


def train(patient, samples, monitor):
    for _ in main.dosed_run(patient, samples, monitor):
        pass


def bench():
    print(f"Python {sys.version.split()[0]}; in-process timings are the best of {REPEATS} runs")
    if YARDSTICK.exists():
        ratio, ours, theirs = yardstick_ratio()
        print(
            f"python main.py against the yardstick (wall time, whole processes in turn, median "
            f"of {PAIRS} pairs): {ours:.2f}s / {theirs:.2f}s, ratio {ratio:.2f}"
        )
    else:
        print(f"no yardstick at {YARDSTICK} (it lives beside the project, not in it): no ratio")
    print()
    phases = phase_profile()
    total = sum(phases.values())
    print("where python main.py's time goes:")
    for phase, seconds in phases.items():
        print(f"  {phase:<18} {seconds:6.3f}s  {100 * seconds / total:4.1f}%")
    print()
    samples = main.make_training_data(80, 8, 4, seed=7)
    steps = EPOCHS * len(samples)
    print("hidden width | multiply-adds/step | us/step, no monitor | ns per multiply-add")
    for width in (16, 32, 64):
        widths = [8, width, width, width, width, 4]
        seconds = best_seconds(lambda w=widths: train(dosed_patient(w), samples, NoMonitor(w)))
        per_step = 1e6 * seconds / steps
        macs = sum(fan_in * fan_out for fan_in, fan_out in pairwise(widths))
        print(f"{width:>12} | {macs:>18} | {per_step:>19.1f} | {1e3 * per_step / macs:>19.1f}")
    print()
    print("us/step on the lesson's network, no monitor (Adam at lr 3e-3):")
    print("activation | no norm | layer norm | Adam, no norm | Adam, layer norm")
    widths = list(main.patient("healthy").layer_widths)
    for activation in main.ACTIVATIONS:
        cells = []
        for optimizer, norm in (
            ("sgd", "none"),
            ("sgd", "layer"),
            ("adam", "none"),
            ("adam", "layer"),
        ):
            patient = replace(dosed_patient(widths, activation, norm), optimizer=optimizer)
            if optimizer == "adam":
                patient = replace(patient, learning_rate=main.ADAM_LEARNING_RATE)
            seconds = best_seconds(lambda p=patient: train(p, samples, NoMonitor(widths)))
            cells.append(f"{1e6 * seconds / steps:.1f}")
        print(
            f"{activation:<10} | {cells[0]:>7} | {cells[1]:>10} | {cells[2]:>13} | {cells[3]:>16}"
        )
    print()
    patient = dosed_patient(widths)
    baseline = best_seconds(lambda: train(patient, samples, NoMonitor(widths)))
    lesson = best_seconds(lambda: train(patient, samples, LessonOnly(widths)))
    exam = best_seconds(lambda: train(patient, samples, main.ExamMonitor(widths)))
    print("monitor overhead on the lesson's network (8-16-16-16-16-4):")
    print(f"  TrainingMonitor (the lesson's six readings):   {100 * (lesson / baseline - 1):5.1f}%")
    print(f"  ExamMonitor (plus the update/weight ratio):    {100 * (exam / baseline - 1):5.1f}%")
    print()
    tracemalloc.start()
    train(patient, samples, LessonOnly(widths))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        f"peak memory: {peak / 2**20:.2f} MiB traced by tracemalloc during training "
        f"(the monitor's epoch of traces included); process max RSS {max_rss / 1024:.1f} MiB"
    )
    print()
    print("whole commands, wall time (seeds trains its seed pairs on every core):")
    print("patient   | treat NAME | seeds NAME --pairs 20")
    for name in main.PATIENTS:
        treat = process_seconds([sys.executable, "main.py", "treat", name])
        seeds = process_seconds([sys.executable, "main.py", "seeds", name, "--pairs", "20"])
        print(f"{name:<9} | {treat:>9.1f}s | {seeds:>20.1f}s")


if __name__ == "__main__":
    bench()
