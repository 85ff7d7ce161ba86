"""Does `read`'s prescription, followed mechanically in PyTorch, cure real models on real data?

Run with `python tests/real_cure.py [--seed 0 1 2] [--quick]` (a benchmark, not a test;
it needs torch and scikit-learn, and says so in one line if either is missing).

The data ship with scikit-learn (nothing is downloaded): digits (8x8 images, 10 classes),
wine (13 features, 3 classes) and breast cancer (30 features, 2 classes). Each is split once,
stratified, 20% held out (random_state 0), and standardized with the training part's mean and
std. The models are what a learner writes: an `nn.Sequential` MLP of three hidden layers of 64,
the same MLP as a custom `nn.Module` with its own `forward` (activations called as functions:
`F.relu`, `torch.tanh`, `F.leaky_relu`), and, on digits only, a small CNN (Unflatten to 1x8x8,
Conv2d(1, 8, 3, p=1), act, MaxPool2d(2), Conv2d(8, 16, 3, p=1), act, Flatten, Linear(256, 64),
act, Linear(64, 10)). Training: SGD (no momentum) unless a dose says otherwise, batches of 32,
cross-entropy, 20 epochs; the seed picks the initial weights and the batch order.

Each run is recorded by the README's `HealthRecorder` (the ```python block holding it, exec'd as
tests/test_recorder.py does), read by `python main.py read RUN --json OUT` in a subprocess, and
the prescription (the `prescription` key of the records) applied mechanically to a fresh model
from the same seed, keeping earlier rounds' treatments, up to three rounds:
learning_rate_factor multiplies the lr; clip: clip_grad_norm_ after backward; optimizer adam:
torch.optim.Adam at its learning_rate; norm layer: nn.LayerNorm(width) before each MLP
activation, nn.GroupNorm(1, channels) before each conv activation; init_mode: kaiming_normal_
(nonlinearity="relu") or xavier_normal_ on every hidden layer's weight (the layers feeding an
activation), biases zeroed; activation leaky_relu: LeakyReLU(0.01) in place of each activation;
epochs: train that many. A dose is cured when `read` prints "prescription: nothing: it is
well." and its held-out accuracy is at least the healthy dose's (same model, data and seed)
minus 3 points.

The doses were chosen before any result was seen, as the ways a learner plausibly gets it
wrong; the kinds of warning each was built to show are in DOSES ("expects"). A dose's custom
init is `nn.init.normal_(weight, std=...)` with the bias zeroed, on the hidden layers (those
feeding an activation), as a learner's init function does; the output layer keeps PyTorch's.
  healthy      ReLU, PyTorch's default init, lr 0.1: what a learner starts from.
  lr 2         ReLU, lr 2: far too high, the ReLUs die (the README's digits example).
  lr 100       ReLU, lr 100: higher still, meant to turn the loss NaN (or explode).
  tanh std .01 tanh, every hidden weight N(0, 0.01): far too small, the signal and the
               gradients vanish.
  tanh std 1   tanh, N(0, 1): far too large, the tanh saturates.
  relu std 1   ReLU, N(0, 1): far too large for ReLU, the activations grow ~8x a layer:
               exploding gradients, non-finite values, or dead neurons (and ReLU's own
               "saturation", beyond +-6).
  lr 1e-4      ReLU, lr 1e-4: far too low, no progress (updates too small).
  deep tanh    tanh, ten hidden layers of 16 (the CNN: after its convolutions), PyTorch's
               default init (0.58 of Xavier's std): the gradients vanish down the stack.
  kaiming/2    ReLU, N(0, sqrt(2/fan_in)/2): an init off by 2x, too small. What it shows
               is not known in advance: the signal shrinks 2x a layer (expects signal
               collapse or vanishing gradients, and may well read as well).
  adam lr .1   ReLU, Adam at lr 0.1, an SGD rate given to Adam: dead neurons or updates
               too large.

The table: per model, data and dose, the kinds of warning at `read`'s first sign (parsed from
the WARNINGS lines of the chart marked "first sign"; "none" when nothing warned), each round's
prescription, accuracy before and after, and whether it was cured. The summary: false alarms
among the healthy doses (not "well", or given a prescription), the share of sick doses whose
first sign names a kind the dose was built to show, the share cured, per model, per data set
and per seed, and the wall time. A `read` that fails (a status other than 0) is a row with
its reason, not a crash.

Reading it. A sick dose that `read` calls well untreated is "harmless (well)" when its held-out
accuracy is within 3 points of the healthy dose's and "MISSED" when below; the cure rate is given
over the doses `read` found sick and over all of them (cured or harmless). A first sign of
another kind than the dose was built to show counts as not naming it, even where it is a fair
reading (lr 2 here reads as updates too large or NaN, not dead neurons: the README's digits run
that dies at lr 2 scales its inputs to [0, 1], these are standardized). The deep tanh dose is
another architecture than the healthy one, so its bar (the healthy accuracy minus 3) may be out
of its reach in 20 epochs. The Sequential and the custom MLP are the same network (same seed,
parameters made in the same order), so their rows agree: a check that the recorder reads
`F.relu` and `torch.tanh` calls as it reads the modules.

To look at one dose: --model, --data and --dose pick it; --keep DIR keeps each round's run,
what `read` printed (.read.txt) and the treatment it was given. main.py and README.md are those
of the checkout this file sits in: while they are being edited, run it from a snapshot
(`git archive HEAD | tar -x -C DIR`).
"""

