"""The HTML report: every section, exact figures, self-contained, deterministic; the PNGs.

Most tests use the hand-made export in fixtures/economics (see its README)::

    D1  won   $1,000   paid_social -> paid_search        D2  lost  $2,000   paid_social
    D3  won  $60,000   events -> paid_search              D4  open  $5,000   paid_social

so won revenue is $61,000 and pipeline $68,000; last-touch gives all $61,000 to paid_search
(demand capture), linear gives demand creation (paid_social, events) $500 + $30,000 = 50%.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from attribution import pipeline
from attribution.budget import recommend_budget
from attribution.config import Config
from attribution.economics import channel_scorecard, first_touch_leads
from attribution.render import money
from attribution.report import (
    Chart,
    build_report,
    headline_figures,
    report_charts,
    write_pngs,
    write_report,
)
from attribution.spend import load_spend

ROOT = Path(__file__).parent.parent
ECONOMICS = ROOT / "fixtures" / "economics"
MESSY = ROOT / "fixtures" / "messy"
PATHS = ROOT / "fixtures" / "paths" / "sample.csv"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_on(folder: Path, models: tuple[str, ...] = ("last_touch", "linear", "markov"), **params):
    config = Config(
        touchpoints=folder / "touchpoints.csv",
        deals=folder / "deals.csv",
        contacts=folder / "contacts.csv",
        models=models,
        model_params={"markov": {"bootstrap": 20, **params}},
        max_reject_rate=1.0,  # the messy export rejects most of its deals on purpose
    )
    return pipeline.run(config)


@pytest.fixture(scope="module")
def result():
    return run_on(ECONOMICS)


@pytest.fixture(scope="module")
def page(result) -> str:
    return build_report(result)


class Links(HTMLParser):
    """Every element's src / href (script bodies are not parsed as tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.ids: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.tags.append((tag, named))
        if named.get("id"):
            self.ids.append(str(named["id"]))
        for key in ("src", "href", "data", "poster", "srcset", "action"):
            if named.get(key):
                self.urls.append((tag, key, str(named[key])))


def parsed(page: str) -> Links:
    links = Links()
    links.feed(page)
    return links


def specs_of(page: str) -> dict[str, dict]:
    match = re.search(
        r'<script type="application/json" id="report-specs">(.*?)</script>', page, re.DOTALL
    )
    assert match
    return json.loads(match.group(1).replace("<\\/", "</"))


def card(page: str, key: str) -> str:
    match = re.search(rf'data-figure="{key}">(.*?)</div></div>', page, re.DOTALL)
    assert match, key
    return re.sub(r"<[^>]+>", " ", match.group(1))


# -- sections and figures --------------------------------------------------------------------------
def test_every_section_is_present(page):
    ids = parsed(page).ids
    for section in ("headline", "credit", "shift", "groups", "journeys", "markov", "configuration"):
        assert section in ids
    assert "scorecard" not in ids and "budget" not in ids  # optional: not given
    for chart in (
        "credit_by_model", "shift", "group_share", "journey_flow", "transitions", "removal_effects"
    ):
        assert f"chart-{chart}" in ids


def test_headline_figures_are_exact(result, page):
    figures = headline_figures(result)
    assert figures["won_revenue_cents"] == 6_100_000 and figures["pipeline_cents"] == 6_800_000
    assert figures["deals"] == 4 and figures["won_deals"] == 2
    assert "$61,000.00 from 2 won deals" in card(page, "won_revenue")  # money: keep name
    assert "$61k" in card(page, "won_revenue")  # money: keep name
    assert "$68,000.00 over 4 deals" in card(page, "pipeline")  # money: keep name
    assert "2 won · 1 lost · 1 open" in card(page, "deals")
    rows = sum(a.read for a in result.accounting)
    used = sum(a.used for a in result.accounting)
    assert f"{rows:,} input rows read, {used:,} used" in page


