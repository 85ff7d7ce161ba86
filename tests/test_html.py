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
    "seeds": ["seeds", "healthy", "--pairs", "2", "--epochs", "3"],
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


def series_titles(page, chart_title):
    """The <title> of each series in the chart of this title: name -> {x: y}."""
    svg = next(s for s in re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL)
               if f"<title>{chart_title}</title>" in s)  # fmt: skip
    found = {}
    for title in re.findall(r"<g><title>(.*?)</title>", svg):
        name, _, values = title.partition(": ")
        name = name.split(";")[0]
        pairs = (pair.split(": ") for pair in values.split(", "))
        found[name] = {float(x): float(y) for x, y in pairs}
    return found


def test_the_charts_hold_the_json_records_numbers(pages):
    """Every value behind the loss and the readings, exactly as in the JSON."""
    page, records = pages["examination"], pages["examination records"]
    loss = series_titles(page, "loss")["mean loss"]
    assert loss == {record["epoch"]: record["loss"] for record in records}
    for key, title, *_ in main.TRENDS:
        if key in main.ACTIVATIONS["relu"].not_applicable:
            continue
        lines = series_titles(page, title)
        for layer in range(4):
            widths = records[0]["layer_widths"][layer + 1] if key == "dead_count" else 1
            expected = {r["epoch"]: r[key][layer] / widths for r in records}
            assert lines[f"layer {layer + 1}"] == expected, (key, layer)


def test_a_treatment_page_shows_every_round_on_the_same_axes(pages):
    page, records = pages["treatment"], pages["treatment records"]
    rounds = sorted({record["round"] for record in records})
    assert [f"round {number}:" in page for number in rounds] == [True] * len(rounds)
    assert page.count("<b>outcome: ") == 1
    # The same axes: every round's loss chart has the same ticks.
    losses = [s for s in re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL) if "<title>loss<" in s]
    ticks = [re.findall(r'text-anchor="end"[^>]*>([^<]*)<', svg) for svg in losses]
    assert len(losses) == len(rounds) and all(t == ticks[0] for t in ticks)


def test_warning_limits_are_drawn_with_the_region_beyond_tinted(pages):
    page = pages["examination"]
    assert f"<title>a warning below {main.VANISHING_GRAD_STD:g}</title>" in page
    assert f"<title>a warning above {main.EXPLODING_GRAD_STD:g}</title>" in page
    assert page.count(f'fill="{main.TINT}"') >= 6


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
        "1e-03": 1,
        "> 1e+01": 1,
    }