import argparse
import itertools
import json
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "main.py"
README = (ROOT / "README.md").read_text(encoding="utf-8")
RECORDER = next(
    block for block in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    if "class HealthRecorder" in block
)  # fmt: skip
WELL = "prescription: nothing: it is well."
EPOCHS, BATCH, WIDTH, ROUNDS, SLACK = 20, 32, 64, 3, 3.0
DEAD, NAN, EXPLODING, LARGE = (
    "dead neurons",
    "non-finite values",
    "exploding gradients",
    ("update too large"),
)
SATURATION, COLLAPSE, VANISHING = "saturation", "signal collapse", "vanishing gradients"
SMALL, NO_PROGRESS = "update too small", "no progress"

# name: (activation, init std: None (PyTorch's), a number or "kaiming/2", lr, optimizer, deep,
# the kinds of warning it was built to show)
DOSES = {
    "healthy": ("relu", None, 0.1, "sgd", False, ()),
    "lr 2": ("relu", None, 2.0, "sgd", False, (DEAD,)),
    "lr 100": ("relu", None, 100.0, "sgd", False, (NAN, EXPLODING)),
    "tanh std .01": ("tanh", 0.01, 0.1, "sgd", False, (VANISHING, COLLAPSE)),
    "tanh std 1": ("tanh", 1.0, 0.1, "sgd", False, (SATURATION,)),
    "relu std 1": ("relu", 1.0, 0.1, "sgd", False, (EXPLODING, NAN, DEAD, SATURATION)),
    "lr 1e-4": ("relu", None, 1e-4, "sgd", False, (SMALL, NO_PROGRESS)),
    "deep tanh": ("tanh", None, 0.1, "sgd", True, (VANISHING, COLLAPSE)),
    "kaiming/2": ("relu", "kaiming/2", 0.1, "sgd", False, (COLLAPSE, VANISHING)),
    "adam lr .1": ("relu", None, 0.1, "adam", False, (DEAD, LARGE)),
}
SHORT = {DEAD: "dead", NAN: "nonfinite", EXPLODING: "exploding", LARGE: "upd large",
         SATURATION: "saturation", COLLAPSE: "collapse", VANISHING: "vanishing",
         SMALL: "upd small", NO_PROGRESS: "no progress"}  # fmt: skip
KINDS = [  # read's warning texts (main.py's flag_issues and examination_warnings)
    ("dead neurons", DEAD), ("(vanishing)", VANISHING), ("(exploding)", EXPLODING),
    ("saturating", SATURATION), ("(signal collapse)", COLLAPSE), ("(NaN/inf)", NAN),
    ("(too small)", SMALL), ("(too large)", LARGE),
]  # fmt: skip
MODELS = ("sequential", "custom", "cnn")
DATASETS = ("digits", "wine", "cancer")


def missing():
    """Why the benchmark cannot run here, or None."""
    for module, why in (("torch", "pip install torch"), ("sklearn", "pip install scikit-learn")):
        try:
            __import__(module)
        except ImportError:
            return f"real_cure needs {module.replace('sklearn', 'scikit-learn')}: {why}"
    return None


_DATA = {}


def dataset(name):
    """Standardized train and held-out tensors of a data set that ships with scikit-learn."""
    if name not in _DATA:
        import torch
        from sklearn import datasets
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        load = dict(digits=datasets.load_digits, wine=datasets.load_wine,
                    cancer=datasets.load_breast_cancer)[name]  # fmt: skip
        x, y = load(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=0.2, stratify=y, random_state=0
        )
        scaler = StandardScaler().fit(x_train)
        _DATA[name] = [
            torch.tensor(scaler.transform(x_train), dtype=torch.float32),
            torch.tensor(y_train),
            torch.tensor(scaler.transform(x_test), dtype=torch.float32),
            torch.tensor(y_test),
        ]
    return _DATA[name]


