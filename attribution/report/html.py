"""One self-contained HTML report of a run: headline figures, charts, tables, assumptions.

The page embeds its charts as Vega-Lite specifications and the Vega / Vega-Lite / Vega-Embed
JavaScript bundled by ``vl-convert-python`` inline, so it opens offline: no CDN, no font or
script fetched. Same run, same bytes (nothing time-dependent is written).
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from attribution.errors import ConfigError
from attribution.intervals import TOO_FEW
from attribution.render import compact_money, money, percent, printable
from attribution.report import charts as charts_module
from attribution.report import theme
from attribution.report.charts import BASELINE, Chart
from attribution.report.data import ReportData, report_data
from attribution.report.template import CSS, EMBED_SCRIPT, ERROR_SCRIPT
from attribution.schema import NO_TOUCH_CHANNEL, major_name

if TYPE_CHECKING:
    from attribution.pipeline import RunResult

DEFAULT_TITLE = "Attribution report"
TOP_PATHS = 12


# -- the JavaScript -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one script (from vl-convert-python, no network)."""
    try:
        import vl_convert
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError(
            "the HTML report needs the vl-convert-python package: pip install vl-convert-python"
        ) from None
    # the stub marks snippet required; at runtime it is optional (the default snippet is wanted)
    bundle = vl_convert.javascript_bundle()  # type: ignore[call-arg]
    return str(bundle).replace("</script", "<\\/script")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def embed_options(currency: str) -> dict[str, Any]:
    """Options of ``vegaEmbed``: SVG, the report theme, money in the run's currency, and only
    the offline export actions (no "open in editor" link)."""
    return {
        "renderer": "svg",
        "actions": {"export": True, "source": False, "compiled": False, "editor": False},
        "config": theme.vega_config(),
        "formatLocale": theme.format_locale(currency),
        "downloadFileName": "attribution-chart",
    }


# -- what goes in -------------------------------------------------------------------------------
def _groups(result: RunResult) -> dict[str, str | None]:
    groups: dict[str, str | None] = dict(
        result.journeys.touches.select("channel", "channel_group")
        .unique(subset="channel", keep="first")
        .collect().iter_rows()
    )
    if result.summary.height:
        groups.update(charts_module.channel_groups(result.summary))
    return groups


def _data(result: RunResult | ReportData, *,
          diagnostics: Mapping[str, pl.DataFrame] | None = None,
          scorecard: pl.DataFrame | None = None, budget: pl.DataFrame | None = None,
          evaluation: pl.DataFrame | None = None, recommended: str | None = None) -> ReportData:
    if isinstance(result, ReportData):
        return result
    return report_data(result, recommended=recommended, diagnostics=diagnostics,
                       scorecard=scorecard, budget=budget, evaluation=evaluation)


def report_charts(
    result: RunResult | ReportData,
    *,
    diagnostics: Mapping[str, pl.DataFrame] | None = None,
    budget: pl.DataFrame | None = None,
    evaluation: pl.DataFrame | None = None,
) -> list[Chart]:
    """Every chart the run supports, in report order (see :mod:`attribution.report.charts`),
    each made from the :class:`~attribution.report.data.ReportData` table of its name.

    Parameters
    ----------
    result
        A :class:`~attribution.report.data.ReportData`, or a
        :class:`~attribution.pipeline.RunResult` with models run (its data is built here).
    diagnostics, budget, evaluation
        With a run: :func:`attribution.pipeline.model_diagnostics` of the run (computed when
        omitted), :func:`attribution.budget.recommend_budget` output, an evaluation summary.
    """
    data = _data(result, diagnostics=diagnostics, budget=budget, evaluation=evaluation)
    tables = data.tables
    currency = data.currency
    groups = _groups(data.result)
    model = data.recommended
    found: list[Chart | None] = []
    if "decision" in tables:
        found.append(charts_module.decision(tables["decision"], currency, model))
    if "monthly" in tables:
        found.append(charts_module.monthly_credit(tables["monthly"], currency, model))
    if "trend" in tables:
        found.append(charts_module.credit_trend(tables["trend"], currency, model))
    if "budget" in tables:
        found.append(charts_module.budget_chart(tables["budget"], currency))
    found.append(charts_module.credit_by_model(tables["summary"], currency, recommended=model,
                                               insufficient=data.insufficient))
    if "comparison" in tables:
        found.append(charts_module.shift_from_last_touch(tables["comparison"], currency))
    found.append(charts_module.group_share(tables["summary"], currency))
    found.append(charts_module.journey_flow(tables["paths"], groups, currency))
    found.append(charts_module.transition_heatmap(tables["transitions"], groups,
                                                  insufficient=data.insufficient))
    if "removal_effects" in tables:
        weight_by = data.markov_params.get("weight_by", "conversions")
        found.append(charts_module.removal_effects(tables["removal_effects"], groups, weight_by,
                                                   insufficient=data.insufficient))
    if "evaluation" in tables:
        found.append(charts_module.model_error_chart(tables["evaluation"]))
    return [chart for chart in found if chart is not None]


