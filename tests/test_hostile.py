"""User data is data (issue #21, item 4): the hostile fixture (fixtures/hostile, made by its
make_hostile.py) carries rich markup, ANSI and OSC-8 escapes, newlines, spreadsheet formulas,
``</script>`` and ``constructor`` / ``__proto__`` in its utm values, channel names, deal,
account, contact and touchpoint ids. Every verb runs on it through the CLI with exit 0; what
reaches the terminal is inert text; the CSVs hold no formula; JSON keeps the values exactly;
the report's charts draw in headless Chromium with the names on their axes.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.test_report_browser import browser, run_browser

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "fixtures" / "hostile"
CONFIG = HOSTILE / "attribution.toml"

sys.path.insert(0, str(HOSTILE))
from make_hostile import CHANNELS  # noqa: E402

#: a raw control character on the terminal (newline aside): none may reach it
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: a CSV cell a spreadsheet would run as a formula
FORMULA = re.compile(r"^[=+\-@\t\r]")
pytestmark = pytest.mark.slow  # every verb in a fresh process, and Chromium

NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")

VERBS = {
    "run": ["run", "--out", "{tmp}/out"],
    "run_json": ["run", "--out", "{tmp}/out_json", "--format", "json", "--model", "linear"],
    "compare": ["compare"],
    "validate": ["validate"],
    "paths": ["paths"],
    "scorecard": ["scorecard"],
    "budget": ["budget", "--model", "linear"],
    "report": ["report", "--output", "{tmp}/report.html"],
}


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess[str]]]:
    tmp = tmp_path_factory.mktemp("hostile")
    done = {}
    for name, args in VERBS.items():
        done[name] = cli(tmp, *[a.format(tmp=tmp) for a in args], "--config", str(CONFIG))
    done["paths_table"] = cli(tmp, "run", "--paths", str(HOSTILE / "paths.csv"),
                              "--channel-rules", str(HOSTILE / "channels.toml"),
                              "--max-reject-rate", "1",
                              "--out", str(tmp / "out_paths"))
    return tmp, done


@pytest.mark.parametrize("verb", [*VERBS, "paths_table"])
def test_every_verb_exits_0_and_prints_no_raw_control_character(runs, verb):
    _, done = runs
    result = done[verb]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Error" not in result.stderr
    for stream in (result.stdout, result.stderr):
        found = RAW_CONTROL.search(stream)
        assert found is None, (verb, repr(stream[max(0, found.start() - 40):found.end() + 40]))


def test_markup_in_names_prints_as_itself_and_escapes_are_shown(runs):
    _, done = runs
    table = done["run"].stdout
    for shown in ("[/]", "[link=https://evil.example]paid_search[/link]", "\\x1b[31mred\\x1b[0m",
                  "two\\nlines", ":thumbs_up:", "</script><script>alert(1)</script>",
                  "constructor", "__proto__", "[i]col[/i]"):
        assert f"│ {shown} " in table, shown


def test_the_unmapped_note_quotes_the_values_escaped(runs):
    _, done = runs
    assert (
        "unmapped utm source/medium, kept as '(unmapped)': \\x1b[2Jclear/=medium (2), "
        "-1+1/=medium (2), [/]unmapped/=medium (2), [bold]loud[/bold]/=medium (2), "
        "\\u202eevil/=medium (2); add rules with --channel-rules"
    ) in done["run"].stderr


def test_csv_outputs_hold_no_formula(runs):
    tmp, _ = runs
    files = sorted((tmp / "out").glob("*.csv")) + sorted((tmp / "out_paths").glob("*.csv"))
    assert {f.name for f in files} >= {"credit.csv", "summary.csv", "comparison.csv"}
    for path in files:
        frame = pl.read_csv(path, infer_schema=False)
        for column in frame.columns:
            for value in frame.get_column(column).drop_nulls():
                assert not FORMULA.match(value) or NUMBER.match(value), (path.name, column, value)
    # the formula-like names are there, neutralised and quoted
    summary = (tmp / "out" / "summary.csv").read_text("utf-8")
    channels = set(pl.read_csv(tmp / "out" / "summary.csv", infer_schema=False)["channel"])
    assert {"'=1+2", "'=HYPERLINK(\"https://evil.example\",\"x\")", "constructor", "__proto__",
            "[/]", "two\nlines", "\x1b[31mred\x1b[0m"} <= channels
    assert '"\'=HYPERLINK(""https://evil.example"",""x"")"' in summary
    deals = set(pl.read_csv(tmp / "out" / "credit.csv", infer_schema=False)["deal_id"])
    assert {"'=D1", "'=D3", "__proto__0\x1b[0m"} <= deals


def test_json_keeps_the_values_exactly(runs):
    _, done = runs
    records = json.loads(done["run_json"].stdout)
    channels = {r["channel"] for r in records}
    assert set(CHANNELS) <= channels  # every rule's channel, byte for byte
    assert "=1+2" in channels  # the channel column's "\t=1+2", trimmed on reading


# -- the report in a real browser ---------------------------------------------------------------
def axis_labels(dom: str, name: str) -> list[str]:
    at = dom.find(f'id="chart-{name}"')
    assert at >= 0, name
    following = dom.find('id="chart-', at + 10)
    chunk = dom[at: following if following > 0 else len(dom)]
    labels = []
    axis = r'<g class="mark-text role-axis-label"[^>]*>(.*?)</g>'
    for group in re.finditer(axis, chunk, re.DOTALL):
        texts = re.findall(r"<text[^>]*>(.*?)</text>", group.group(1), re.DOTALL)
        labels += [html.unescape(text) for text in texts]
    return labels


def shown_as(label: str, name: str) -> bool:
    """Vega cuts long labels with an ellipsis."""
    return label == name or (label.endswith("…") and name.startswith(label[:-1]))


def test_report_charts_render_with_every_name_on_the_axes(runs):
    browser()
    tmp, _ = runs
    report = tmp / "report.html"
    page = report.read_text("utf-8")
    assert "<script>alert(1)" not in page.split("<script>", 1)[0]  # escaped in the HTML text
    rendered = run_browser(["--dump-dom", report.as_uri()], tmp / "profile")
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    dom = rendered.stdout
    assert "data-errors" not in dom.split(">", 2)[1], dom[:500]
    charts = re.findall(r'id="chart-([a-z_]+)"', dom)
    assert set(charts) >= {"credit_by_model", "shift", "group_share", "journey_flow",
                           "transitions", "removal_effects"}
    for name in charts:
        tag = dom[dom.rfind("<", 0, dom.find(f'id="chart-{name}"')):]
        tag = tag[:tag.find(">") + 1]
        assert 'data-rendered="true"' in tag and "data-error" not in tag, (name, tag)
    summary = pl.read_csv(tmp / "out" / "summary.csv", infer_schema=False)
    expected = {v.lstrip("'") if v.startswith("'=") else v
                for v in summary.get_column("channel").to_list()}
    names = {n.replace("\x1b", "\\x1b").replace("\n", "\\n") for n in expected}
    for chart in ("credit_by_model", "removal_effects", "transitions"):
        labels = [label for label in axis_labels(dom, chart)
                  if not re.match(r"^[−$\d.,%k\s]+$", label)]  # the value axis
        assert labels, chart
        for label in labels:  # every channel label is a channel's name, escaped
            assert any(shown_as(label, n) for n in names | {"Start", "Won", "Not won"}), (
                chart, label)
        for name in ("constructor", "__proto__", "[/]", "toString", "two\\nlines"):
            assert name in labels, (chart, name, labels)


def test_an_error_is_one_escaped_line(tmp_path):
    missing = tmp_path / "a\x1b[31m\nb.toml"
    done = cli(tmp_path, "validate", "--config", str(CONFIG), "--channel-rules", str(missing))
    assert done.returncode == 2
    shown = str(missing).replace("\x1b", "\\x1b").replace("\n", "\\n")
    assert done.stderr == f"Error: {shown}: cannot read channel rules (No such file or directory)\n"


def test_a_rules_error_quotes_at_most_200_characters_of_input(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[[rule]]\nchannel = "x"\nsource = "x"\nsoruce = "{"y" * 10}"\n'
                     f'["{"z" * 100_000}"]\n', encoding="utf-8")
    done = cli(tmp_path, "validate", "--config", str(CONFIG), "--channel-rules", str(rules))
    assert done.returncode == 2
    assert done.stderr == (
        f"Error: {rules}: unknown section {'z' * 200!r}... (100,000 characters); "
        "expected [groups], [aliases], [self_reported] and [[rule]]\n"
    )