def build(shape, inputs, outputs, activation, deep, norm):
    """The learner's model; returns it and its hidden layers (those feeding an activation)."""
    from torch import nn

    act = dict(relu=nn.ReLU, tanh=nn.Tanh, leaky_relu=lambda: nn.LeakyReLU(0.01))[activation]
    widths = [16] * 10 if deep else [WIDTH] * (1 if shape == "cnn" else 3)
    if shape == "custom":
        model = CustomMLP(inputs, widths, outputs, activation, norm)
        return model, list(model.hidden)
    layers, hidden, before = [], [], inputs
    if shape == "cnn":  # 1x8x8 -> 8x8x8 -> 8x4x4 -> 16x4x4 -> 256
        first, second = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        layers = [nn.Unflatten(1, (1, 8, 8)), first, *([nn.GroupNorm(1, 8)] if norm else []),
                  act(), nn.MaxPool2d(2), second, *([nn.GroupNorm(1, 16)] if norm else []),
                  act(), nn.Flatten()]  # fmt: skip
        hidden, before = [first, second], 16 * 4 * 4
    for width in widths:
        linear = nn.Linear(before, width)
        layers += [linear, *([nn.LayerNorm(width)] if norm else []), act()]
        hidden.append(linear)
        before = width
    layers.append(nn.Linear(before, outputs))
    return nn.Sequential(*layers), hidden


def custom_class():
    import torch
    from torch import nn

    class CustomMLP(nn.Module):
        """The same MLP, written as a class: its activations are function calls in forward."""

        def __init__(self, inputs, widths, outputs, activation, norm):
            super().__init__()
            sizes = [inputs, *widths]
            self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
            self.norms = nn.ModuleList(nn.LayerNorm(b) if norm else nn.Identity() for b in widths)
            self.out = nn.Linear(widths[-1], outputs)
            self.activation = activation

        def forward(self, x):
            for linear, norm in zip(self.hidden, self.norms):
                z = norm(linear(x))
                if self.activation == "relu":
                    x = nn.functional.relu(z)
                elif self.activation == "tanh":
                    x = torch.tanh(z)
                else:
                    x = nn.functional.leaky_relu(z, 0.01)
            return self.out(x)

    return CustomMLP


CustomMLP = None


def train(seed, shape, data, dose, treatment, path):
    """Train one dose with the treatments so far, recorded; its held-out accuracy."""
    global CustomMLP
    import torch
    from torch import nn

    CustomMLP = CustomMLP or custom_class()
    activation, init_std, lr, optimizer, deep, _ = DOSES[dose]
    activation = treatment.get("activation", activation)
    x_train, y_train, x_test, y_test = dataset(data)
    torch.manual_seed(seed)
    model, hidden = build(shape, x_train.shape[1], int(y_train.max()) + 1, activation, deep,
                          treatment.get("norm") == "layer")  # fmt: skip
    with torch.no_grad():
        for layer in hidden:
            if init_std is not None:  # the dose: the learner's own init
                fan_in = layer.weight[0].numel()
                std = (2 / fan_in) ** 0.5 / 2 if init_std == "kaiming/2" else init_std
                layer.weight.normal_(0, std)
                layer.bias.zero_()
            if treatment.get("init_mode") == "kaiming":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                layer.bias.zero_()
            elif treatment.get("init_mode") == "xavier":
                nn.init.xavier_normal_(layer.weight)
                layer.bias.zero_()
    if "optimizer" in treatment:
        optimizer, lr = treatment["optimizer"], treatment["learning_rate"]
    lr *= treatment.get("learning_rate_factor", 1.0)
    kind = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    step = kind(model.parameters(), lr=lr)
    namespace = {}
    exec(RECORDER, namespace)
    recorder = namespace["HealthRecorder"](model, path)
    shuffle = torch.Generator().manual_seed(seed)
    for epoch in range(1, treatment.get("epochs", EPOCHS) + 1):
        order, losses = torch.randperm(len(x_train), generator=shuffle), []
        for first in range(0, len(x_train), BATCH):
            batch = order[first : first + BATCH]
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            step.zero_grad()
            loss.backward()
            if treatment.get("clip") is not None:
                nn.utils.clip_grad_norm_(model.parameters(), treatment["clip"])
            step.step()
            recorder.step()
            losses.append(loss.item())
        recorder.end_epoch(epoch, sum(losses) / len(losses))
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).double().mean().item()
    return 100 * accuracy


