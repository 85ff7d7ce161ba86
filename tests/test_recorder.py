"""The README's PyTorch recorder measures what main.py's monitor measures.

Slow, and skipped where torch is not installed (pip install torch: the CPU is enough).
The recorder is read from the README, not copied, so that what a learner copies is
what is tested.
"""

import json
import math
import random
import re
from pathlib import Path

import pytest

import main

torch = pytest.importorskip("torch", reason="the recorder test needs torch: pip install torch")
nn = torch.nn
pytestmark = pytest.mark.slow
README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
RECORDER = next(
    block for block in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    if "class HealthRecorder" in block
)  # fmt: skip


def recorder_module():
    namespace = {}
    exec(RECORDER, namespace)
    return namespace


class CappedReLU(nn.ReLU):
    """main.py's safe_relu: capped at RELU_CAP, its derivative 1 above the cap too."""

    def forward(self, x):
        y = torch.relu(x)
        return y - (y - main.RELU_CAP).clamp(min=0).detach()


def torch_model(dosing):
    """main.py's initial network for the dosing, as an nn.Sequential in float64."""
    network = main.init_network(
        dosing.layer_widths, dosing.init_mode, dosing.weight_scale_override, dosing.network_seed
    )
    layers = []
    for index, (weights, biases) in enumerate(network):
        linear = nn.Linear(len(weights[0]), len(weights), dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.tensor(weights, dtype=torch.float64))
            linear.bias.copy_(torch.tensor(biases, dtype=torch.float64))
        layers += [linear, CappedReLU()] if index < len(network) - 1 else [linear]
    return nn.Sequential(*layers)


def worst_differences(ours, theirs, keys):
    """Per key, the largest relative difference over every epoch, layer and entry."""

    def flat(value):
        value = value if isinstance(value, list) else [value]
        return [x for item in value for x in (item if isinstance(item, list) else [item])]

    worst = {}
    for mine, other in zip(ours, theirs, strict=True):
        for key in keys:
            for x, y in zip(flat(mine[key]), flat(other[key]), strict=True):
                x, y = (math.nan if v is None else v for v in (x, y))
                if math.isnan(x) and math.isnan(y):
                    continue
                worst[key] = max(worst.get(key, 0.0), abs(x - y) / max(abs(y), 1e-300))
    return worst


READINGS = (*main.RUN_READINGS, "update_ratio", "nonfinite_count", "firing_share", "loss")


def test_the_healthy_patient_trained_in_pytorch_reads_as_main_py_reads_it(tmp_path):
    # Two correct float64 implementations of the same per-sample SGD agree to ~1e-11 over
    # 30 epochs; the healthy patient is not chaotic, so they stay together.
    dosing = main.patient("healthy")
    samples = main.samples_for(dosing)
    model, recorder_code = torch_model(dosing), recorder_module()
    recorder = recorder_code["HealthRecorder"](model, tmp_path / "run.jsonl")
    optimizer = torch.optim.SGD(model.parameters(), lr=dosing.learning_rate)
    shuffler, order = random.Random(dosing.network_seed), list(range(len(samples)))
    for epoch in range(1, dosing.epochs + 1):
        shuffler.shuffle(order)  # main.py's sample order
        losses = []
        for index in order:
            features, target = samples[index]
            logits = model(torch.tensor([features], dtype=torch.float64))
            loss = nn.functional.cross_entropy(logits, torch.tensor([target]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recorder.step()
            losses.append(loss.item())
        recorder.end_epoch(epoch, math.fsum(losses) / len(losses))
    ours = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    theirs = main.json_records(dosing, main.examine(dosing, samples))
    keys = [key for key in READINGS if key != "nonfinite_count"]  # the recorder has none
    worst = worst_differences(ours, theirs, keys)
    print("worst relative difference, healthy, end to end:", worst)
    assert max(worst.values()) < 1e-9


@pytest.mark.parametrize("name", ["dead", "sick"])
def test_the_recorders_reduction_of_main_pys_own_values_gives_main_pys_readings(name, tmp_path):
    # Chaotic runs part after a while (a rounding difference grows), so the recorder is
    # fed main.py's own traced activations and gradients, sample by sample.
    dosing = main.patient(name)
    samples, code = main.samples_for(dosing), recorder_module()
    model = torch_model(dosing)
    recorder = code["HealthRecorder"](model, tmp_path / "run.jsonl")
    model(torch.zeros(1, dosing.layer_widths[0], dtype=torch.float64))  # finds the layers
    for layer in recorder.layers:
        code["zeroed"](layer, "cpu")

    class Feeding(main.ExamMonitor):
        def record(self, trace, grads):
            super().record(trace, grads)
            for index, layer in enumerate(recorder.layers):
                pre = torch.tensor([trace["pre_activations"][index]], dtype=torch.float64)
                post = torch.tensor([trace["post_activations"][index]], dtype=torch.float64)
                code["read_posts"](layer, pre, post)  # as a forward pass does
                grad = torch.tensor([grads[index]], dtype=torch.float64)
                code["read_grads"](layer, grad)  # as the gradient hook does

    reports = []
    for report in main.dosed_run(dosing, samples, Feeding(dosing.layer_widths)):
        reports.append(report)
        recorder.end_epoch(report["epoch"], report["loss"])
    ours = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    theirs = main.json_records(dosing, reports)
    keys = [key for key in READINGS if key not in ("update_ratio", "nonfinite_count")]
    worst = worst_differences(ours, theirs, keys)
    print(f"worst relative difference, {name}, through the reduction:", worst)
    assert max(worst.values()) < 1e-9


def test_what_the_recorder_writes_is_read_and_diagnosed(tmp_path):
    # A tiny tanh network with weights far too small: vanishing gradients, read back.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                          nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))  # fmt: skip
    with torch.no_grad():
        for layer in model[::2]:
            layer.weight.mul_(0.05)
    recorder = recorder_module()["HealthRecorder"](model, tmp_path / "run.jsonl")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    features, targets = torch.randn(64, 8), torch.arange(64) % 4
    for epoch in range(1, 4):
        loss = nn.functional.cross_entropy(model(features), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        recorder.step()
        recorder.end_epoch(epoch, loss.item())
    reports = main.read_run(str(tmp_path / "run.jsonl"))
    dosing = main.run_dosing(str(tmp_path / "run.jsonl"), reports)
    assert dosing.activation == "tanh" and dosing.layer_widths == (8, 16, 16, 16, 4)
    warnings = main.examination_warnings(reports[0])[0]
    assert "vanishing gradients" in {warning.kind for warning in warnings}
