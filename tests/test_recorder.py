"""The README's PyTorch recorder measures what main.py's monitor measures.

Slow, and skipped where torch is not installed (pip install torch: the CPU is enough).
The recorder is read from the README, not copied, so that what a learner copies is
what is tested.
"""

import json
import math
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_readme import pieces

import main

torch = pytest.importorskip("torch", reason="the recorder test needs torch: pip install torch")
nn = torch.nn
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
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


READINGS = (*main.RUN_READINGS, "update_ratio", "firing_share", "loss")  # what the recorder writes


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
    worst = worst_differences(ours, theirs, READINGS)
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
    keys = [key for key in READINGS if key != "update_ratio"]  # no optimizer here
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


F = nn.functional


class MLP(nn.Module):
    """The digits MLP as a learner writes it: its own class, its own forward."""

    def __init__(self, activation=nn.ReLU):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(a, 32) for a in (64, 32, 32))
        self.out, self.act = nn.Linear(32, 10), nn.ModuleList(activation() for _ in range(3))

    def forward(self, x):
        for linear, act in zip(self.hidden, self.act):
            x = act(linear(x))
        return self.out(x)


class SharedReLU(MLP):
    """One self.relu called three times: three layers, not one."""

    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x):
        for linear in self.hidden:
            x = self.relu(linear(x))
        return self.out(x)


class FunctionalReLU(MLP):
    def forward(self, x):
        for linear in self.hidden:
            x = F.relu(linear(x))
        return self.out(x)


def cnn():
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 32),
        nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


def batch_normed():
    layers = [nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU()]
    layers += [nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)]
    return nn.Sequential(*layers)


LEARNERS_MODELS = {  # name: (the model, the names of its layers, as they run)
    "sequential": (lambda: main_digits_mlp(), ["1", "3", "5"]),
    "custom class": (MLP, ["act.0", "act.1", "act.2"]),
    "one shared self.relu": (SharedReLU, ["relu", "relu #2", "relu #3"]),
    "F.relu in forward": (FunctionalReLU, ["relu()", "relu() #2", "relu() #3"]),
    "CNN": (cnn, ["2", "5", "8"]),
    "GELU": (lambda: MLP(nn.GELU), ["act.0", "act.1", "act.2"]),
    "BatchNorm1d before each ReLU": (batch_normed, ["2", "5"]),
}


def main_digits_mlp():
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))  # fmt: skip


def digits(count=512):
    """The first count of scikit-learn's 8x8 digits, scaled to [0, 1]."""
    datasets = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn")
    data = datasets.load_digits()
    features = torch.tensor(data.data[:count] / 16.0, dtype=torch.float32)
    return features, torch.tensor(data.target[:count])


def train(model, path, epochs=3, batch=32, lr=0.1, every=1, data=None):
    """A learner's loop with the README's three lines; the recorder it used."""
    features, targets = data or digits()
    recorder = recorder_module()["HealthRecorder"](model, path, every=every)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        losses = []
        for first in range(0, len(features), batch):
            loss = F.cross_entropy(model(features[first:first + batch]),
                                   targets[first:first + batch])  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recorder.step()
            losses.append(loss.item())
        with torch.no_grad():  # an evaluation pass: never recorded
            model(features[:64])
        recorder.end_epoch(epoch, sum(losses) / len(losses))
    return recorder