def test_credit_table_has_every_model_total_to_the_cent(result, page):
    for model in ("last_touch", "linear", "markov"):
        total = int(result.summary.filter(pl.col("model") == model)["revenue_credit_cents"].sum())
        assert total == 6_100_000
    assert page.count("<td>total</td>" + "<td class=\"num\">$61,000.00</td>" * 3) == 1


def test_titles_state_the_finding(page, result):
    charts = {c.name: c for c in report_charts(result)}
    assert charts["group_share"].title == (
        "Demand creation earns 0% of revenue credit under last-touch, 50% under multi-touch models"
    )
    # linear moves events +$30k and paid_social +$500 to demand creation; markov its own amount
    shift = charts["shift"].title
    assert shift.startswith("All 2 multi-touch models give demand creation more revenue credit")
    assert "+$30.5k" in shift
    flow = charts["journey_flow"].title
    # D3 ($60,000) starts on events, D1 ($1,000) on paid_social: all won revenue starts on creation
    assert flow == ("100% of won revenue starts with a demand-creation touch; "
                    "100% ends on a demand-capture touch")
    for chart in charts.values():
        assert chart.title in page and chart.subtitle.replace("'", "&#x27;") in page


def test_removal_effects_carry_bootstrap_intervals(result):
    charts = {c.name: c for c in report_charts(result)}
    effects = charts["removal_effects"]
    values = effects.spec["data"]["values"]
    assert all("ci_low" in v and "ci_high" in v for v in values)
    assert all(v["ci_low"] <= v["ci_high"] for v in values)
    # the demo's top channel has too few won deals to be named; its interval is still drawn
    assert effects.title == ("Too few deals to tell which channel would cost the most "
                             "conversions if removed")
    layers = [layer["mark"]["type"] for layer in effects.spec["layer"]]
    assert layers == ["bar", "rule", "tick", "tick"]


def test_configuration_lists_files_checksums_accounting_and_parameters(result, page):
    section = page[page.index('<section id="configuration">'):]
    for item in result.files:
        assert item.sha256 in section and item.path in section
        assert f"{item.rows:,}" in section
    for item in result.accounting:
        assert f"<td>{item.input}</td><td class=\"num\">{item.read:,}</td>" in section
    assert "180 days before each deal&#x27;s creation" in section
    assert "within 30 minutes count once" in section
    assert "bootstrap=20" in section and "order=1" in section
    assert "built-in" in section


# -- self-contained -------------------------------------------------------------------------------
def test_page_is_self_contained(page):
    links = parsed(page)
    external = [
        (t, k, u) for t, k, u in links.urls
        if re.match(r"^(https?:)?//", u.strip(), re.IGNORECASE)
    ]
    assert external == []
    assert not any(tag == "link" for tag, _ in links.tags)  # no stylesheet fetched
    assert all("src" not in attrs for tag, attrs in links.tags if tag == "script")
    assert "@import" not in page and "url(http" not in page
    assert "vegaEmbed" in page  # the library is inline


def test_specs_match_containers_and_carry_their_data(page):
    specs = specs_of(page)
    ids = parsed(page).ids
    assert set(specs) == {"decision", "monthly", "credit_by_model", "shift", "group_share",
                          "journey_flow", "transitions",
                          "removal_effects"}
    for name, spec in specs.items():
        assert f"chart-{name}" in ids
        text = json.dumps(spec)
        assert '"url"' not in text  # inline data only
        assert "title" not in spec  # the finding is the HTML heading


def test_same_result_same_bytes(result):
    assert build_report(result) == build_report(result)


