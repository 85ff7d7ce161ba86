"""read: a run recorded elsewhere, examined as examine would have examined it."""

import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import main

ROOT = Path(__file__).resolve().parent.parent


def run(argv):
    """main.run(argv) in this process, with the stops it holds at its end let go again."""
    with main.stops_held():  # held, a process started later (test_signals') would inherit them
        return main.run(argv)


SLOW_PATIENTS = [
    pytest.param(name, marks=pytest.mark.slow) for name in main.PATIENTS if name != "dead"
]


@pytest.fixture(scope="module")
def written(tmp_path_factory, request):
    """Each patient's `examine --json` file, its printed examination and its page section."""
    folder, runs = tmp_path_factory.mktemp("runs"), {}
    chosen = {item.callspec.params.get("name") for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec")}  # fmt: skip
    for name in [name for name in main.PATIENTS if name in chosen | {"vanishing"}]:
        dosing = main.patient(name)
        reports = main.examine(dosing, main.samples_for(dosing))
        path = folder / f"{name}.jsonl"
        lines = [json.dumps(record) for record in main.json_records(dosing, reports)]
        path.write_text("\n".join(lines) + "\n")
        runs[name] = (path, dosing, reports)
    return runs


@pytest.mark.parametrize("name", ["dead", *SLOW_PATIENTS])
def test_reading_back_examine_json_gives_the_same_examination_and_page(name, written, capsys):
    path, dosing, reports = written[name]
    main.print_examination(dosing, reports, main.REPORT_EVERY)
    examined = capsys.readouterr().out
    read = main.read_run(str(path))
    again = main.run_dosing(str(path), read)
    for report in read:
        report["warnings"], report["calm"] = main.examination_warnings(report)
    main.print_examination(again, read, main.REPORT_EVERY)
    assert capsys.readouterr().out == examined  # first sign, verdict, warnings, charts, trends
    assert main.examination_section(again, read) == main.examination_section(dosing, reports)


def test_the_prescription_is_spelled_as_pytorch_spells_it(written):
    path, _, _ = written["vanishing"]
    reports = main.read_run(str(path))
    dosing = main.run_dosing(str(path), reports)
    for report in reports:
        report["warnings"], report["calm"] = main.examination_warnings(report)
    lines, _ = main.prescription_lines(dosing, reports)
    assert lines[1].startswith("- xavier init (in PyTorch: torch.nn.init.xavier_normal_(")


def test_a_record_of_only_the_lessons_readings_is_examined_skipping_the_rest(tmp_path):
    record = {"epoch": 1, "loss": 1.2, "activation_mean": [0.5], "activation_std": [0.9],
              "gradient_std": [1e-6], "gradient_max": [1e-5], "dead_count": [0],
              "saturation_rate": [0.0], "layer_neuron_count": [8],
              "histogram": [[1] * 10]}  # fmt: skip
    path = tmp_path / "lesson.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps({**record, "epoch": 2}) + "\n")
    result = subprocess.run([sys.executable, "main.py", "read", str(path)], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"(not in {path}: update_ratio, nonfinite_count")
    assert "Layer 1: gradient std 1.00e-06 (vanishing)" in result.stdout
    assert "update/weight ratio" not in result.stdout


def test_nan_and_infinity_are_read_as_such_and_reported(tmp_path):
    record = {"epoch": 1, "loss": float("nan"), "activation_mean": [float("inf")],
              "activation_std": [None], "gradient_std": [1.0], "gradient_max": [1.0],
              "dead_count": [0], "saturation_rate": [0.0], "layer_neuron_count": [4],
              "histogram": [[0] * 10], "nonfinite_count": [3]}  # fmt: skip
    path = tmp_path / "diverged.jsonl"
    path.write_text(json.dumps(record) + "\n")  # json writes NaN and Infinity
    (report,) = main.read_run(str(path))
    assert math.isnan(report["loss"]) and report["activation_mean"] == [math.inf]
    assert math.isnan(report["activation_std"][0])  # null: no value
    assert "non-finite values" in {w.kind for w in main.examination_warnings(report)[0]}


GOOD = ('{"epoch": 1, "loss": 1.0, "activation_mean": [0.1, 0.2], "activation_std": [1, 1], '
        '"gradient_std": [0.1, 0.1], "gradient_max": [1, 1], "dead_count": [0, 0], '
        '"saturation_rate": [0, 0], "layer_neuron_count": [4, 4], '
        '"histogram": [[1, 1, 1, 1, 1, 1, 1, 1, 1, 1], '
        '[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]}')  # fmt: skip
BAD_INPUTS = {  # file content (None: no file; "/": a folder): the end of the one error line
    None: "no such file",
    "/": "no such file",
    "": "no record in it",
    "{not json\n": "line 1: not JSON (Expecting property name enclosed in double quotes)",
    "[1, 2]\n": "line 1: not a JSON object",
    GOOD.replace('"loss": 1.0, ', "") + "\n": "line 1, key 'loss': missing",
    GOOD.replace('"dead_count": [0, 0], ', "") + "\n": "line 1, key 'dead_count': missing",
    GOOD.replace('"gradient_max": [1, 1]', '"gradient_max": [1]') + "\n":
        "line 1, key 'gradient_max': give one value per hidden layer (2)",
    GOOD + "\n" + GOOD.replace('"epoch": 1', '"epoch": 2').replace("[0.1, 0.2]", "[0.1]") + "\n":
        "line 2, key 'activation_mean': give one value per hidden layer (2)",
    GOOD.replace('"epoch": 1', '"epoch": 3') + "\n" + GOOD.replace('"epoch": 1', '"epoch": 2')
        + "\n": "line 2, key 'epoch': 2 comes after 3",
    GOOD.replace('"gradient_std": [0.1, 0.1]', '"gradient_std": ["0.1", 0.1]') + "\n":
        "line 1, key 'gradient_std': '0.1' is not a number (or null, NaN, Infinity)",
    GOOD.replace('"gradient_std": [0.1, 0.1]', '"gradient_std": [-0.1, 0.1]') + "\n":
        "line 1, key 'gradient_std': -0.1 is not from 0 to inf",
    GOOD.replace('"loss": 1.0', '"loss": "NaN"') + "\n":
        "line 1, key 'loss': 'NaN' is not a number (or null, NaN, Infinity)",
    GOOD.replace('"epoch": 1', '"epoch": 1, "activation": "tanh"') + "\n":
        "line 1, key 'histogram': give a list of 7 numbers per hidden layer (2)",
    GOOD.replace('"epoch": 1', '"epoch": 1, "activation": "gelu?"') + "\n":
        f"line 1, key 'activation': 'gelu?' is not one of {', '.join(main.ACTIVATIONS)}",
    GOOD.replace('"epoch": 1', '"epoch": 1, "label": 7') + "\n":
        "line 1, key 'label': 7 is not a string",
    GOOD.replace('"epoch": 1', '"epoch": 1, "layer_widths": [8, 4, 5, 3]') + "\n":
        "line 1, key 'layer_widths': not inputs, each layer's, outputs",
    GOOD.replace('"epoch": 1', '"epoch": 1, "layer_widths": [8, 4, "4", 3]') + "\n":
        "line 1, key 'layer_widths': [8, 4, '4', 3] is not a list of whole numbers from 1",
    GOOD.replace('"layer_neuron_count": [4, 4]', '"layer_neuron_count": [4, 0]') + "\n":
        "line 1, key 'layer_neuron_count': 0 is not from 1 to 9.0072e+15",
    GOOD.replace('"dead_count": [0, 0]', '"dead_count": [0, 5]') + "\n":
        "line 1, key 'dead_count': more than the layer's neurons",
    GOOD.replace('"dead_count": [0, 0]', '"dead_count": [0, 1.5]') + "\n":
        "line 1, key 'dead_count': give whole numbers",
    GOOD.replace('"saturation_rate": [0, 0]', '"saturation_rate": [0, 1.5]') + "\n":
        "line 1, key 'saturation_rate': 1.5 is not from 0 to 1",
    GOOD.replace('"loss": 1.0', '"loss": 1' + "0" * 400) + "\n":
        f"line 1, key 'loss': {'1' + '0' * 59} is not a number (or null, NaN, Infinity)",
    GOOD.replace('"epoch": 1', '"epoch": 1, "update_ratio": [0.1, 0.1]') + "\n" + GOOD.replace(
        '"epoch": 1', '"epoch": 2, "update_ratio": {}') + "\n":
        "line 2, key 'update_ratio': give one value per hidden layer (2)",
    GOOD.replace('"epoch": 1', '"epoch": 1, "update_ratio": [0.1, 0.1]') + "\n" + GOOD.replace(
        '"epoch": 1', '"epoch": 2') + "\n":
        "line 2, key 'update_ratio': in some of the run's records only",
    GOOD.replace('"epoch": 1', '"epoch": 1, "layer_names": ["1", 3]') + "\n":
        "line 1, key 'layer_names': give a name per hidden layer (2)",
    GOOD.replace('"epoch": 1', '"epoch": 1, "layer_positions": [1]') + "\n":
        "line 1, key 'layer_positions': give a whole number from 1 per hidden layer (2)",
    GOOD.replace('"epoch": 1', '"epoch": 1, "init_std": [0.1, -1]') + "\n":
        "line 1, key 'init_std': give a std above 0 per hidden layer (2)",
    GOOD.replace('"epoch": 1', '"epoch": 1, "fan_in": [8, 0]') + "\n":
        "line 1, key 'fan_in': give a count per hidden layer (2)",
}  # fmt: skip


@pytest.mark.parametrize("content", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_each_bad_input_is_one_line_naming_file_line_and_key(content, tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    if content == "/":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    assert (run(["read", str(path)]), capsys.readouterr()) == (2, ("", (
        f"main.py read: error: {path}: {BAD_INPUTS[content]}\n".replace(
            f"{path}: line", f"{path}, line")
    )))  # fmt: skip


def test_a_file_too_large_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.jsonl"
    path.write_text(GOOD + "\n")
    monkeypatch.setattr(main, "MAX_RUN_BYTES", 10)
    with pytest.raises(main.UnreadableRun, match=r"huge.jsonl: \d+ bytes, more than 10"):
        main.read_run(str(path))


# What trips each kind of warning, and what makes each condition hold, in a read run's records.
KIND_READINGS = {
    "non-finite values": {"nonfinite_count": [3, 0]},
    "exploding gradients": {"gradient_std": [50.0, 50.0]},
    "update too large": {"update_ratio": [0.5, 0.5]},
    "saturation": {"saturation_rate": [0.5, 0.5]},
    "dead neurons": {"dead_count": [8, 8]},
    "signal collapse": {"activation_std": [1e-5, 1e-5]},
    "vanishing gradients": {"gradient_std": [1e-6, 1e-6]},
    "update too small": {"update_ratio": [1e-7, 1e-7]},
    "no progress": {},
}
CONDITION_RECORDS = {
    "always": {},
    "init too large": {"init_mode": "bad", "weight_scale_override": 10.0},
    "init too small": {"init_mode": "bad", "weight_scale_override": 1e-3},
    "init off by 2x": {"init_mode": "bad", "weight_scale_override": 10.0},
    "fast steps": {"update_ratio": [0.05, 0.05]},  # 7x the steady steps, under the warning
    "slow steps": {"update_ratio": [1e-3, 1e-3]},
    "ReLU": {"activation": "relu"},
    "still falling": {},  # every run below falls 10% or more over its last five epochs
}
IN_PYTORCH = {  # treatment: how its line must spell it
    "the activation's init": 'torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")',
    "steady learning rate": "the optimizer's lr times ",
    "learning rate x 2": "the optimizer's lr times 2)",
    "learning rate x 0.5": "the optimizer's lr times 0.5)",
    "gradient clipping": "torch.nn.utils.clip_grad_norm_(model.parameters(), 1)",
    "layer norm": "torch.nn.LayerNorm(width) before each activation (conv: GroupNorm(1, C))",
    "leaky ReLU": "torch.nn.LeakyReLU(0.01)",
    "Adam": "torch.optim.Adam(model.parameters(), lr=0.003)",
    "train longer": "(in PyTorch: train for 24 epochs)",
}


TREATMENT_NAMES = {  # treatment: how the names it is given in the runs above start
    "the activation's init": "kaiming init",
    "steady learning rate": "learning rate x ",
    "learning rate x 2": "learning rate x 2",
    "learning rate x 0.5": "learning rate x 0.5",
    "gradient clipping": "gradient clipping at 1",
    "layer norm": "layer norm",
    "leaky ReLU": "leaky ReLU",
    "Adam": "Adam at lr=0.003",
    "train longer": "24 epochs instead of 12",
}


def a_run(path, losses, **changes):
    """A read run of two hidden layers of 16 (layer_widths 8-16-16-4): healthy but for changes."""
    healthy = {"activation_mean": [0.5, 0.5], "activation_std": [0.5, 0.5],
               "gradient_std": [1e-2, 1e-2], "gradient_max": [0.1, 0.1], "dead_count": [0, 0],
               "saturation_rate": [0.0, 0.0], "layer_neuron_count": [16, 16],
               "histogram": [[1] * 10] * 2, "update_ratio": [7e-3, 7e-3],
               "nonfinite_count": [0, 0], "layer_widths": [8, 16, 16, 4],
               "init_mode": "kaiming", "learning_rate": 0.05, "activation": "relu"}  # fmt: skip
    records = [{**healthy, **changes, "epoch": n, "loss": loss} for n, loss in enumerate(losses, 1)]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


@pytest.mark.parametrize("row", main.PRESCRIPTIONS, ids=" ".join)
def test_every_row_of_the_table_reaches_a_read_run_spelled_in_pytorch(
    row, tmp_path, monkeypatch, capsys
):
    kind, condition, treatment = row
    monkeypatch.setattr(main, "PRESCRIPTIONS", (row,))  # this row alone can answer
    losses = [5.0 - 0.3 * epoch for epoch in range(12)]  # to 1.7, above chance for 4 classes
    path = a_run(
        tmp_path / "run.jsonl", losses, **{**CONDITION_RECORDS[condition], **KIND_READINGS[kind]}
    )
    assert run(["read", path, "--json", str(tmp_path / "given.jsonl")]) == 0
    given = capsys.readouterr().out.split("prescription (nothing is treated here")[1]
    assert given.splitlines()[1].startswith("- ")
    assert IN_PYTORCH[treatment] in given.splitlines()[1]
    assert f"answers {kind} " in given.splitlines()[1]
    (data,) = json.loads((tmp_path / "given.jsonl").read_text().splitlines()[-1])["prescription"]
    assert data["answers"].startswith(f"{kind} ")
    assert data["name"].startswith(TREATMENT_NAMES[treatment])
    assert data["change"] and f"- {data['name']} (in PyTorch: {data['in_pytorch']})" in given


REQUIRED = {"activation_mean": [0.5, 0.5], "activation_std": [0.5, 0.5],
            "gradient_std": [1e-2, 1e-2], "gradient_max": [0.1, 0.1], "dead_count": [0, 0],
            "saturation_rate": [0.0, 0.0], "layer_neuron_count": [16, 16],
            "histogram": [[1] * 10] * 2}  # fmt: skip


def test_nan_from_epoch_1_with_only_the_required_keys_is_the_non_finite_warning(tmp_path, capsys):
    nan = {key: [math.nan, math.nan] for key in main.RUN_READINGS[:4]}
    records = [{**REQUIRED, **nan, "epoch": n, "loss": math.nan} for n in range(1, 13)]
    path = tmp_path / "overflowed.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert run(["read", str(path)]) == 0
    out = capsys.readouterr().out
    assert "verdict: training diverged at epoch 1 (loss NaN); first warning at epoch 1" in out
    assert "loss then NaN: Layer 1: 4 non-finite readings (NaN/inf) (+1 more warning)" in out
    assert "answers non-finite values at epoch 1" in out.split("prescription")[1]


def test_an_infinite_loss_alone_is_the_non_finite_warning_at_its_epoch(tmp_path, capsys):
    losses = [1.3, 1.2, math.inf, 1.1]
    records = [{**REQUIRED, "epoch": n, "loss": loss} for n, loss in enumerate(losses, 1)]
    path = tmp_path / "spike.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert run(["read", str(path)]) == 0
    out = capsys.readouterr().out
    assert "first warning at epoch 3, loss then inf (epoch 1: 1.3000): Output: loss inf" in out


ODD_VALUES = [None, "0.1", "", [], [1.0], {}, {"a": 1}, True, False, 0, -1, -1e300, 1e300,
              10**30, 10**400, math.nan, math.inf, -math.inf, 0.5, 2**53 + 1]  # fmt: skip


def mutated(lines, rng):
    """lines with one to three mutations: a key deleted or given an odd value (a whole reading's
    or one number's in it), a line cut, duplicated or dropped."""
    lines = list(lines)
    for _ in range(rng.randint(1, 3)):
        index, how = rng.randrange(len(lines)), rng.choice(["delete", "odd", "odd", "cut", "twice"])
        try:
            record = json.loads(lines[index])
        except ValueError:  # a line cut before
            record = None
        if how in ("delete", "odd") and isinstance(record, dict) and record:
            key = rng.choice(sorted(record))
            if how == "delete":
                del record[key]
            elif isinstance(record[key], list) and record[key] and rng.random() < 0.5:
                inner = record[key][rng.randrange(len(record[key]))]
                target = inner if isinstance(inner, list) and inner else record[key]
                target[rng.randrange(len(target))] = rng.choice(ODD_VALUES)
            else:
                record[key] = rng.choice(ODD_VALUES)
            lines[index] = json.dumps(record)
        elif how == "cut":
            lines[index] = lines[index][: rng.randrange(len(lines[index]) + 1)]
        elif how == "twice":
            lines.insert(index, lines[index])
        else:
            del lines[index]
    return lines


@pytest.mark.slow  # 1,200 reads, a page drawn for one in ten: about 10 seconds
def test_a_thousand_mutated_files_are_each_read_or_refused_in_one_line(tmp_path, capsys):
    source = tmp_path / "examined.jsonl"
    patients = ["healthy", "saturated", "exploding", "collapsed"]  # 3 activations; 4, 2 layers
    args = ["examine", *patients, "--epochs", "3", "--json", str(source)]
    assert run(args) == 0
    lines, rng, statuses = source.read_text().splitlines(), random.Random(2026), []
    capsys.readouterr()
    for trial in range(1200):
        path = tmp_path / f"mutant{trial % 10}.jsonl"
        path.write_text("".join(line + "\n" for line in mutated(lines, rng)))
        page = ["--html", str(tmp_path / "page.html")] if trial % 10 == 0 else []
        statuses.append(run(["read", str(path), *page]))  # any other exception fails
        out, err = capsys.readouterr()
        if statuses[-1] == 2:
            assert out == "" and err.startswith(f"main.py read: error: {path}")
            assert err.count("\n") == 1, err
        else:
            assert statuses[-1] == 0 and err == "", err
    assert 100 < statuses.count(2) < 1100  # both read and refused, many times


def examinations(read_output):
    """What read printed, run by run, without its prescriptions (or the note of what is missing)."""
    text = re.sub(r"^\(not in .*\n\n", "", read_output)
    return re.split(r"^prescription.*?\n\n", text, flags=re.MULTILINE | re.DOTALL)[:-1]


def written_and_read(argv, tmp_path, capsys):
    """What a command printed with --json, and what read printed of its file."""
    path = str(tmp_path / "written.jsonl")
    assert run([*argv, "--json", path]) == 0
    printed = capsys.readouterr().out
    assert run(["read", path]) == 0
    return printed, capsys.readouterr().out


def test_examine_json_of_two_patients_is_read_as_examine_printed_each(tmp_path, capsys):
    examined, read = written_and_read(
        ["examine", "healthy", "sick", "--epochs", "12"], tmp_path, capsys
    )
    runs = examinations(read)
    assert [run.splitlines()[0][:8] for run in runs] == ["=== HEAL", "=== SICK"]
    assert "".join(runs) + f"wrote 24 reports to {tmp_path / 'written.jsonl'}\n" == examined
    assert read.count("\nprescription") == 2


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["lesson"], ["treat", "sick"]], ids=" ".join)
def test_every_run_of_a_lesson_or_treat_json_file_is_examined(argv, tmp_path, capsys):
    printed, read = written_and_read(argv, tmp_path, capsys)
    runs = examinations(read)
    assert len(runs) == (2 if argv == ["lesson"] else printed.count("\nprescription, round") + 1)
    for run, label in zip(runs, re.findall(r"^=== (.*) \| epoch 1 \|", printed, re.MULTILINE)):
        assert run.startswith(f"=== {label} | epoch 1 |")  # each run's own label
        assert run.count("\nverdict: ") == 1
        if argv != ["lesson"]:  # treat prints each round's examination as examine does
            assert run in printed


def test_a_read_run_that_warned_once_and_ends_well_is_prescribed_nothing(tmp_path, capsys):
    # Epoch 2 has 3 of 4 neurons dead in layer 1; the run recovers, and its loss falls
    # from 1.0 to 0.1: well at the end, so nothing is prescribed (the first sign is told).
    records = [json.loads(GOOD) | {"epoch": epoch, "loss": 1.0 / epoch} for epoch in range(1, 11)]
    records[1]["dead_count"] = [3, 0]
    (tmp_path / "run.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert run(["read", str(tmp_path / "run.jsonl")]) == 0
    printed = capsys.readouterr().out
    assert "verdict: first warning at epoch 2" in printed
    assert printed.rstrip().endswith("prescription: nothing: it is well.")


def test_a_recorded_init_std_gives_the_init_conditions(tmp_path):
    # Two ReLU layers whose first weights had 4x Kaiming's std, sqrt(2 / fan-in): too large.
    record = json.loads(GOOD)
    record |= {"init_std": [4 * math.sqrt(2 / 8), 4 * math.sqrt(2 / 4)], "fan_in": [8, 4]}
    record |= {"fan_out": [4, 4]}
    (tmp_path / "run.jsonl").write_text(json.dumps(record) + "\n")
    reports = main.read_run(str(tmp_path / "run.jsonl"))
    dosing = main.run_dosing(str(tmp_path / "run.jsonl"), reports)
    assert main.init_scale(dosing, reports) == pytest.approx(4.0, rel=1e-12)
    assert main.CONDITIONS["init too large"](dosing, reports)
    record["init_std"] = [None, None]  # no weights feeding the layers: no telling
    (tmp_path / "run.jsonl").write_text(json.dumps(record) + "\n")
    reports = main.read_run(str(tmp_path / "run.jsonl"))
    assert main.init_scale(main.run_dosing(str(tmp_path / "run.jsonl"), reports), reports) == 1.0


def test_no_layer_widths_is_read_with_no_telling_of_the_init(tmp_path, capsys):
    records = [{**REQUIRED, "epoch": n, "loss": 1.0, "init_mode": "kaiming"} for n in (1, 2, 3)]
    path = tmp_path / "widthless.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert run(["read", str(path)]) == 0  # init_scale cannot divide by an unknown fan_in
    assert capsys.readouterr().out.startswith(f"(not in {path}: update_ratio, nonfinite_count")


# Losses of real runs, recorded with the README's recorder (torch.manual_seed(0), standardized
# features, two hidden ReLU layers of 16, batches of 32, SGD): scikit-learn's wine at lr 0.05
# (96.1% of the training set right at the end) and breast cancer at lr 0.02 (94.4%).
WINE = [1.1111, 1.0883, 1.0585, 1.038, 1.0102, 0.9881, 0.9502, 0.9131, 0.864, 0.817, 0.7591,
        0.7186, 0.6603, 0.5871, 0.5395]  # fmt: skip
CANCER = [0.7063, 0.6725, 0.6394, 0.6007, 0.5528, 0.497, 0.4392, 0.384, 0.3363, 0.2958, 0.2626,
          0.234]  # fmt: skip


@pytest.mark.parametrize(
    "losses, outputs, well",
    [
        ([3.47 + (2.74 - 3.47) * n / 11 for n in range(12)], 10, False),  # still above chance
        ([2.2 * (0.23 / 2.2) ** (n / 11) for n in range(12)], 10, True),
        (WINE, 3, True),
        (CANCER, 2, True),
        ([2.31 - 0.002 * n for n in range(12)], 10, False),  # below chance, but barely moving
    ],
    ids=["3.47 to 2.74", "2.20 to 0.23", "wine", "breast cancer", "flat at chance"],
)
def test_a_read_run_is_well_by_its_own_start_and_chance(losses, outputs, well, tmp_path, capsys):
    path = a_run(tmp_path / "run.jsonl", losses, layer_widths=[8, 16, 16, outputs])
    assert run(["read", path]) == 0
    given = capsys.readouterr().out.split("\nprescription")[1]
    assert given.startswith(": nothing: it is well.") == well
    assert ("answers no progress" in given) != well


def test_read_json_writes_each_epoch_with_the_prescription_as_data_and_reads_back(tmp_path, capsys):
    losses = [1.3 - 0.01 * n for n in range(6)]
    path = a_run(tmp_path / "run.jsonl", losses, gradient_std=[50.0, 50.0], dead_count=[8, 0])
    written = tmp_path / "examined.jsonl"
    assert run(["read", path, "--json", str(written)]) == 0
    printed = capsys.readouterr().out
    assert printed.endswith(f"wrote 6 reports to {written}\n")
    records = [json.loads(line) for line in written.read_text().splitlines()]
    assert [record["epoch"] for record in records] == [1, 2, 3, 4, 5, 6]
    assert records[0]["gradient_std"] == [50.0, 50.0] and "warnings" not in records[0]
    assert records[0]["prescription"] == [
        {"name": "gradient clipping at 1", "change": {"clip": 1.0},
         "in_pytorch": "torch.nn.utils.clip_grad_norm_(model.parameters(), 1)",
         "answers": "exploding gradients at epoch 1", "source": "Pascanu et al. 2013"},
        {"name": "leaky ReLU", "change": {"activation": "leaky_relu"},
         "in_pytorch": "torch.nn.LeakyReLU(0.01)", "answers": "dead neurons at epoch 1",
         "source": "Maas, Hannun and Ng 2013"},
    ]  # fmt: skip
    assert all(record["prescription"] == records[0]["prescription"] for record in records)
    assert run(["read", str(written)]) == 0  # what read writes, read reads
    assert capsys.readouterr().out.replace(str(written), path) == printed[: printed.index("wrote ")]
