"""A new user's first report on a small export (issue: the new-user trial of `attribution report
--source hubspot --spend ...` with 8 won deals): the budget recommends no move the rest of the
report calls unsupported, in the report and in `attribution budget` (with and without
--bootstrap); the monthly chart shows every month, the top paths only paths that won, the
decision chart every channel its table lists, the charts each channel's group as the tables do,
and the configuration the source preset and the direct channels the run used.

The tiny export (written by :func:`tiny_export`)::

    A1  podcast (Jan 2) > paid_search (Jan 5)      D1 won  $1,000  closed 2025-01-20
    A2  outbound (Feb 1) > paid_search (Mar 1)     D2 won  $3,000  closed 2025-03-20
    A3  referral (Jan 10)                          D3 lost   $500  closed 2025-02-10

so won revenue closes in January and March, none in February; referral touches only the lost
deal (0% of won revenue under every model); outbound is the built-in rules' `sales` group.
Every channel has fewer than 30 won deals touching it: too few deals to tell.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from attribution import api, pipeline
from attribution.config import Config, load_config
from attribution.intervals import with_intervals
from attribution.report import build_report, report_charts
from attribution.report.charts import decision

ROOT = Path(__file__).parent.parent

TOUCHES = """touchpoint_id,timestamp,account_id,channel
t1,2025-01-02T09:00:00Z,A1,podcast
t2,2025-01-05T09:00:00Z,A1,paid_search
t3,2025-02-01T09:00:00Z,A2,outbound
t4,2025-03-01T09:00:00Z,A2,paid_search
t5,2025-01-10T09:00:00Z,A3,referral
"""
DEALS = """deal_id,account_id,created_at,closed_at,status,amount,currency
D1,A1,2025-01-06T09:00:00Z,2025-01-20T09:00:00Z,won,1000.00,USD
D2,A2,2025-03-02T09:00:00Z,2025-03-20T09:00:00Z,won,3000.00,USD
D3,A3,2025-01-11T09:00:00Z,2025-02-10T09:00:00Z,lost,500.00,USD
"""
SPEND = """channel,period_start,period_end,amount,currency
podcast,2025-01-01,2025-03-31,900.00,USD
paid_search,2025-01-01,2025-03-31,2100.00,USD
referral,2025-01-01,2025-03-31,300.00,USD
"""


def tiny_export(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, text in (("touchpoints", TOUCHES), ("deals", DEALS), ("spend", SPEND)):
        paths[name] = folder / f"{name}.csv"
        paths[name].write_text(text, "utf-8")
    return paths


def tiny_config(paths: dict[str, Path], **changes) -> Config:
    return Config(touchpoints=paths["touchpoints"], deals=paths["deals"], spend=paths["spend"],
                  models=("last_touch", "linear"), recommended="linear", **changes)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> dict[str, Path]:
    return tiny_export(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def result(export):
    return pipeline.run(tiny_config(export))


def section(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}">')
    return page[start:page.index("</section>", start)]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False, env={**os.environ, "COLUMNS": "200"})


def tiny_args(export: dict[str, Path]) -> list[str]:
    return ["--touchpoints", str(export["touchpoints"]), "--deals", str(export["deals"]),
            "--spend", str(export["spend"]), "--model", "linear"]


# -- 1. the budget recommends no move the evidence does not support --------------------------------
def test_the_report_recommends_no_budget_move_the_decision_calls_too_few_deals(result):
    spend = api.read_spend(result)
    data = api.report_data(result, spend=spend)
    budget = data.tables["budget"]
    # the decision section's rule, not a second one: every channel is "too few deals to tell"
    assert set(data.insufficient) >= set(budget.get_column("channel").to_list()) - {"referral"}
    assert budget.get_column("supported").to_list() == [False] * budget.height
    assert (budget.get_column("recommended_cents").to_list()
            == budget.get_column("current_spend_cents").to_list())
    assert set(budget.get_column("bound").to_list()) == {"held"}
    evidence = dict(budget.select("channel", "evidence").iter_rows())
    # referral touched only the lost deal (budget.NO_WON_DEAL)
    assert evidence["referral"] == "too few deals to tell: no won deal touched it"
    assert evidence["paid_search"] == ("too few deals to tell: 2 won deals touched it "
                                       "(fewer than 30)")
    # what linear's credit alone would do is kept, and moves money
    assert int(budget.get_column("unchecked_change_cents").abs().sum()) > 0
    assert int(budget.get_column("unchecked_recommended_cents").sum()) == 330000

    page = build_report(data)
    body = section(page, "budget")
    finding = re.search(r'<h3 class="finding">([^<]*)</h3>', body)
    assert finding is not None
    assert finding.group(1) == ("No budget move is supported by the data: every paid channel "
                                "has too few deals to tell")
    assert "Move $" not in body
    assert "linear alone (not supported by the data)" in body  # the chart's and table's label
    assert "Left to its credit alone, linear would move" in body
    assert body.count('<tr class="unsupported">') == budget.height  # greyed, every row
    assert "too few deals to tell: 2 won deals touched it (fewer than 30)" in body
    [chart] = [c for c in report_charts(data) if c.name == "budget"]
    assert chart.title == finding.group(1)
    series = {v["series"] for v in chart.spec["data"]["values"]}
    assert series == {"Current spend", "linear alone (not supported by the data)"}


def test_with_intervals_the_budget_still_moves_nothing_the_decision_calls_unsure(result):
    # --bootstrap checks the moves against the intervals too: the same channels stay
    # unsupported (the intervals add reasons, never remove the deal count's)
    checked = with_intervals(result, replicates=20)
    data = api.report_data(checked, spend=api.read_spend(checked))
    budget = data.tables["budget"]
    assert not budget.get_column("supported").any()
    assert (budget.get_column("recommended_cents").to_list()
            == budget.get_column("current_spend_cents").to_list())
    body = section(build_report(data), "budget")
    assert "No budget move is supported by the data" in body
    assert "excludes last-touch&#x27;s share" in body  # the intervals' rule is stated


def test_enough_deals_let_the_supported_channels_move_and_hold_the_rest(export):
    # --min-deals 1: podcast (1 won deal) and paid_search (2) have the evidence, referral none
    result = pipeline.run(tiny_config(export, min_deals=1))
    data = api.report_data(result, spend=api.read_spend(result))
    budget = data.tables["budget"]
    rows = {r["channel"]: r for r in budget.iter_rows(named=True)}
    assert rows["podcast"]["supported"] and rows["paid_search"]["supported"]
    assert rows["referral"]["supported"] is False and rows["referral"]["bound"] == "held"
    assert rows["referral"]["recommended_cents"] == rows["referral"]["current_spend_cents"]
    assert rows["podcast"]["change_cents"] != 0
    assert sum(r["recommended_cents"] for r in rows.values()) == 330000
    body = section(build_report(data), "budget")
    assert "between the 2 channels the data supports" in body


def test_the_budget_command_says_no_move_is_supported_in_its_table_notes_and_json(export):
    args = tiny_args(export)
    shown = cli("budget", *args)
    assert shown.returncode == 0, shown.stderr
    assert ("Budget recommendation - linear: no move is supported by the data; every channel "
            "keeps its share of current spend") in shown.stdout
    assert "no move is supported by the data: every paid channel has too few deals to tell" in (
        " ".join(shown.stderr.split()))
    assert "left to its credit alone, linear would move" in shown.stderr
    for extra in ([], ["--bootstrap", "10"]):  # both paths agree
        done = cli("-q", "budget", *args, *extra, "--format", "json")
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        # money: keep names from here (JSON names money in major units)
        assert {r["supported"] for r in rows} == {False}
        assert all(r["evidence"].startswith("too few deals to tell") for r in rows)
        assert all(r["recommended"] == r["current_spend"] and r["change"] == 0 for r in rows)
        assert any(r["unchecked_change"] != 0 for r in rows)
        # the fields a script already reads are all still there
        assert {"model", "channel", "channel_group", "current_spend", "recommended", "change",
                "bound", "last_touch_recommended", "decision_shift"} <= set(rows[0])
        # money: keep names to here


# -- 2. the charts and tables a CMO reads -------------------------------------------------------
def test_the_top_paths_list_only_paths_that_won(result):
    journeys = section(build_report(result), "journeys")
    assert '<h3 class="finding">Only 2 paths won revenue</h3>' in journeys
    assert "<td>referral</td>" not in journeys  # the lost deal's path won nothing


def test_the_decision_chart_lists_every_channel_of_its_table(result):
    data = api.report_data(result)
    table = data.tables["decision"]
    referral = table.filter(pl.col("channel") == "referral").row(0, named=True)
    assert referral["revenue_share"] == 0 and referral["last_touch_revenue_share"] == 0
    chart = decision(table, "USD", "linear")
    assert chart is not None
    assert chart.spec["params"][0]["value"] == table.get_column("channel").to_list()


def test_the_monthly_chart_has_every_month_of_its_range(result):
    [chart] = [c for c in report_charts(result) if c.name == "monthly"]
    assert chart.spec["encoding"]["x"]["scale"]["domain"] == ["2025-01", "2025-02", "2025-03"]
    assert chart.title.endswith("over 3 months, the most in 2025-03; no won revenue in 2025-02")


def test_the_charts_show_each_channel_in_its_tables_group(result):
    # outbound is `sales` in every table (and the CSV): its own group in the charts, not Other
    charts = {c.name: c for c in report_charts(result)}
    labels = {v["group"] for v in charts["shift"].spec["data"]["values"]
              if v["channel"] == "outbound"}
    assert labels == {"Sales"}
    scale = charts["shift"].spec["spec"]["layer"][0]["encoding"]["color"]["scale"]
    assert "Sales" in scale["domain"] and "Other" not in scale["domain"]
    assert {v["group"] for v in charts["group_share"].spec["data"]["values"]} == {
        "Demand creation", "Demand capture", "Sales"}
    page = build_report(result)
    assert '<span class="group-sales" title="Sales">outbound</span>' in page
    assert ".group-sales { color: #CC79A7" in page


def test_the_configuration_names_the_source_preset_and_the_direct_channels_it_used():
    result = pipeline.run(load_config(ROOT / "fixtures" / "hubspot" / "attribution.toml"))
    body = section(build_report(result), "configuration")
    settings = dict(re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", body))
    assert settings["Source preset"].startswith("hubspot (HubSpot; built in")
    assert "hubspot preset" in settings["Channel rules"]
    assert settings["Direct channels"].startswith("direct, Direct Traffic")
    # what the page says is what the model used
    [model] = [m for m in result.models if m.name == "last_non_direct"]
    assert "Direct Traffic" in model.params()["direct_channels"]


# -- in a browser: what is drawn -------------------------------------------------------------------
@pytest.fixture(scope="module")
def drawn(result, tmp_path_factory):
    """The report's charts as headless Chromium draws them: ``drawn(name)`` is chart ``name``'s
    SVG (it must have rendered)."""
    from tests.test_report_browser import browser, chart_element, run_browser

    browser()
    folder = tmp_path_factory.mktemp("drawn")
    path = api.write_report(result, folder / "report.html", spend=api.read_spend(result))
    done = run_browser(["--dump-dom", path.as_uri()], folder / "profile")
    assert done.returncode == 0, done.stderr[-2000:]

    def chart(name: str) -> str:
        attributes, content = chart_element(done.stdout, name)
        assert 'data-rendered="true"' in attributes, f"{name}: {attributes}"
        return content

    return chart


def texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


@pytest.mark.slow  # headless Chromium
def test_the_drawn_monthly_chart_shows_the_month_without_a_won_deal(drawn):
    assert {"2025-01", "2025-02", "2025-03"} <= set(texts(drawn("monthly")))


@pytest.mark.slow
def test_the_drawn_decision_chart_shows_the_channel_both_models_give_nothing(drawn):
    assert "referral" in texts(drawn("decision"))  # 0% / 0%, as its table lists it


@pytest.mark.slow
def test_the_drawn_charts_colour_the_sales_group_as_sales(drawn):
    shift = drawn("shift")
    assert "Sales" in texts(shift) and "Other" not in texts(shift)
    assert "#CC79A7" in shift.upper()  # outbound's bars in the sales colour
    assert "Sales" in texts(drawn("group_share"))


@pytest.mark.slow
def test_the_drawn_budget_shows_the_moves_as_not_supported(drawn):
    budget = drawn("budget")
    assert "linear alone (not supported by the data)" in texts(budget)
    assert "Recommended (linear)" not in texts(budget)