def test_money_is_formatted_with_the_currency(result):
    charts = {c.name: c for c in report_charts(result)}
    values = charts["credit_by_model"].spec["data"]["values"]
    paid_search = next(
        v for v in values if v["model"] == "last_touch" and v["channel"] == "paid_search"
    )
    assert paid_search["credit"] == 61_000.0 and paid_search["credit_label"] == "$61,000.00"
    # the dot plot's axis is the share of won revenue; money is in the tooltip
    assert charts["credit_by_model"].spec["encoding"]["x"]["field"] == "share"
    assert paid_search["share"] == pytest.approx(100 * paid_search["credit"] / sum(
        v["credit"] for v in values if v["model"] == "last_touch"))


# -- optional sections -----------------------------------------------------------------------------
def test_scorecard_and_budget_sections(result, tmp_path):
    spend = load_spend(ECONOMICS / "spend.csv", currency=result.currency)
    assert result.inputs is not None
    leads = first_touch_leads(result.inputs.touchpoints, result.inputs.contacts)
    card_frame = channel_scorecard(result.credit, result.journeys, leads, spend, models=["linear"])
    budget = recommend_budget(result.summary, spend, "linear")
    page = build_report(result, scorecard=card_frame, budget=budget)
    ids = parsed(page).ids
    assert "scorecard" in ids and "budget" in ids and "chart-budget" in ids
    start = page.index('<section id="scorecard">')
    section = page[start:page.index("</section>", start)]
    events = card_frame.filter(pl.col("channel") == "events").row(0, named=True)
    assert money(events["revenue_credit_cents"]) == "$30,000.00" and "$30,000.00" in section
    assert money(events["spend_cents"]) == "$3,000.00" and "$3,000.00" in section
    start = page.index('<section id="budget">')
    budget_section = page[start:page.index("</section>", start)]
    total = int(budget["recommended_cents"].sum())
    assert total == int(budget["current_spend_cents"].sum())
    assert f'<td>total</td><td class="num">{money(total)}</td>' in budget_section
    for row in budget.iter_rows(named=True):
        assert money(row["recommended_cents"]) in budget_section
    assert "budget" in specs_of(page)


def test_without_last_touch_there_is_no_shift_section():
    result = run_on(ECONOMICS, models=("linear", "u_shaped"))
    page = build_report(result)
    ids = parsed(page).ids
    assert "shift" not in ids and "credit" in ids and "groups" in ids
    assert "The Markov model was not run" in page


def test_messy_export_and_path_table_build():
    messy = run_on(MESSY)
    page = build_report(messy)
    assert "Rejected rows by reason" in page and "negative amount" in page
    paths = pipeline.run(Config(paths=PATHS, models=("last_touch", "linear", "markov")))
    page = build_report(paths)
    assert "from a path table" in page and 'id="chart-credit_by_model"' in page


# -- files -----------------------------------------------------------------------------------------
def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_write_report_writes_html_and_pngs(result, tmp_path):
    target = write_report(result, tmp_path / "out" / "report.html", png_dir=tmp_path / "slides")
    assert target == tmp_path / "out" / "report.html"
    assert target.read_text("utf-8") == build_report(result)
    names = sorted(p.name for p in (tmp_path / "slides").iterdir())
    assert names == sorted(f"{c.name}.png" for c in report_charts(result))
    for path in (tmp_path / "slides").iterdir():
        width, height = png_size(path)
        assert width >= 800 and height >= 200  # scale 2: sharp on a slide


def test_write_pngs_titles_each_image(tmp_path):
    chart = Chart("tiny", "A finding", "what is shown", {
        "data": {"values": [{"a": "x", "b": 1}]}, "mark": "bar",
        "encoding": {"x": {"field": "a", "type": "nominal"},
                     "y": {"field": "b", "type": "quantitative"}},
    })
    assert chart.titled()["title"] == {"text": "A finding", "subtitle": "what is shown"}
    [path] = write_pngs([chart], tmp_path, currency="EUR")
    assert path == tmp_path / "tiny.png" and png_size(path)[0] > 100


