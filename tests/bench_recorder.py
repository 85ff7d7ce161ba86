"""What the README's PyTorch recorder adds to a training epoch (a benchmark, not a test).

    python tests/bench_recorder.py        needs torch (pip install torch)

Two MLPs on random data, trained with and without the recorder, in turn: a small one
(the lesson's 8-16-16-16-16-4, batches of 16) and one of four hidden layers of 512
(784 inputs, 10 classes, batches of 128). Prints the median seconds per epoch of each,
and the recorder's share.
"""

import re
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import torch
from torch import nn

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
CODE = next(b for b in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
            if "class HealthRecorder" in b)  # fmt: skip
RECORDER = {}
exec(CODE, RECORDER)
REPEATS = 7


def epoch_seconds(widths, batch, samples, record):
    """One epoch's wall time, with or without the recorder."""
    torch.manual_seed(0)
    layers = []
    for index, (fan_in, fan_out) in enumerate(pairwise(widths)):
        layers += [nn.Linear(fan_in, fan_out)] + ([nn.ReLU()] if index < len(widths) - 2 else [])
    model = nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    features, targets = torch.randn(samples, widths[0]), torch.randint(widths[-1], (samples,))
    with tempfile.TemporaryDirectory() as folder:
        recorder = RECORDER["HealthRecorder"](model, Path(folder) / "run.jsonl") if record else None
        start = time.perf_counter()
        for first in range(0, samples, batch):
            loss = nn.functional.cross_entropy(model(features[first:first + batch]),
                                               targets[first:first + batch])  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if recorder:
                recorder.step()
        if recorder:
            recorder.end_epoch(1, loss.item())
        return time.perf_counter() - start


for name, widths, batch, samples in (
    ("small: 8-16-16-16-16-4, batches of 16", [8, 16, 16, 16, 16, 4], 16, 4096),
    ("large: 784-512x4-10, batches of 128", [784, 512, 512, 512, 512, 10], 128, 16384),
):
    plain, recorded = [], []
    for _ in range(REPEATS):  # in turn, so that both see the same machine
        plain.append(epoch_seconds(widths, batch, samples, False))
        recorded.append(epoch_seconds(widths, batch, samples, True))
    a, b = statistics.median(plain), statistics.median(recorded)
    print(f"{name}: {a:.3f} s an epoch without the recorder, {b:.3f} s with it (+{b / a - 1:.0%})")