@pytest.mark.parametrize("name", LEARNERS_MODELS)
def test_the_recorder_attaches_to_the_models_learners_write(name, tmp_path):
    make, names = LEARNERS_MODELS[name]
    torch.manual_seed(0)
    path = tmp_path / "run.jsonl"
    train(make(), path)
    reports = main.read_run(str(path))
    assert len(reports) == 3 and all(len(r["activation_std"]) == len(names) for r in reports)
    assert json.loads(path.read_text().splitlines()[0])["layer_names"] == names
    result = subprocess.run([sys.executable, "main.py", "read", str(path)], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "verdict:" in result.stdout and "Traceback" not in result.stderr


def test_a_conv_layers_dead_channels_are_counted_against_its_channels(tmp_path):
    # Channels 0-2 of the first conv layer can never fire (weights 0, bias -100);
    # the other 5 do. Dead is per channel, over every sample and position.
    torch.manual_seed(0)
    model = cnn()
    with torch.no_grad():
        model[1].weight[:3] = 0.0
        model[1].bias[:3] = -100.0
    train(model, tmp_path / "run.jsonl", epochs=1, lr=0.01)
    record = json.loads((tmp_path / "run.jsonl").read_text())
    assert record["layer_neuron_count"] == [8, 16, 32]
    assert record["layer_positions"] == [64, 16, 1]  # 8x8, then 4x4 after the max pool
    assert record["dead_count"][0] == 3
    assert record["firing_share"][0][:3] == [0.0, 0.0, 0.0]
    assert min(record["firing_share"][0][3:]) > 0


class Sigmoid(MLP):
    def forward(self, x):
        return self.out(torch.sigmoid(self.hidden[0](x)))


class Changing(MLP):
    """A model whose depth changes from one pass to the next."""

    def forward(self, x):
        self.calls = getattr(self, "calls", 0) + 1
        x = F.relu(self.hidden[0](x))
        return self.out(F.relu(self.hidden[1](x)) if self.calls == 1 else self.hidden[1](x))


class Mixed(MLP):
    def forward(self, x):
        return self.out(torch.tanh(self.hidden[1](F.relu(self.hidden[0](x)))))


@pytest.mark.parametrize(("model", "said"), [
    (Sigmoid, "this pass ran none it reads"),
    (Changing, "this pass ran relu at relu() (32 wide); the first, relu at relu() (32 wide), "
               "relu at relu() #2 (32 wide)"),
    (Mixed, "this pass ran relu at relu() (32 wide), tanh at tanh() (32 wide)"),
])  # fmt: skip
def test_a_model_it_cannot_read_gets_one_clear_error_and_no_file(model, said, tmp_path):
    with pytest.raises(ValueError, match="reads the same activations, all of one kind") as error:
        train(model(), tmp_path / "run.jsonl")
    assert said in str(error.value)
    assert not (tmp_path / "run.jsonl").exists()


def test_a_float32_models_readings_are_those_of_the_same_model_in_float64(tmp_path):
    # One epoch of the CNN in float32 and the same weights and data in float64: the
    # sums are float64 on the device in both, so the readings differ only by float32's
    # rounding of the values themselves.
    torch.manual_seed(0)
    model32 = cnn()
    model64 = cnn().double()
    model64.load_state_dict(model32.state_dict())
    features, targets = digits(256)
    train(model32, tmp_path / "32.jsonl", epochs=1, data=(features, targets))
    train(model64, tmp_path / "64.jsonl", epochs=1, data=(features.double(), targets))
    ours, theirs = ([json.loads((tmp_path / f"{b}.jsonl").read_text())] for b in (32, 64))
    worst = worst_differences(ours, theirs, READINGS[:-1])
    print("worst relative difference, float32 against float64:", worst)
    assert max(worst.values()) < 1e-5


def test_reading_one_batch_in_k_says_which_it_read(tmp_path):
    torch.manual_seed(0)
    train(main_digits_mlp(), tmp_path / "run.jsonl", epochs=1, every=5)
    record = json.loads((tmp_path / "run.jsonl").read_text())
    assert (record["every"], record["batches"]) == (5, 4)  # batches 1, 6, 11, 16 of 16
    assert sum(record["histogram"][0]) == 4 * 32 * 32  # 4 batches, 32 samples, 32 neurons


DISTRIBUTED = """
import json, os, sys, torch
import torch.distributed as dist
from torch import nn
rank, world, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
exec(open(sys.argv[4]).read())
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                      nn.Linear(16, 4)).double()
features, targets = torch.randn(256, 8, dtype=torch.float64), torch.randint(4, (256,))
if world > 1:
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = nn.parallel.DistributedDataParallel(model)
recorder = HealthRecorder(model, os.path.join(out, f"rank{rank}.jsonl"))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in (1, 2):
    losses = []
    for first in range(0, 256, 32):
        half = slice(first + rank * 32 // world, first + (rank + 1) * 32 // world)
        loss = nn.functional.cross_entropy(model(features[half]), targets[half])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        recorder.step()
        losses.append(loss.item())
    recorder.end_epoch(epoch, sum(losses) / len(losses))
if world > 1:
    dist.destroy_process_group()
"""


def test_two_ranks_over_halves_of_each_batch_read_as_one_process_over_whole_batches(tmp_path):
    script, code = tmp_path / "ddp.py", tmp_path / "recorder.py"
    script.write_text(DISTRIBUTED)
    code.write_text(RECORDER)
    alone, ranks = tmp_path / "alone", tmp_path / "ranks"
    alone.mkdir()
    ranks.mkdir()
    with socket.socket() as free:  # a free port on loopback for the ranks to meet on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    runs = [subprocess.Popen([sys.executable, script, str(rank), "2", ranks, code], env=env)
            for rank in (0, 1)]  # fmt: skip
    subprocess.run([sys.executable, script, "0", "1", alone, code], check=True, timeout=120)
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    assert sorted(path.name for path in ranks.iterdir()) == ["rank0.jsonl"]
    ours, theirs = ([json.loads(line) for line in (folder / "rank0.jsonl").read_text().splitlines()]
                    for folder in (ranks, alone))  # fmt: skip
    worst = worst_differences(ours, theirs, READINGS)
    print("worst relative difference, 2 ranks against 1 process:", worst)
    assert max(worst.values()) < 1e-9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_on_a_gpu_only_end_epoch_waits_for_the_device(tmp_path):
    torch.manual_seed(0)
    model = cnn().cuda()
    features, targets = (tensor.cuda() for tensor in digits(256))
    recorder = recorder_module()["HealthRecorder"](model, tmp_path / "run.jsonl")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.cuda.set_sync_debug_mode("error")  # a host synchronization raises
    try:
        for first in range(0, 256, 32):
            loss = F.cross_entropy(model(features[first : first + 32]), targets[first : first + 32])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recorder.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    recorder.end_epoch(1, loss.item())
    assert json.loads((tmp_path / "run.jsonl").read_text())["batches"] == 8