def test_top_paths_are_ranked_by_won_revenue_and_list_only_paths_that_won(page):
    section = page[page.index('<section id="journeys">'):page.index('<section id="markov">')]
    # two of the three paths won (D2 lost and D4 open went paid_social alone): fewer than
    # the twelve a top list holds, and the heading says so
    assert '<h3 class="finding">Only 2 paths won revenue</h3>' in section
    assert "paths that won the most revenue" not in section
    # D3 events > paid_search ($60,000) before D1 paid_social > paid_search ($1,000)
    assert section.index("<td>events &gt; paid_search</td>") < section.index(
        "<td>paid_social &gt; paid_search</td>"
    )
    assert "$60,000.00" in section and "$1,000.00" in section
    assert "<td>paid_social</td>" not in section and "$0.00" not in section


# -- names are data (issue #21, item 4) -----------------------------------------------------------
def test_charts_key_channels_by_position_and_hold_the_names_as_data():
    summary = pl.DataFrame({
        "model": ["last_touch"] * 3 + ["linear"] * 3,
        "channel": ["constructor", "__proto__", "</script>x"] * 2,
        "channel_group": ["demand_creation", "demand_capture", "other"] * 2,
        "deals_touched": [1] * 6, "pipeline_credit_cents": [300, 200, 100] * 2,
        "revenue_credit_cents": [300, 200, 100, 100, 200, 300],
        "revenue_share": [0.5, 1 / 3, 1 / 6, 1 / 6, 1 / 3, 0.5],
    })
    from attribution.report import charts

    chart = charts.credit_by_model(summary, "USD")
    spec = chart.spec
    encoding = spec["encoding"]["y"]
    names = spec["params"][0]["value"]
    assert spec["params"][0]["name"] == "key_names"
    assert encoding["field"] == "key" and encoding["sort"] == ["k0", "k1", "k2"]
    assert [names[int(k[1:])] for k in encoding["sort"]] == [
        "constructor", "__proto__", "</script>x"
    ]
    assert encoding["axis"]["labelExpr"] == "key_names[toNumber(slice(datum.value, 1))]"
    assert encoding["axis"]["labelColor"]["expr"] == (
        "indexof([\"k0\"], datum.value) >= 0 ? '#009E73' : "
        "indexof([\"k1\"], datum.value) >= 0 ? '#0072B2' : '#374151'"
    )
    # no name is written into an expression (Vega-Lite looks string constants up as properties)
    expressions = re.findall(r'"(?:labelExpr|expr|filter|calculate)": "((?:[^"\\]|\\.)*)"',
                             json.dumps(spec))
    assert expressions and not any(
        n in e for e in expressions for n in ("constructor", "__proto__", "script")
    )
    assert {v["key"] for v in spec["data"]["values"]} == {"k0", "k1", "k2"}
    assert chart.title.startswith("</script>x is undervalued by last-touch")


def test_page_escapes_names_in_text_and_scripts():
    summary = pl.DataFrame({
        "model": ["last_touch", "linear"], "channel": ["</script><b>x\x1b", "</script><b>x\x1b"],
        "channel_group": ["other", "other"], "deals_touched": [1, 1],
        "pipeline_credit_cents": [100, 100], "revenue_credit_cents": [100, 100],
        "revenue_share": [1.0, 1.0],
    })
    from attribution.report import charts
    from attribution.report.html import _chart_block, _script_json

    block = _chart_block(charts.credit_by_model(summary, "USD"))
    assert block.startswith(
        '<h3 class="finding">Revenue credit by channel depends on the model</h3>'
    )
    chart = charts.credit_by_model(summary.with_columns(
        pl.Series("revenue_credit_cents", [0, 100])), "USD")
    assert _chart_block(chart).startswith(
        '<h3 class="finding">&lt;/script&gt;&lt;b&gt;x\\x1b is undervalued by last-touch')
    inline = _script_json(chart.spec)
    assert "</script" not in inline and "<\\/script><b>x\\\\x1b" in inline
