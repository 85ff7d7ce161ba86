"""Benchmark of the hot loops: run with `python tests/bench.py` (not a test).

Reports, all machine-dependent:
- the whole `python main.py` against the speed yardstick
  ../shared/bench/pure_tight.py: whole processes, run in turn, median of the
  paired ratio of their CPU times;
- where the default run's time goes, phase by phase;
- microseconds per sample-step (forward, backward and SGD update of one
  sample) for hidden widths 16, 32 and 64, and for each activation with and
  without layer norm;
- what the monitors add to training, and peak memory;
- the wall time of `--treat` and of `--seeds 20` on every patient.
Each in-process timing is the best of REPEATS runs, so a busy machine
inflates it less.
"""

import contextlib
import io
import random
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import main  # noqa: E402

YARDSTICK = ROOT.parent / "shared" / "bench" / "pure_tight.py"
REPEATS = 5
PAIRS = 9  # whole-process runs of main.py and the yardstick, in turn
EPOCHS = 3


class NoMonitor:
    """Records nothing: training alone, the baseline for the monitor's cost."""

    def reset(self):
        pass

    def record(self, trace, pre_activation_grads):
        pass

    def record_step(self, network, trace, pre_activation_grads, step_size):
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


def process_cpu_seconds(argv):
    """CPU time (user + system) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def yardstick_ratio():
    """Median over PAIRS of (main.py's CPU time / the yardstick's), run in turn."""
    ratios, ours, theirs = [], [], []
    for _ in range(PAIRS):
        ours.append(process_cpu_seconds([sys.executable, "main.py"]))
        theirs.append(process_cpu_seconds([sys.executable, str(YARDSTICK)]))
        ratios.append(ours[-1] / theirs[-1])
    return statistics.median(ratios), statistics.median(ours), statistics.median(theirs)


def phase_profile():
    """Seconds per phase of the lesson's two patients, timed around each call
    of training_run's loop (the timers themselves add a little to each)."""
    phases = dict.fromkeys(
        ("forward", "loss", "backward", "SGD", "monitor record", "monitor report", "printing"), 0.0
    )
    samples = main.make_training_data(80, 8, 4, seed=7)
    for dose in (("kaiming", None, 0.05), ("bad", 1.0, 0.8)):
        network = main.init_network(main.LESSON_WIDTHS, dose[0], dose[1], 11)
        shuffler = random.Random(11)
        monitor = main.TrainingMonitor(main.LESSON_WIDTHS)
        order = list(range(len(samples)))
        for epoch in range(1, 31):
            monitor.reset()
            shuffler.shuffle(order)
            losses = []
            for sample_index in order:
                inputs, target_class = samples[sample_index]
                t0 = time.perf_counter()
                trace = main.forward_with_trace(network, inputs)
                t1 = time.perf_counter()
                losses.append(main.cross_entropy(trace["pre_activations"][-1], target_class))
                t2 = time.perf_counter()
                grads = main.pre_activation_gradients(network, trace, target_class)
                t3 = time.perf_counter()
                monitor.record(trace, grads)
                t4 = time.perf_counter()
                main.sgd_step(network, trace, grads, dose[2])
                t5 = time.perf_counter()
                phases["forward"] += t1 - t0
                phases["loss"] += t2 - t1
                phases["backward"] += t3 - t2
                phases["monitor record"] += t4 - t3
                phases["SGD"] += t5 - t4
            t0 = time.perf_counter()
            report = monitor.report()
            report.update(epoch=epoch, loss=main.exact_sum(losses) / len(losses))
            t1 = time.perf_counter()
            if epoch % 10 == 0:
                with contextlib.redirect_stdout(io.StringIO()):
                    main.print_health_chart("X", report, show_histogram=epoch == 30)
            phases["monitor report"] += t1 - t0
            phases["printing"] += time.perf_counter() - t1
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import main"], cwd=ROOT, check=True)
    phases["start-up (import)"] = time.perf_counter() - start
    return phases


def dosed_patient(widths, activation="relu", norm="none"):
    return dict(
        main.PATIENTS["healthy"],
        layer_widths=widths,
        activation=activation,
        norm=norm,
        epochs=EPOCHS,
        network_seed=11,
    )


def train(patient, samples, monitor):
    for _ in main.dosed_run(patient, samples, monitor):
        pass


def multiply_adds(widths):
    return sum(fan_in * fan_out for fan_in, fan_out in pairwise(widths))


def command_seconds(*args):
    start = time.perf_counter()
    subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def bench():
    print(f"Python {sys.version.split()[0]}; in-process timings are the best of {REPEATS} runs")
    if YARDSTICK.exists():
        ratio, ours, theirs = yardstick_ratio()
        print(
            f"python main.py against the yardstick (CPU time, whole processes in turn, median "
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
        patient = dosed_patient(widths)
        seconds = best_seconds(lambda p=patient: train(p, samples, NoMonitor()))
        per_step = 1e6 * seconds / steps
        macs = multiply_adds(widths)
        print(f"{width:>12} | {macs:>18} | {per_step:>19.1f} | {1e3 * per_step / macs:>19.1f}")
    print()
    print("us/step on the lesson's network, no monitor:")
    print("activation | no norm | layer norm")
    for activation in main.ACTIVATIONS:
        cells = []
        for norm in ("none", "layer"):
            patient = dosed_patient(main.LESSON_WIDTHS, activation, norm)
            seconds = best_seconds(lambda p=patient: train(p, samples, NoMonitor()))
            cells.append(f"{1e6 * seconds / steps:7.1f}")
        print(f"{activation:<10} | {cells[0]} | {cells[1]:>10}")
    print()
    patient = dosed_patient(main.LESSON_WIDTHS)
    baseline = best_seconds(lambda: train(patient, samples, NoMonitor()))
    lesson = best_seconds(lambda: train(patient, samples, LessonOnly(main.LESSON_WIDTHS)))
    exam = best_seconds(lambda: train(patient, samples, main.ExamMonitor(main.LESSON_WIDTHS)))
    print("monitor overhead on the lesson's network (8-16-16-16-16-4):")
    print(f"  TrainingMonitor (the lesson's six readings):   {100 * (lesson / baseline - 1):5.1f}%")
    print(f"  ExamMonitor (plus the update/weight ratio):    {100 * (exam / baseline - 1):5.1f}%")
    print()
    tracemalloc.start()
    train(patient, samples, LessonOnly(main.LESSON_WIDTHS))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        f"peak memory: {peak / 2**20:.2f} MiB traced by tracemalloc during training "
        f"(the monitor's epoch of traces included); process max RSS {max_rss / 1024:.1f} MiB"
    )
    print()
    print("whole commands, wall time (--seeds trains its seed pairs on every core):")
    print("patient   | --patient NAME --treat | --patient NAME --seeds 20")
    for name in main.PATIENTS:
        treat = command_seconds("--patient", name, "--treat")
        seeds = command_seconds("--patient", name, "--seeds", "20")
        print(f"{name:<9} | {treat:>21.1f}s | {seeds:>24.1f}s")


class LessonOnly(main.TrainingMonitor):
    """The lesson's monitor, taking (and ignoring) the step dosed_run reports."""

    def record_step(self, network, trace, pre_activation_grads, step_size):
        pass


if __name__ == "__main__":
    bench()