LEARNER_SCRIPT = next(
    block for block in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    if block.startswith("# digits.py")
).replace("# ... the HealthRecorder above, pasted here ...", RECORDER)  # fmt: skip
LEARNER_RUNS = re.findall(r"```text\n\$ python digits\.py (\w+) ([\d.]+) (\S+) && .*?\n(.*?)```",
                          README, flags=re.DOTALL)  # fmt: skip


def learner_run(folder, shape, lr, name):
    """The README's digits.py run as pasted, then read: what read prints."""
    (folder / "digits.py").write_text(LEARNER_SCRIPT)
    subprocess.run([sys.executable, "digits.py", shape, lr, name], cwd=folder, check=True)
    command = [sys.executable, ROOT / "main.py", "read", name, "--report-every", "100"]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(("shape", "lr", "name", "pasted"), LEARNER_RUNS)
def test_the_readmes_learner_runs_print_what_it_pastes(shape, lr, name, pasted, tmp_path):
    pytest.importorskip("sklearn", reason="needs scikit-learn")
    real = learner_run(tmp_path, shape, lr, name).split("\n")
    position = 0
    for piece in pieces(pasted.rstrip("\n").split("\n")):
        found = [i for i in range(position, len(real)) if real[i : i + len(piece)] == piece]
        assert found, "not in the real output, in this order:\n" + "\n".join(piece)
        position = found[0] + len(piece)


@pytest.mark.parametrize(("shape", "lr"), [("mlp", "0.192"), ("cnn", "0.188")])
def test_the_prescribed_dose_of_the_readmes_learner_runs_is_well(shape, lr, tmp_path):
    pytest.importorskip("sklearn", reason="needs scikit-learn")
    printed = learner_run(tmp_path, shape, lr, "cured.jsonl")
    assert "verdict: no warning in 20 epochs" in printed
    assert "prescription: nothing: it is well." in printed