# -- small HTML pieces ---------------------------------------------------------------------------
def _e(value: Any) -> str:
    """Text for HTML: control characters shown escaped (:func:`~attribution.render.printable`),
    then HTML-escaped (quotes too: the same text goes into attributes)."""
    return html.escape(printable(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Iterable[int] = (),
           classes: str = "", row_classes: Sequence[str] | None = None) -> str:
    """An HTML table; cells are escaped unless given as ``Raw``."""
    numeric_set = set(numeric)
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if i in numeric_set else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for index, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            content = cell.html if isinstance(cell, Raw) else _e(cell)
            cells.append(
                f'<td class="num">{content}</td>' if i in numeric_set else f"<td>{content}</td>"
            )
        css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return (f'<div class="wide"><table class="{classes}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


class Raw:
    """Trusted HTML for a table cell."""

    def __init__(self, html_text: str) -> None:
        self.html = html_text


def _channel(name: str, group: str | None) -> Raw:
    """A channel's name in its group's colour (the charts' colour), its group on hover."""
    return Raw(f'<span class="{_e(theme.group_class(group))}" '
               f'title="{_e(theme.group_label(group))}">{_e(name)}</span>')


def _signed(cents: int | None, currency: str) -> Raw:
    if cents is None:
        return Raw("")
    css = "pos" if cents > 0 else "neg" if cents < 0 else ""
    text = ("+" if cents > 0 else "") + money(cents, currency)
    return Raw(f'<span class="{css}">{_e(text)}</span>')


def _chart_block(chart: Chart) -> str:
    return (
        f'<h3 class="finding">{_e(chart.title)}</h3>\n'
        f'<p class="subtitle">{_e(chart.subtitle)}</p>\n'
        f'<div class="chart" id="chart-{chart.name}" data-chart="{chart.name}"></div>\n'
    )


def _section(section_id: str, heading: str, body: str) -> str:
    return f'<section id="{section_id}">\n<h2>{_e(heading)}</h2>\n{body}</section>\n'


def _group_legend(groups: Iterable[str | None]) -> str:
    """The channel groups of the page (:func:`~attribution.report.theme.group_order`) with
    their colours, as the charts show them."""
    parts = [
        f'<span class="swatch" style="background:{theme.group_colour(g)}"></span>'
        f"{_e(theme.group_label(g))}"
        for g in theme.group_order(groups)
    ]
    return f'<div class="legend-groups">Channel groups: {"".join(parts)}</div>'


# -- sections -----------------------------------------------------------------------------------
def headline_figures(result: RunResult) -> dict[str, Any]:
    """The headline numbers of the report (money in minor units), from ``RunResult.totals``."""
    totals = result.totals()
    read = sum(a.read for a in result.accounting)
    used = sum(a.used for a in result.accounting)
    rejected = sum(a.rejected_total for a in result.accounting)
    return {**totals, "rows_read": read, "rows_used": used, "rows_rejected": rejected,
            "rows_deduplicated": sum(a.deduplicated for a in result.accounting),
            "rows_out_of_window": sum(a.out_of_window for a in result.accounting)}


def _headline(result: RunResult) -> str:
    figures = headline_figures(result)
    currency = result.currency
    stats = result.stats
    accounts = f"{stats.account_journeys:,} accounts touched without a deal" if stats else ""
    cards = [
        ("Won revenue", compact_money(figures["won_revenue_cents"], currency),
         f"{money(figures['won_revenue_cents'], currency)} from {figures['won_deals']:,} won deals",
         "won_revenue"),  # money: keep name (the card's id)
        ("Pipeline", compact_money(figures["pipeline_cents"], currency),
         f"{money(figures['pipeline_cents'], currency)} over {figures['deals']:,} deals",
         "pipeline"),  # money: keep name (the card's id)
        ("Deals", f"{figures['deals']:,}",
         f"{figures['won_deals']:,} won · {figures['lost_deals']:,} lost · "
         f"{figures['open_deals']:,} open",
         "deals"),
        ("Journeys", f"{figures['journeys']:,}",
         f"{figures['touches']:,} touches" + (f"; {accounts}" if accounts else ""), "journeys"),
    ]
    html_cards = "".join(
        f'<div class="card" data-figure="{key}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(value)}</div><div class="detail">{_e(detail)}</div></div>'
        for label, value, detail, key in cards
    )
    rows_share = figures["rows_used"] / figures["rows_read"] if figures["rows_read"] else 0.0
    accounting = (
        f'<p class="note" data-figure="accounting">Data accounting: '
        f'{figures["rows_read"]:,} input rows read, '
        f'{figures["rows_used"]:,} used ({percent(rows_share)}), {figures["rows_deduplicated"]:,} '
        f'deduplicated, {figures["rows_out_of_window"]:,} outside the lookback window, '
        f'{figures["rows_rejected"]:,} rejected (every reason is listed under '
        f'<a href="#configuration">Configuration</a>).'
    )
    if figures["deals_without_touch"]:
        accounting += (
            f' {figures["deals_without_touch"]:,} deals had no touch in their window '
            "and are credited "
            "to (no touch)."
        )
    accounting += "</p>"
    accounting += _dark_headline(result)
    models = ", ".join(m.name for m in result.models)
    intro = (
        f'<p class="note">Credit re-assigned to channels by {len(result.models)} models '
        f"({_e(models)}); "
        "every model's credit sums to each deal's amount to the cent.</p>"
    )
    return _section(
        "headline", "Headline", f'<div class="cards">{html_cards}</div>\n{accounting}\n{intro}'
    )


def _dark_headline(result: RunResult) -> str:
    """The headline's sentence on the dark funnel: the largest dark channel when enough won
    deals state it (``min_deals``), else why none is named; nothing without answers."""
    from attribution.self_reported import largest_dark_channel

    dark = result.dark_funnel
    if dark is None:
        return ""
    row = largest_dark_channel(dark)
    if row is None:
        enough = dark.filter(pl.col("sufficient")).height
        why = ("no won deal names a channel without a tracked touch of it" if enough else
               f"no channel has {result.config.min_deals:,} won deals stating it (min_deals), "
               "too few to name the largest dark channel")
        return (f'<p class="note" data-figure="dark-funnel">Self-reported answers: {_e(why)}; '
                'see <a href="#dark-funnel">Dark funnel</a>.</p>')
    return (
        f'<p class="note" data-figure="dark-funnel">Largest dark channel: '
        f"<strong>{_e(row['channel'])}</strong>: "
        f"{_e(money(row['dark_revenue_cents'], result.currency))}"
        f" of won revenue from {row['dark_won_deals']:,} won deals whose buyers name it with no "
        f"tracked touch of it ({_e(percent(row['dark_share']))} of the "
        f"{row['stated_deals']:,} deals stating it); see "
        '<a href="#dark-funnel">Dark funnel</a>.</p>'
    )


def _dark_funnel_table(dark: pl.DataFrame, currency: str) -> str:
    headers = ["channel", "tracked", "tracked %", "stated", "stated %", "stated + fallback",
               "stated + fallback %", "stated deals", "dark deals", "dark %", "dark revenue"]
    rows = [
        [_channel(r["channel"], r["channel_group"]), money(r["tracked_revenue_credit_cents"],
                                                           currency),
         percent(r["tracked_revenue_share"]), money(r["stated_revenue_credit_cents"], currency),
         percent(r["stated_revenue_share"]), money(r["self_reported_revenue_credit_cents"],
                                                    currency),
         percent(r["self_reported_revenue_share"]), f"{r['stated_deals']:,}",
         f"{r['dark_deals']:,}", percent(r["dark_share"]) if r["dark_share"] is not None else "",
         money(r["dark_revenue_cents"], currency)]
        for r in dark.iter_rows(named=True)
    ]
    note = ('<p class="note">Tracked: the recommended model\'s credit from touches. '
            "Stated: what buyers said, alone: each answered deal whole to the channel its "
            "buyers named (\"How did you hear about us?\"). Stated + fallback: the "
            "self_reported model, the stated credit plus the unanswered deals credited as "
            "tracked. Dark deals name a channel no touch of their journey shows.</p>")
    return note + _table(headers, rows, numeric=range(1, len(headers)))


def _credit_table(summary: pl.DataFrame, currency: str) -> str:
    models = summary.get_column("model").unique(maintain_order=True).to_list()
    if BASELINE in models:
        models = [BASELINE, *[m for m in models if m != BASELINE]]
    cells = {(r["model"],
              r["channel"]): r["revenue_credit_cents"] for r in summary.iter_rows(named=True)}
    groups = charts_module.channel_groups(summary)
    rows = []
    for channel in charts_module.channel_order(summary):
        rows.append([_channel(channel, groups.get(channel)),
                     *[money(cells.get((m, channel), 0), currency) for m in models]])
    totals = [
        int(summary.filter(pl.col("model") == m).get_column("revenue_credit_cents").sum())
        for m in models
    ]
    rows.append(["total", *[money(t, currency) for t in totals]])
    return _table(["channel", *models], rows, numeric=range(1, len(models) + 1),
                  row_classes=[""] * (len(rows) - 1) + ["total"])


def _shift_table(comparison: pl.DataFrame, currency: str) -> str:
    models = [
        m for m in comparison.get_column("model").unique(maintain_order=True).to_list()
        if m != BASELINE
    ]
    base = comparison.filter(pl.col("model") == BASELINE).sort(
        ["last_touch_revenue_credit_cents", "channel"], descending=[True, False]
    )
    wide = {(r["model"], r["channel"]): r for r in comparison.iter_rows(named=True)}
    rows = []
    for row in base.iter_rows(named=True):
        channel = row["channel"]
        rows.append([
            _channel(channel, row["channel_group"]),
            money(row["revenue_credit_cents"], currency),
            *[_signed(wide[(m, channel)]["revenue_shift_cents"], currency) for m in models],
        ])
    return _table(["channel", "last_touch", *[f"{m} vs last_touch" for m in models]], rows,
                  numeric=range(1, len(models) + 2))


def _top_paths_table(every: pl.DataFrame, currency: str) -> str:
    total = int(every.get_column("journeys").sum()) if every.height else 0
    by_revenue = int(every.get_column("revenue_cents").sum()) > 0 if every.height else False
    # ranked by won revenue, only the paths that won some: a path that won nothing is no top
    winners = every.filter(pl.col("revenue_cents") > 0) if by_revenue else every
    top = (
        winners.sort(["revenue_cents", "journeys", "path"], descending=[True, True, False])
        if by_revenue else winners
    ).head(TOP_PATHS)
    rows = [
        [r["path"], f"{r['journeys']:,}", percent(r["journeys"] / total if total else 0.0),
         f"{r['conversions']:,}",
         percent(r["conversion_rate"]), money(r["revenue_cents"], currency)]
        for r in top.iter_rows(named=True)
    ]
    table = _table(["path (repeats collapsed)", "journeys", "share of journeys", "won", "win rate",
                    "won revenue"], rows, numeric=range(1, 6))
    if not by_revenue:
        heading = f"The {top.height} most common paths"
    elif winners.height < TOP_PATHS:  # every path that won, by won revenue
        heading = f"Only {winners.height} path{'' if winners.height == 1 else 's'} won revenue"
    else:
        heading = f"The {top.height} paths that won the most revenue"
    ranked = "; ranked by won revenue" if by_revenue else ""
    return (f'<h3 class="finding">{heading}</h3>'
            '<p class="subtitle">Channel sequences with consecutive repeats of a channel collapsed '
            "(podcast &gt; podcast &gt; paid_search is podcast &gt; paid_search); journeys are won "
            f"deals, lost deals and accounts touched without a deal{ranked}</p>" + table)


def _removal_table(effects: pl.DataFrame, groups: Mapping[str, str | None], currency: str) -> str:
    has_ci = "ci_low" in effects.columns
    headers = ["channel", "removal effect", "share", "removal effect (value)", "share (value)",
               "conversions credit", "revenue credit"]
    if has_ci:
        headers += ["95% CI low", "95% CI high"]
    rows = []
    for r in effects.sort(["share", "channel"], descending=[True, False]).iter_rows(named=True):
        row = [
            _channel(r["channel"], groups.get(r["channel"])), percent(r["removal_effect"]),
            percent(r["share"]), percent(r["removal_effect_value"]), percent(r["share_value"]),
            f"{r['conversions_credit']:,.2f}", money(round(r["revenue_credit_cents"]), currency),
        ]
        if has_ci:
            row += [percent(r["ci_low"]), percent(r["ci_high"])]
        rows.append(row)
    return _table(headers, rows, numeric=range(1, len(headers)))


#: scorecard columns shown (by their names in major units: a ``*_cents`` column of the table is
#: shown under its name without the suffix), with their heading and kind: what fits 1400 px
#: without scrolling
# money: keep names from here
SCORECARD_COLUMNS = [
    ("leads", "leads", "int"), ("opportunities", "credited opps", "float"),
    ("pipeline_credit", "pipeline", "money"), ("won_deals", "credited won", "float"),
    ("revenue_credit", "revenue", "money"), ("win_rate", "win rate", "share"),
    ("spend", "spend", "money"), ("cost_per_won_deal", "cost / won deal", "money"),
    ("roas", "ROAS", "ratio"),
]
#: columns that are empty, not $0, for a channel without spend
COST_COLUMNS = ("spend", "cost_per_won_deal", "roas")
# money: keep names to here


def _cell(value: Any, kind: str, currency: str) -> str:
    if value is None:
        return "–"
    if kind == "money":
        return money(int(value), currency)
    if kind == "share":
        return percent(value)
    if kind == "int":
        return f"{int(value):,}"
    if kind == "float":
        return f"{value:,.1f}"
    if kind == "days":
        return f"{value:,.0f} d"
    if kind == "ratio":
        return f"{value:,.2f}×"
    return str(value)


def _calibration_section(table: pl.DataFrame, scores: pl.DataFrame, currency: str,
                         lead: str) -> str:
    """Every model's credit beside the user's experiments (:mod:`attribution.calibrate`)."""
    favoured = str(scores.get_column("model")[0])
    ranked = _table(
        ["rank", "model", "experiments", "inside the interval", "mean relative error",
         "mean absolute error"],
        [[r["rank"], f"{r['model']} (leads this report)" if r["model"] == lead else r["model"],
          r["experiments"], r["inside"],
          "" if r["mean_relative_error"] is None else percent(r["mean_relative_error"]),
          money(r["mean_absolute_error_cents"], currency)]
         for r in scores.iter_rows(named=True)],
        numeric=range(2, 6), classes="calibration-scores")
    detail = _table(
        ["experiment", "channel", "period", "metric", "segment", "model", "model credit",
         "measured lift", "interval", "inside"],
        [[r["experiment"], r["channel"], f"{r['start']:%Y-%m-%d} to {r['end']:%Y-%m-%d}",
          r["metric"], r["segment"] or "all deals", r["model"],
          money(r["model_credit_cents"], currency), money(r["lift_cents"], currency),
          f"{money(r['lift_lower_cents'], currency)} to {money(r['lift_upper_cents'], currency)}",
          "yes" if r["inside"] else "no"]
         for r in table.iter_rows(named=True)],
        numeric=[6, 7], classes="calibration")
    from attribution.calibrate import Calibration

    caution = Calibration(table, scores, favoured).caution
    body = (f'<h3 class="finding">Your experiments favour {_e(favoured)}</h3>'
            + (f'<p class="few">{_e(caution.capitalize())}</p>' if caution else "")
            + '<p class="subtitle">Each model\'s credit for an experiment\'s channel and period '
            "(revenue: won deals closed in it; pipeline: deals created in it) beside the lift "
            "the experiment measured. Ranked by mean relative error, then by the experiments "
            "whose interval holds the credit. Credit is not caused revenue: a model far from "
            "your experiments spreads credit where your tests found no effect.</p>"
            + ranked + "<details><summary>Every experiment and model (table)</summary>"
            + detail + "</details>")
    return _section("experiments", "Checked against your experiments", body)


def _scorecard(scorecard: pl.DataFrame, currency: str, lead: str | None = None) -> str:
    frame = scorecard
    if "period" in frame.columns:
        frame = (
            frame.filter(pl.col("period").is_null())
            if frame.get_column("period").null_count() else frame
        )
    models = frame.get_column("model").unique(maintain_order=True).to_list()
    if lead in models:
        models = [lead, *[m for m in models if m != lead]]
    named = {major_name(c): c for c in frame.columns}  # a shown name -> the table's column
    columns = [(named[c], h, k) for c, h, k in SCORECARD_COLUMNS if c in named]
    if ("spend_cents" in frame.columns
            and int(frame.get_column("spend_cents").fill_null(0).sum()) == 0):
        columns = [(c, h, k) for c, h, k in columns if major_name(c) not in COST_COLUMNS]
    parts = []
    for index, model in enumerate(models):
        rows = []
        for r in frame.filter(pl.col("model") == model).iter_rows(named=True):
            unspent = not r.get("spend_cents")
            rows.append([_channel(r["channel"], r["channel_group"]),
                         *["" if unspent and major_name(c) in COST_COLUMNS
                           or (c == "leads" and r["channel"] == NO_TOUCH_CHANNEL)
                           else _cell(r[c], k, currency) for c, _, k in columns]])
        table = _table(["channel", *[h for _, h, _ in columns]], rows,
                       numeric=range(1, len(columns) + 1), classes="scorecard")
        label = f"{model} (recommended)" if model == lead else model
        parts.append(f'<details{" open" if index == 0 else ""} data-model="{_e(model)}">'
                     f"<summary>{_e(label)}</summary>{table}</details>")
    return (
        '<h3 class="finding">Channel scorecard: what each channel creates, and what it costs</h3>'
        '<p class="subtitle">Leads by first touch; credited opportunities and credited won deals '
        "are model-weighted counts (a deal shared by three channels counts a fraction to "
        "each), pipeline and revenue as credited by each model; cost figures from the spend "
        "file, empty for channels without spend. One table per model.</p>"
        + "".join(parts)
    )


def _budget_table(budget: pl.DataFrame, currency: str) -> str:
    """The budget per channel. Checked against the evidence, each row says why a channel does
    not move (greyed); when the data supports no move, the columns are what the model's credit
    alone would do, labelled so, and nothing else is recommended."""
    from attribution import budget as budgeting

    found = budgeting.verdict(budget)
    unsupported = found.checked and not found.supported
    model = str(budget.get_column("model")[0])
    has_base = (
        not unsupported
        and "last_touch_recommended_cents" in budget.columns
        and budget.get_column("last_touch_recommended_cents").null_count() == 0
    )
    plan, change = (("unchecked_recommended_cents", "unchecked_change_cents") if unsupported
                    else ("recommended_cents", "change_cents"))
    headers = ["channel", "current spend", "revenue credit", "ROAS"]
    headers += ([f"{model} alone (not supported by the data)", "change (not supported)"]
                if unsupported else ["recommended", "change"])  # money: keep name
    if has_base:
        headers += ["last-touch recommends", "difference"]
    if not unsupported:  # (nothing is bound where nothing moves)
        headers.append("bound")
    if found.checked:
        headers.append("evidence")
    rows = []
    classes = []
    if unsupported:  # as the chart: by what the model alone would spend
        budget = budget.sort([plan, "channel"], descending=[True, False])
    for r in budget.iter_rows(named=True):
        row: list[Any] = [
            _channel(r["channel"], r["channel_group"]), money(r["current_spend_cents"], currency),
            money(r["revenue_credit_cents"], currency), _cell(r["roas"], "ratio", currency),
            money(r[plan], currency), _signed(r[change], currency),
        ]
        if has_base:
            row += [
                money(r["last_touch_recommended_cents"], currency),
                _signed(r["decision_shift_cents"], currency),
            ]
        if not unsupported:
            row.append(r["bound"] or "")
        if found.checked:
            row.append("enough deals" if r["supported"]
                       else Raw(f'<span class="few">{_e(r["evidence"])}</span>'))
        rows.append(row)
        classes.append("unsupported" if unsupported or r["supported"] is False else "")
    total = int(budget.get_column(plan).sum())
    current = int(budget.get_column("current_spend_cents").sum())
    total_row: list[Any] = ["total", money(current, currency), "", "", money(total, currency),
                            _signed(total - current, currency)]
    if has_base:
        total_row += [money(int(budget.get_column("last_touch_recommended_cents").sum()), currency),
                      ""]
    total_row += [""] * (len(headers) - len(total_row))
    rows.append(total_row)
    numeric = range(1, len(headers) - (not unsupported) - found.checked)
    return _table(headers, rows, numeric=numeric,
                  classes="budget unsupported" if unsupported else "budget",
                  row_classes=[*classes, "total"])


def _configuration(result: RunResult) -> str:
    config = result.config
    stats = result.stats
    settings = [
        ("Currency", result.currency),
        ("As of",
         f"{stats.as_of:%Y-%m-%d %H:%M} UTC" if stats
         else (config.as_of or "latest date in the data")),
        ("Lookback window",
         f"{config.lookback_days} days before each deal's creation, to its close"),
        ("Deduplication",
         f"same contact and channel within {config.dedup_minutes:g} minutes count once"),
        *_channel_settings(result),
        ("Baseline", "last_touch"),
    ]
    if config.paths is not None:
        settings.append(("Path table", f"{config.paths} (separator {config.path_separator!r})"))
    if stats is not None:
        settings += [
            ("Deal journeys",
             f"{stats.deal_journeys:,} "
             f"({stats.deals_without_touch:,} without a touch in window)"),
            ("Accounts without a deal", f"{stats.account_journeys:,} (non-converting journeys)"),
            ("Touches",
             f"{stats.touches_used:,} used, {stats.touches_deduplicated:,} deduplicated, "
             f"{stats.touches_out_of_window:,} out of window"),
        ]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in settings)
    models = _table(
        ["model", "what it does", "parameters"],
        [[m.name, getattr(m, "summary", ""),
          ", ".join(f"{k}={_param(v)}" for k, v in m.params().items()) or "–"]
         for m in result.models],
    )
    files = _table(
        ["input", "file", "rows", "sha256"],
        [[f.input, f.path, f"{f.rows:,}", Raw(f'<span class="mono">{_e(f.sha256)}</span>')]
         for f in result.files],
        numeric=[2],
    )
    accounting = _table(
        ["input", "read", "used", "deduplicated", "out of window", "rejected"],
        [[a.input, f"{a.read:,}", f"{a.used:,}", f"{a.deduplicated:,}", f"{a.out_of_window:,}",
          f"{a.rejected_total:,}"] for a in result.accounting],
        numeric=range(1, 6),
    )
    reasons = [
        (a.input, reason, n)
        for a in result.accounting
        for reason, n in sorted(a.rejected.items())
    ]
    rejects = (
        _table(["input", "reason", "rows"], [[i, r, f"{n:,}"] for i, r, n in reasons], numeric=[2])
        if reasons else '<p class="note">No row was rejected.</p>'
    )
    unmapped = ""
    if result.unmapped is not None and result.unmapped.height:
        names = result.unmapped.columns
        unmapped = "<h3>Unmapped UTM sources (kept as (unmapped))</h3>" + _table(
            names, [[("" if v is None else f"{v:,}" if isinstance(v, int) else v) for v in row]
                    for row in result.unmapped.iter_rows()],
        )
    body = (
        f'<dl class="settings">{dl}</dl>'
        f"<h3>Models and parameters</h3>{models}"
        f"<h3>Input files</h3>{files}"
        "<h3>Row accounting</h3>"
        '<p class="note">read = used + deduplicated + out of window + rejected</p>'
        f"{accounting}"
        f"<h3>Rejected rows by reason</h3>{rejects}{unmapped}"
        '<h3>Assumptions</h3><ul class="note">'
        "<li>A deal's journey is every touch by any contact of its account (the buying group) from "
        "the lookback window's start to the deal's close (the as-of date for open deals).</li>"
        "<li>Revenue credit splits won deals; pipeline credit splits every created deal. Credit is "
        "rounded to the cent by the largest remainder, so each deal's credit sums to its amount."
        "</li>"
        "<li>Lost deals and accounts touched without a deal are non-converting journeys "
        "(they matter "
        "to the Markov model); open deals are pipeline, neither converted nor lost.</li>"
        "<li>Deals with no touch in their window are credited whole to (no touch), "
        "so totals always "
        "reconcile with the deals file.</li></ul>"
    )
    return _section("configuration", "Configuration and assumptions", body)


def _channel_settings(result: RunResult) -> list[tuple[str, str]]:
    """What decided the run's channels, as the run used it: the source preset, the channel
    rules (with the preset's channel vocabulary), the direct channels ``last_non_direct``
    counts (the config's, the preset's and their aliases) and the group of every channel."""
    from attribution.channels import channel_key
    from attribution.pipeline import direct_channels
    from attribution.sources import load_preset

    config = result.config
    preset = load_preset(config.source) if config.source is not None else None
    rules = (str(config.channel_rules) if config.channel_rules
             else "built-in (default_channels.toml)")
    if preset is None:
        source = "generic (no preset: the columns as the config names them)"
    else:
        where = (f"built in, attribution/presets/{preset.name}.toml"
                 if preset.origin.startswith("the ") else preset.origin)
        source = (f"{preset.name} ({preset.title}; {where}): its column names, deal stages, "
                  "date styles and channel vocabulary")
    settings = [("Source preset", source)]
    if preset is not None and preset.channel_groups:
        rules += (f", with the {preset.name} preset's groups of its "
                  f"{len(preset.channel_groups)} channel names")
    settings.append(("Channel rules", rules))
    direct: dict[str, str] = {}
    for name in direct_channels(config):
        direct.setdefault(channel_key(name), name)
    settings.append(("Direct channels",
                     ", ".join(direct.values()) + " (spellings differing only in case or "
                     "separators count too)"))
    members: dict[str, list[str]] = {}
    for channel, group in sorted(_groups(result).items(), key=lambda item: str(item[0])):
        if channel is not None and channel != NO_TOUCH_CHANNEL:
            members.setdefault(group or "other", []).append(channel)
    if members:
        order = sorted(members, key=lambda g: (theme.group_rank(g), g))
        settings.append(("Channel groups", "; ".join(
            f"{theme.group_label(g)}: {', '.join(members[g])}" for g in order)))
    return settings


def _param(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


# -- the page -----------------------------------------------------------------------------------
def _warnings(data: ReportData) -> str:
    if not data.warnings:
        return ""
    items = "".join(f"<li>{_e(w)}</li>" for w in data.warnings)
    return f'<div class="warning" id="warnings"><ul>{items}</ul></div>\n'


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"{percent(low)} to {percent(high)}"


def _sign_class(value: float) -> str:
    return "pos" if value > 0 else "neg" if value < 0 else ""


def _decision_section(data: ReportData, by_name: Mapping[str, Chart]) -> str:
    table = data.tables["decision"]
    model = data.recommended
    has_ci = "revenue_share_low" in table.columns
    headers = ["channel", f"{model} share", "last-touch share", "shift (pts)"]
    if has_ci:
        headers += [f"{model} interval", "last-touch interval"]
    headers += ["won deals touched", "evidence"]
    rows = []
    for r in table.iter_rows(named=True):
        row: list[Any] = [
            _channel(r["channel"], r["channel_group"]), percent(r["revenue_share"]),
            percent(r["last_touch_revenue_share"]),
            Raw(f'<span class="{_sign_class(r["share_shift"])}">'
                f'{r["share_shift"] * 100:+.1f}</span>'),
        ]
        if has_ci:
            row += [_interval(r["revenue_share_low"], r["revenue_share_high"]),
                    _interval(r["last_touch_revenue_share_low"],
                              r["last_touch_revenue_share_high"])]
        row += [f"{r['won_deals_touched']:,}",
                "" if r["sufficient"] else Raw(f'<span class="few">{_e(TOO_FEW)}</span>')]
        rows.append(row)
    numeric = range(1, len(headers) - 1)
    body = ""
    if "decision" in by_name:
        body += _chart_block(by_name["decision"])
    body += (f'<p class="note" data-figure="recommended">The report leads with <b>{_e(model)}</b>: '
             f"{_e(data.evidence.replace('`', ''))}. Every other model is compared further "
             "down.</p>")
    if not has_ci:
        body += ('<p class="note">No intervals: write the report with --bootstrap N (e.g. 200) '
                 "to see how sure each share is.</p>")
    body += _table(headers, rows, numeric=numeric, classes="decision")
    return _section("decision", f"{model} (recommended) against last-touch", body)


def _trend_body(data: ReportData, by_name: Mapping[str, Chart]) -> str:
    """The recommended model's credit per channel in each stored run: the chart (two runs or
    more) and the table, channels down, runs across (oldest first)."""
    trend = data.tables["trend"]
    model = data.recommended
    source = data.history or "the history database"
    if trend.height == 0:
        return (f'<p class="note">No run of {_e(model)} is stored in {_e(source)} yet: '
                f"`attribution run --model {_e(model)} --out ...` keeps one.</p>")
    runs = trend.select("run_id", "started_at").unique(maintain_order=True)
    labels = [charts_module.run_label(s, r) for r, s in runs.iter_rows()]
    cells = {(r["run_id"], r["channel"]): r for r in trend.iter_rows(named=True)}
    groups = {r["channel"]: r["channel_group"] for r in trend.iter_rows(named=True)}
    channels = (trend.filter(pl.col("run_id") == runs.row(-1)[0])
                .sort(["revenue_credit_cents", "channel"], descending=[True, False])
                .get_column("channel").to_list())
    rows = [[_channel(channel, groups.get(channel)),
             *[f"{money(cells[(run, channel)]['revenue_credit_cents'], data.currency)} "
               f"({percent(cells[(run, channel)]['revenue_share'])})"
               for run in runs.get_column("run_id").to_list()]]
            for channel in channels]
    body = _chart_block(by_name["trend"]) if "trend" in by_name else ""
    body += (f'<p class="note" data-figure="trend-source">Won revenue credited by {_e(model)} '
             f"(and its share) in the last {runs.height} runs of {_e(model)} kept in "
             f"{_e(source)}, oldest first; `attribution history` lists them.</p>")
    return body + _table(["channel", *labels], rows, numeric=range(1, len(labels) + 1))


def _budget_note(data: ReportData, budget: pl.DataFrame) -> str:
    """The budget's caveats (:func:`attribution.budget.notes`): why no move is supported and
    what the model alone would do, the held channels, the rule."""
    from attribution import budget as budgeting

    run = data.result
    lines = budgeting.notes(budget, data.currency,
                            gated="revenue_share_low" in run.summary.columns,
                            min_deals=run.config.min_deals)
    text = " ".join(line[0].upper() + line[1:] + "." for line in lines)
    return f'<p class="note" data-figure="budget-evidence">{_e(text)}</p>'


def build_report(
    result: RunResult | ReportData,
    *,
    diagnostics: Mapping[str, pl.DataFrame] | None = None,
    scorecard: pl.DataFrame | None = None,
    budget: pl.DataFrame | None = None,
    title: str = DEFAULT_TITLE,
    charts: Sequence[Chart] | None = None,
    evaluation: pl.DataFrame | None = None,
) -> str:
    """The report of a run as one self-contained HTML document.

    Parameters
    ----------
    result
        A :class:`~attribution.report.data.ReportData` (:func:`report_data`), or a
        :class:`~attribution.pipeline.RunResult` whose data is built here from it and the
        optional tables below.
    diagnostics
        :func:`attribution.pipeline.model_diagnostics` of the run (computed when omitted): the
        Markov removal effects (with ``ci_low``/``ci_high`` when bootstrapped) and transitions.
    scorecard
        Optional :func:`attribution.economics.channel_scorecard` (whole range, any models):
        adds the channel scorecard section.
    budget
        Optional :func:`attribution.budget.recommend_budget`: adds the budget section.
    title
        The page title.
    charts
        The charts, when already built by :func:`report_charts` (to reuse them for PNGs).
    evaluation
        Optional :meth:`attribution.evaluate.Evaluation.summary`: adds "Which model to trust".

    Returns
    -------
    str
        The HTML text; same inputs, same text.

    Examples
    --------
    >>> text = build_report(at.run(config))  # doctest: +SKIP
    >>> text.startswith("<!DOCTYPE html>")  # doctest: +SKIP
    True
    """
    data = _data(result, diagnostics=diagnostics, scorecard=scorecard, budget=budget,
                 evaluation=evaluation)
    if charts is None:
        charts = report_charts(data)
    return _page(data, {c.name: c for c in charts}, charts, title)


def _page(data: ReportData, by_name: dict[str, Chart], charts: Sequence[Chart],
          title: str) -> str:
    run = data.result
    tables = data.tables
    currency = data.currency
    groups = _groups(run)
    sections = []
    nav = []
    if "decision" in tables:
        sections.append(_decision_section(data, by_name))
        nav.append(("decision", "Recommended vs last-touch"))
    if "monthly" in by_name:
        sections.append(_section("monthly", "Won revenue by month and channel",
                                 _chart_block(by_name["monthly"])))
        nav.append(("monthly", "By month"))
    if "trend" in tables:
        sections.append(_section("trend", "Credit across stored runs",
                                 _trend_body(data, by_name)))
        nav.append(("trend", "Across runs"))
    budget = tables.get("budget")
    if budget is not None:
        body = _chart_block(by_name["budget"]) if "budget" in by_name else ""
        body += _budget_note(data, budget) + _budget_table(budget, currency)
        sections.append(_section("budget", "Budget move", body))
        nav.append(("budget", "Budget"))
    sections.append(_headline(run))
    nav.append(("headline", "Headline"))

    if "credit_by_model" in by_name:
        body = _chart_block(by_name["credit_by_model"])
        body += ("<details><summary>Revenue credit by channel and model (table)</summary>"
                 + _credit_table(tables["summary"], currency) + "</details>")
        sections.append(_section("credit", "Channel credit by model", body))
        nav.append(("credit", "Credit by model"))
    if "shift" in by_name:
        body = _chart_block(by_name["shift"]) + _group_legend(
            tables["comparison"].get_column("channel_group").to_list())
        body += ("<details><summary>Shift from last-touch by channel (table)</summary>"
                 + _shift_table(tables["comparison"], currency) + "</details>")
        sections.append(_section("shift", "Last-touch vs multi-touch", body))
        nav.append(("shift", "Shift from last-touch"))
    dark = tables.get("dark_funnel")
    if dark is not None:
        sections.append(_section("dark-funnel", "Dark funnel: tracked vs self-reported",
                                 _dark_funnel_table(dark, currency)))
        nav.append(("dark-funnel", "Dark funnel"))
    if "group_share" in by_name:
        sections.append(_section(
            "groups", "Demand creation vs demand capture", _chart_block(by_name["group_share"])
        ))
        nav.append(("groups", "Channel groups"))
    journeys_body = _chart_block(by_name["journey_flow"]) if "journey_flow" in by_name else ""
    journeys_body += _top_paths_table(tables["top_paths"], currency)
    sections.append(_section("journeys", "Journeys", journeys_body))
    nav.append(("journeys", "Journeys"))
    markov_body = ""
    if "transitions" in by_name:
        markov_body += _chart_block(by_name["transitions"])
    if "removal_effects" in by_name:
        markov_body += _chart_block(by_name["removal_effects"])
        markov_body += ("<details><summary>Removal effects (table)</summary>"
                        + _removal_table(tables["removal_effects"], groups, currency)
                        + "</details>")
    elif "markov" not in {m.name for m in run.models}:
        markov_body += (
            '<p class="note">The Markov model was not run: '
            "add --model markov for removal effects.</p>"
        )
    if markov_body:
        sections.append(_section("markov", "Markov chain", markov_body))
        nav.append(("markov", "Markov chain"))
    scorecard = tables.get("scorecard")
    if scorecard is not None:
        sections.append(_section("scorecard", "Channel scorecard",
                                 _scorecard(scorecard, currency, data.recommended)))
        nav.append(("scorecard", "Scorecard"))
    if "calibration_scores" in tables:
        sections.append(_calibration_section(tables["calibration"],
                                             tables["calibration_scores"], currency,
                                             data.recommended))
        nav.append(("experiments", "Your experiments"))
    if "model_error" in by_name:
        body = _chart_block(by_name["model_error"])
        body += ('<p class="note">Errors come from simulated worlds, not from this export: they '
                 "say which model recovers known channel effects in markets like the simulated "
                 "ones. See docs/evaluation.md for where every model fails.</p>")
        sections.append(_section("evaluation", "Which model to trust", body))
        nav.append(("evaluation", "Model accuracy"))
    sections.append(_configuration(run))
    nav.append(("configuration", "Configuration"))

    specs = {c.name: c.spec for c in charts}
    as_of = f"as of {run.stats.as_of:%Y-%m-%d}" if run.stats else "from a path table"
    subtitle = (f"{as_of} · {currency} · led by {data.recommended} · {len(run.models)} models · "
                f"lookback {run.config.lookback_days} days")
    nav_html = "".join(f'<a href="#{i}">{_e(label)}</a>' for i, label in nav)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="attribution">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}{theme.group_css(groups.values())}</style>\n"
        "</head>\n<body>\n"
        f'<header class="top"><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header>\n'
        f"<nav>{nav_html}</nav>\n<main>\n{_warnings(data)}{''.join(sections)}"
        "<footer>Made by attribution. Charts: Vega-Lite, embedded; "
        "this file needs no network.</footer>\n"
        "</main>\n"
        f"<script>{ERROR_SCRIPT}</script>\n"
        f'<script type="application/json" id="report-specs">{_script_json(specs)}</script>\n'
        '<script type="application/json" id="report-embed-options">'
        f"{_script_json(embed_options(currency))}</script>\n"
        f"<script>{vega_bundle()}</script>\n"
        f"<script>{EMBED_SCRIPT}</script>\n"
        "</body>\n</html>\n"
    )


def write_report(
    result: RunResult | ReportData,
    path: str | Path,
    *,
    png_dir: str | Path | None = None,
    diagnostics: Mapping[str, pl.DataFrame] | None = None,
    scorecard: pl.DataFrame | None = None,
    budget: pl.DataFrame | None = None,
    title: str = DEFAULT_TITLE,
    evaluation: pl.DataFrame | None = None,
) -> Path:
    """Write the HTML report to ``path`` (and the main charts as PNG into ``png_dir``).

    See :func:`build_report` for the parameters; the PNGs are named after the charts
    (``credit_by_model.png``, ``shift.png``, ...) and drawn without a browser
    (:func:`attribution.report.png.write_pngs`). Returns the path of the HTML file.

    Examples
    --------
    >>> write_report(at.run(config), "report.html", png_dir="slides")  # doctest: +SKIP
    PosixPath('report.html')
    """
    data = _data(result, diagnostics=diagnostics, scorecard=scorecard, budget=budget,
                 evaluation=evaluation)
    charts = report_charts(data)
    text = build_report(data, title=title, charts=charts)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, "utf-8")
    if png_dir is not None:
        from attribution.report.png import write_pngs

        write_pngs(charts, png_dir, currency=data.currency)
    return target
