"""What the README's PyTorch recorder adds to a training epoch (a benchmark, not a test).

    python tests/bench_recorder.py [--threads 1] [--repeats 7]     needs torch

Three models on random data, each trained for an epoch without the recorder, with it
reading every batch, and with it reading one batch in ten (every=10), in turn, so that
all three see the same machine: a small MLP (the lesson's 8-16-16-16-16-4, batches of
16), a large one (784-512x4-10, batches of 128) and a small CNN (two 3x3 conv layers of
8 and 16 channels, each before a ReLU and a 2x2 max pool, on 28x28 single-channel
inputs, batches of 64). Prints the median seconds per epoch of each and the recorder's
share, with the machine's load average when it started.
"""

import argparse
import os
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


def mlp(widths):
    layers = [nn.Linear(widths[0], widths[1])]
    for fan_in, fan_out in pairwise(widths[1:]):
        layers += [nn.ReLU(), nn.Linear(fan_in, fan_out)]
    return nn.Sequential(*layers)


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
    )  # fmt: skip


MODELS = {  # name: (model, one sample's shape, classes, batch size, samples an epoch)
    "small MLP 8-16x4-4, batches of 16": (lambda: mlp([8, 16, 16, 16, 16, 4]), (8,), 4, 16, 4096),
    "large MLP 784-512x4-10, batches of 128": (
        lambda: mlp([784, 512, 512, 512, 512, 10]), (784,), 10, 128, 4096),
    "CNN 1x28x28, conv 8 and 16, batches of 64": (cnn, (1, 28, 28), 10, 64, 2048),
}  # fmt: skip


def epoch_seconds(make, shape, classes, batch, samples, every):
    """One epoch's wall time: without the recorder (every=0), or reading one batch in every."""
    torch.manual_seed(0)
    model = make()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    features, targets = torch.randn(samples, *shape), torch.randint(classes, (samples,))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.jsonl"
        recorder = RECORDER["HealthRecorder"](model, path, every=every) if every else None
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch's threads (default 1)")
    parser.add_argument("--repeats", type=int, default=7, help="epochs each way (default 7)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores, load "
          f"average {os.getloadavg()[0]:.2f}, median of {args.repeats} epochs")  # fmt: skip
    for name, (make, shape, classes, batch, samples) in MODELS.items():
        times = {0: [], 1: [], 10: []}
        for _ in range(args.repeats):  # in turn, so that all see the same machine
            for every, seconds in times.items():
                seconds.append(epoch_seconds(make, shape, classes, batch, samples, every))
        plain, each, tenth = (statistics.median(times[every]) for every in (0, 1, 10))
        print(
            f"{name}: {plain:.3f} s an epoch without the recorder; every batch {each:.3f} s "
            f"(+{each / plain - 1:.0%}); every=10 {tenth:.3f} s (+{tenth / plain - 1:.0%})"
        )


if __name__ == "__main__":
    main()