def read(path):
    """`main.py read` on the run: its output, the first sign's kinds and the prescription."""
    out = path.with_suffix(".read.jsonl")
    command = [sys.executable, str(MAIN), "read", str(path), "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return dict(failed=f"read status {done.returncode}: {reason}", printed=done.stdout)
    lines, kinds = done.stdout.splitlines(), []
    if "first sign: the first epoch with a warning" in lines:
        start = lines.index("first sign: the first epoch with a warning")
        at = lines.index("WARNINGS:", start)
        for line in lines[at + 1 :]:
            if not line.startswith("- "):
                break
            kind = next((kind for text, kind in KINDS if text in line), line[2:])
            kinds += [kind] if kind not in kinds else []
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return dict(
        printed=done.stdout,
        well=WELL in done.stdout,
        kinds=kinds,
        prescription=records[-1].get("prescription", []),
        failed=None,
    )


def run_dose(task):
    """One dose of one model on one data set and seed, treated up to ROUNDS rounds."""
    import torch

    torch.set_num_threads(1)
    seed, shape, data, dose, keep = (*task, None)[:5]
    start, treatment, rounds = time.perf_counter(), {}, []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(keep or scratch) / f"{seed}-{shape}-{data}-{dose}".replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for number in range(ROUNDS + 1):
            path = folder / f"round{number}.jsonl"
            if keep:  # what this round was given, to reproduce it
                (folder / f"round{number}.treatment.json").write_text(json.dumps(treatment))
            accuracy = train(seed, shape, data, dose, treatment, path)
            reading = read(path)
            rounds.append(dict(accuracy=accuracy, **reading))
            if keep:
                path.with_suffix(".read.txt").write_text(reading["printed"])
            if reading["failed"] or not reading["prescription"] or number == ROUNDS:
                break
            for given in reading["prescription"]:
                change = dict(given["change"])
                if "learning_rate_factor" in change:
                    factor = change.pop("learning_rate_factor")
                    change["learning_rate_factor"] = treatment.get("learning_rate_factor", 1)
                    change["learning_rate_factor"] *= factor
                if "optimizer" in change:  # a new optimizer at its own rate: no factor yet
                    treatment.pop("learning_rate_factor", None)
                treatment.update(change)
    for reading in rounds:
        reading.pop("printed")
    return dict(seed=seed, model=shape, data=data, dose=dose, rounds=rounds,
                seconds=time.perf_counter() - start)  # fmt: skip


def tasks(seeds, quick, models=MODELS, datasets=DATASETS, doses=tuple(DOSES), keep=None):
    combos = [(m, d) for m in models for d in datasets if m != "cnn" or d == "digits"]
    if quick:
        combos, doses = [("sequential", "wine")], ["healthy", "lr 2", "tanh std .01"]
    every = [(s, m, d, dose, keep) for s in seeds for m, d in combos for dose in doses]
    return sorted(every, key=lambda t: t[2] != "digits")  # the slow ones first


def prescribed(reading):
    if reading["failed"]:
        return "READ FAILED"
    return " + ".join(given["name"] for given in reading["prescription"]) or "-"


def judged(results):
    """Each result judged: its first sign, read's verdict untreated, cured (against the healthy)."""
    healthy = {(r["seed"], r["model"], r["data"]): r for r in results if r["dose"] == "healthy"}
    for result in results:
        first, last = result["rounds"][0], result["rounds"][-1]
        base = healthy.get((result["seed"], result["model"], result["data"]))
        floor = base["rounds"][0]["accuracy"] - SLACK if base else float("-inf")
        expects = DOSES[result["dose"]][-1]
        result["sign"] = ", ".join(SHORT.get(k, k) for k in first.get("kinds", [])) or (
            "read failed" if first["failed"] else "none, well" if first["well"] else "none"
        )
        result["named"] = bool(set(first.get("kinds", [])) & set(expects)) or (
            NO_PROGRESS in expects and not first.get("kinds") and not first.get("well")
        )
        result["well_untreated"] = bool(first.get("well")) and not first.get("prescription")
        result["flagged"] = not result["well_untreated"]  # read found it sick
        result["harmless"] = result["well_untreated"] and first["accuracy"] >= floor
        result["missed"] = result["well_untreated"] and first["accuracy"] < floor
        result["cured"] = bool(last.get("well")) and last["accuracy"] >= floor
        result["false_alarm"] = result["dose"] == "healthy" and result["flagged"]
    return results


def share(part, whole):
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "0/0"


def last_read(reading):
    """What read said of the last run: well, or what it still prescribed, or nothing."""
    if reading["failed"]:
        return "read failed"
    if reading["well"]:
        return "well"
    return "still: " + prescribed(reading) if reading["prescription"] else "nothing answers"


def verdict(result):
    if result["dose"] == "healthy":
        return "FALSE ALARM" if result["false_alarm"] else "well"
    if result["missed"]:
        return "MISSED (well, acc low)"
    if result["harmless"]:
        return "harmless (well)"
    return "yes" if result["cured"] else "NO"


def order(result):
    doses = list(DOSES)
    return (result["seed"], MODELS.index(result["model"]), DATASETS.index(result["data"]),
            doses.index(result["dose"]))  # fmt: skip


def row(r):
    given = [prescribed(reading) for reading in r["rounds"]]
    given = [g for g in given if g != "-"][:ROUNDS] + [""] * ROUNDS
    expects = "/".join(SHORT[k] for k in DOSES[r["dose"]][-1]) or "(healthy)"
    before, after = (f"{r['rounds'][i]['accuracy']:.1f}" for i in (0, -1))
    return (str(r["seed"]), r["model"], r["data"], r["dose"], expects, r["sign"],
            *given[:ROUNDS], last_read(r["rounds"][-1]), before, after, verdict(r))  # fmt: skip


def report(results, wall):
    rows = [("seed", "model", "data", "dose", "built to show", "first sign", "round 1",
             "round 2", "round 3", "last read", "acc before", "acc after", "cured")]  # fmt: skip
    rows += [row(r) for r in sorted(results, key=order)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for cells in rows:
        print(" | ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())
    print()
    healthy = [r for r in results if r["dose"] == "healthy"]
    sick = [r for r in results if r["dose"] != "healthy"]
    alarms = sum(r["false_alarm"] for r in healthy)
    print(f"false alarms among healthy doses (not well, or a prescription): "
          f"{share(alarms, len(healthy))}")  # fmt: skip
    failures = [r for r in results if any(reading["failed"] for reading in r["rounds"])]
    print(f"doses where read failed (a status other than 0): {len(failures)}")
    print(f"sick doses read as well untreated: {sum(r['well_untreated'] for r in sick)} of "
          f"{len(sick)}: harmless (held-out accuracy within {SLACK:g} points of the healthy "
          f"dose's) {sum(r['harmless'] for r in sick)}, missed (below it) "
          f"{sum(r['missed'] for r in sick)}")  # fmt: skip
    print(
        "sick doses: the first sign names the dosed disease (of all) | of those read found "
        "sick: cured within 3 rounds | of all: cured or harmless"
    )
    groups = [("model", value) for value in MODELS] + [("data", value) for value in DATASETS]
    groups += [("seed", value) for value in sorted({r["seed"] for r in sick})]
    groups += [("dose", value) for value in DOSES if value != "healthy"]
    for key, value in [*groups, ("all", None)]:
        group = [r for r in sick if key == "all" or r[key] == value]
        flagged = [r for r in group if r["flagged"]]
        if group:
            print(f"  {key} {value if value is not None else ''}: ".replace(" :", ":")
                  + f"{share(sum(r['named'] for r in group), len(group))} | "
                  f"{share(sum(r['cured'] for r in flagged), len(flagged))} | "
                  f"{share(sum(r['cured'] for r in group), len(group))}")  # fmt: skip
    print(f"wall time: {wall:.0f}s on {PROCESSES} processes, one torch thread each")


PROCESSES = 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds")
    parser.add_argument("--quick", action="store_true", help="the wine MLP, three doses")
    parser.add_argument("--model", nargs="+", choices=MODELS, default=MODELS)
    parser.add_argument("--data", nargs="+", choices=DATASETS, default=DATASETS)
    parser.add_argument("--dose", nargs="+", choices=list(DOSES), default=list(DOSES))
    parser.add_argument("--keep", metavar="DIR", help="keep each round's run, read and treatment")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        sys.exit(why)
    start = time.perf_counter()
    work = tasks(args.seed, args.quick, args.model, args.data, args.dose, args.keep)
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        results = list(pool.imap_unordered(run_dose, work))
    report(judged(results), time.perf_counter() - start)


if __name__ == "__main__":
    main()
