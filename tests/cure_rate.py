"""How often does --treat cure? Run with `python tests/cure_rate.py [DOSE_SEED [COUNT]]`
(a benchmark, not a test: 100 doses take a few minutes).

Draws COUNT random doses (default 100) from the space below with
random.Random(DOSE_SEED) (default 2026, a set the prescription rules were
not tuned on: they were tuned on dose seeds 1 and 3), runs --treat's logic on each,
quietly, and prints: how many were sick (not well untreated: a warning at the
last epoch, or a final loss not below main.CURED_LOSS), how many were cured
in the first round and within main.TREATMENT_ROUNDS rounds, per disease (the
most urgent kind of warning at the first sign, or "no progress" for a run
that never warned), how many warned although their untreated loss ended
below CURED_LOSS (possible false alarms), and the median time per dose.

The dose space: the init is Kaiming, Xavier or a weight std log-uniform in
[0.01, 3], a third each; the learning rate log-uniform in [0.001, 1]; 2 to 6
hidden layers, each 8 to 24 wide; the activation ReLU, leaky ReLU or tanh;
no norm, no clipping; the lesson's task (8 features, 4 classes, 80 samples,
30 epochs) with data and network seeds drawn at random.
"""

import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import main

URGENCY = [kind for family in main.FAMILIES for kind in family]


def random_dose(rng, number):
    init_mode = rng.choice(["kaiming", "xavier", "bad"])
    std = 10 ** rng.uniform(-2, 0.477) if init_mode == "bad" else None  # 0.01 .. 3
    hidden = [rng.randint(8, 24) for _ in range(rng.randint(2, 6))]
    dose = dict(
        main.PATIENTS["healthy"],
        patient=f"dose {number}",
        init_mode=init_mode,
        weight_scale_override=std,
        learning_rate=10 ** rng.uniform(-3, 0),
        layer_widths=[8, *hidden, 4],
        activation=rng.choice(list(main.ACTIVATIONS)),
        network_seed=rng.randrange(10**6),
        data_seed=rng.randrange(10**6),
        sample_count=80,
    )
    dose["label"] = f"DOSE {number} ({main.describe_dosing(dose)})"
    return dose


def disease(reports):
    """The most urgent kind of warning at the first sign, or 'no progress'."""
    first = main.first_warned(reports)
    if first is None:
        return "no progress"
    return min((warning.kind for warning in first["warnings"]), key=URGENCY.index)


def cure_rate(dose_seed, count):
    rng = random.Random(dose_seed)
    sick, cured_first, cured, false_alarms = Counter(), Counter(), Counter(), 0
    seconds = []
    for number in range(count):
        dose = random_dose(rng, number)
        samples = main.make_training_data(80, 8, 4, dose["data_seed"])
        start = time.perf_counter()
        rounds = main.treat(dose, samples)
        seconds.append(time.perf_counter() - start)
        untreated = rounds[0]["reports"]
        warned = any(report["warnings"] for report in untreated)
        false_alarms += warned and untreated[-1]["loss"] < main.CURED_LOSS
        if main.is_well(untreated):
            continue
        kind = disease(untreated)
        sick[kind] += 1
        if main.is_well(rounds[-1]["reports"]):
            cured[kind] += 1
            cured_first[kind] += len(rounds) == 2
    total = sum(sick.values())
    print(f"cure rate over {count} random doses (dose seed {dose_seed}):")
    print(f"sick (not well untreated): {total} of {count}")
    print(
        f"cured in round 1: {sum(cured_first.values())} of {total}; within "
        f"{main.TREATMENT_ROUNDS} rounds: {sum(cured.values())} of {total} "
        f"({100 * sum(cured.values()) / max(total, 1):.0f}%)"
    )
    print("disease at the first sign | sick | cured in round 1 | cured within 3")
    for kind in sorted(sick, key=lambda kind: -sick[kind]):
        print(f"{kind:<25} | {sick[kind]:>4} | {cured_first[kind]:>16} | {cured[kind]:>14}")
    print(f"warned although the untreated loss ended below {main.CURED_LOSS:g}: {false_alarms}")
    print(f"median time per dose: {statistics.median(seconds):.1f}s (machine-dependent)")


if __name__ == "__main__":
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 2026
    cure_rate(seed, int(sys.argv[2]) if len(sys.argv) > 2 else 100)
