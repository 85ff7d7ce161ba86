"""--html: one self-contained page of SVG charts for every command that draws one."""

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path

import pytest

import main

ROOT = Path(__file__).resolve().parent.parent

MODES = {
    "lesson": ["lesson"],
    "examination": ["examine", "dead", "--epochs", "12"],
    "treatment": ["treat", "collapsed", "--epochs", "10", "--samples", "20"],
    "seeds": ["seeds", "dead", "--pairs", "2", "--epochs", "10"],
    "glorot-bengio": ["experiment", "glorot-bengio"],
    "he": ["experiment", "he"],
}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Each mode's page, and the JSON records of the examination and treatment.
    The he experiment (~3 s) runs as a process of its own meanwhile, on the other core."""
    folder = tmp_path_factory.mktemp("pages")
    argv = [*MODES["he"], "--html", str(folder / "he.html")]
    he = subprocess.Popen(
        [sys.executable, "main.py", *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    written = {}
    try:
        for mode, argv in MODES.items():
            if mode == "he":
                continue
            page, records = folder / f"{mode}.html", folder / f"{mode}.jsonl"
            extra = ["--json", str(records)] if mode in ("examination", "treatment") else []
            main.command_line([*argv, "--html", str(page), *extra])
            written[mode] = page.read_text(encoding="utf-8")
            if extra:
                written[mode + " records"] = [json.loads(line) for line in records.open()]
        _, err = he.communicate(timeout=120)
    finally:
        if he.poll() is None:
            he.kill()
        he.wait()
        he.stderr.close()
    assert (he.returncode, err) == (0, "")
    written["he"] = (folder / "he.html").read_text(encoding="utf-8")
    return written


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_writes_a_page_that_parses_and_fetches_nothing(mode, pages):
    page = pages[mode]
    parser = Tags()
    parser.feed(page)
    assert parser.tags[:4] == ["html", "head", "meta", "title"] and "svg" in parser.tags
    assert "script" not in parser.tags
    # Nothing points outside the file: no link, source or url(); the only
    # address is the SVG namespace, a name and not a fetch.
    assert not [name for name, _ in parser.attributes if name in ("href", "src", "srcset")]
    assert "url(" not in page and "@import" not in page
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL):
        ElementTree.fromstring(svg)  # well-formed XML, or it raises


def charts(page):
    return re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL)


def series_titles(page, chart_title):
    """The <title> of each series in the chart of this title: name -> {x: shown y}."""
    svg = next(s for s in charts(page) if f"<title>{chart_title}</title>" in s)
    found = {}
    for title in re.findall(r"<g><title>(.*?)</title>", svg):
        name, _, values = title.partition(": ")
        pairs = (pair.split(": ") for pair in values.split(", "))
        found[name.split(" (")[0]] = {float(x): y for x, y in pairs}
    return found


def test_the_charts_hover_the_json_records_numbers_as_the_text_chart_prints_them(pages):
    page, records = pages["examination"], pages["examination records"]
    loss = series_titles(page, "loss, the temperature")["mean loss"]
    assert loss == {r["epoch"]: main.format_loss(r["loss"]) for r in records}
    for key, title, *_ in main.TRENDS:
        if key in main.ACTIVATIONS["relu"].not_applicable:
            continue
        lines = series_titles(page, title)
        for layer in range(4):
            widths = records[0]["layer_widths"][layer + 1] if key == "dead_count" else 1
            expected = {r["epoch"]: main.SHOWN[key](r[key][layer] / widths) for r in records}
            assert lines[f"layer {layer + 1}"] == expected, (key, layer)
    # Three digits, so a small std shows which side of its 0.001 limit it is on.
    first_std = records[0]["activation_std"][0]
    assert series_titles(page, "activation std")["layer 1"][1] == f"{first_std:.3g}"


def test_a_treatment_page_tells_each_round_with_its_reasons_on_its_own_axes(pages):
    page, records = pages["treatment"], pages["treatment records"]
    rounds = sorted({record["round"] for record in records})
    assert [f"round {number}:" in page for number in rounds] == [True] * len(rounds)
    assert page.count("<b>outcome: ") == 1
    assert page.count("<li>") >= len(rounds) - 1 and "answers " in page  # the reasons, in words
    story = series_titles(page, "loss, round by round")
    assert sorted(story) == [f"round {number}" for number in rounds]


def test_warning_limits_are_grey_labelled_and_their_region_in_the_legend(pages):
    page = pages["examination"]
    assert f"<title>warns below {main.VANISHING_GRAD_STD:g}</title>" in page
    assert f">warns above {main.EXPLODING_GRAD_STD:g}</text>" in page
    assert f'stroke="{main.LIMIT}"' in page and main.LIMIT not in main.PALETTE
    assert page.count(f'fill="{main.TINT}"') >= 6
    assert ">beyond a warning limit</text>" in page


def test_exact_zeros_sit_in_a_band_of_their_own_labelled_0():
    reports = main.examine(main.patient("sick", epochs=3), main.samples_for(main.patient("sick")))
    svg = main.chart("g", "epoch", "std", main.layer_series(reports, "gradient_std"), True)
    assert ">0</text>" in svg  # the band's label
    frame = main.chart_frame(main.layer_series(reports, "gradient_std"), True, None, (), None, 400)
    assert frame.zeros and frame.y(0.0) > frame.floor > frame.y(frame.low)


def test_no_line_sits_on_the_frame():
    frame = main.chart_frame(
        [("a", [(1, 0.0), (2, 1.0)], "line")], False, (0.0, 1.0), (), None, 400
    )
    assert main.TOP < frame.y(1.0) < frame.y(0.0) < frame.bottom


DISEASE_CHARTS = {  # patient, epochs enough for its first sign: the title of its lead chart
    ("dead", 8): "layer 1: each neuron, epoch by epoch",
    ("vanishing", 2): "gradient std by depth",
    ("exploding", 2): "gradient std by depth",
    ("saturated", 2): "epoch 1: activations",
    ("collapsed", 2): "activation std by depth",
    ("healthy", 3): "loss, the temperature",
}


@pytest.mark.parametrize(("name", "epochs"), DISEASE_CHARTS)
def test_each_disease_leads_with_the_chart_that_shows_it(name, epochs):
    dosing = main.patient(name, epochs=epochs)
    lead = main.examination_charts(dosing, main.examine(dosing, main.samples_for(dosing)))[0]
    assert f"<title>{DISEASE_CHARTS[name, epochs]}</title>" in lead


def test_a_dead_neuron_is_drawn_in_the_never_colour_as_its_json_says(pages):
    page, records = pages["examination"], pages["examination records"]
    never = sum(share == 0.0 for r in records for layer in r["firing_share"] for share in layer)
    assert never > 0 and page.count(f'fill="{main.NEVER}"') >= never


def test_several_patients_open_with_one_comparison_and_every_loss_has_chance():
    runs = []
    for name in ("healthy", "sick"):
        dosing = main.patient(name, epochs=3)
        runs.append((dosing, main.examine(dosing, main.samples_for(dosing))))
    comparison, *sections = main.page_sections(runs)
    assert comparison.startswith("<section><h2>Side by side") and len(sections) == 2
    assert sorted(series_titles(comparison, "loss, the temperature")) == ["healthy", "sick"]
    for svg in (s for page in (comparison, *sections) for s in charts(page)):
        if "cross-entropy" in svg:
            assert "chance, ln 4 = 1.386" in svg


def test_the_seeds_page_counts_epochs_in_whole_numbers_and_names_kinds_as_the_table(pages):
    svg = next(s for s in charts(pages["seeds"]) if "first epoch of each warning" in s)
    ticks = re.findall(r'text-anchor="end"[^>]*>([^<]*)<', svg)
    assert ticks and all(tick.isdigit() for tick in ticks)
    assert ">dead</text>" in svg and ">neurons</text>" in svg  # "dead neurons", two lines


def test_the_axes_have_round_ticks():
    assert main.axis(0.13, 4.2, True) == (0.1, 5.0, [0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
    assert main.axis(0.013, 4.2, True) == (0.01, 10.0, [0.01, 0.1, 1.0, 10.0])
    assert main.axis(1e-9, 3e3, True) == (1e-9, 1e4, [1e-9, 1e-6, 1e-3, 1.0, 1e3])
    assert main.axis(0.0, 0.83, False) == (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert main.axis(3.0, 27.0, False)[2] == [0, 5, 10, 15, 20, 25, 30]


def test_the_gradient_histogram_counts_each_layers_gradients_by_decade():
    monitor = main.ExamMonitor([2, 3, 2])
    trace = {"pre_activations": [[1.0, 1.0, 1.0], [0.0, 0.0]],
             "post_activations": [[1.0, 1.0, 1.0], [0.5, 0.5]]}  # fmt: skip
    monitor.record(trace, [[0.0, -3e-4, 20.0], [0.1, -0.1]])
    counts = monitor.report()["gradient_histogram"][0]
    labels = main.GRADIENT_LABELS
    assert dict(zip(labels, counts)) == {label: 0 for label in labels} | {
        "= 0": 1,
        "<= 1e-03": 1,
        "> 1e+01": 1,
    }
