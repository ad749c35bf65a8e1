"""The report's charts as Vega-Lite specifications, each titled by the finding it shows.

Every function takes result tables (polars frames, money in minor units) and returns a
:class:`Chart` - or ``None`` when the run has nothing to plot (no last-touch model to compare
with, no Markov model, no spend). A chart's ``title`` states the finding in words a board deck
can reuse ("Every multi-touch model gives demand creation more credit than last-touch"); the
``subtitle`` says what is plotted. Nothing is re-estimated here: shares, shifts, removal
effects and budgets come from :mod:`attribution.compare`, :mod:`attribution.graph`,
:mod:`attribution.models.markov` and :mod:`attribution.budget`; this module only arranges
them (the journey flow lays out its Sankey ribbons in Python so that it needs no plug-in).

The specs carry their data inline (``data.values``) and no title; :meth:`Chart.titled` adds
the title for a stand-alone PNG.

Names are data, not keys. Vega groups, sorts and scales by field values through JavaScript
objects, where a channel named ``constructor`` or ``__proto__`` collides with the object's own
properties (charts drew wrong or threw). So every chart encodes its channels (and Markov
states) by position, ``k0``, ``k1``, ... (:class:`Keys`), and shows the names through an axis
``labelExpr`` that looks the position up in a list of the names held by a parameter (shown
by :func:`~attribution.render.printable`: control characters escaped). The names are never
written into an expression: Vega-Lite looks string constants of an expression up as object
properties too (``"constructor"`` there failed the chart). Tooltips and text marks carry the
names as plain values. The HTML page escapes titles and inlines the specs as JSON
safe inside ``<script>``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from attribution.models.self_reported import SELF_REPORTED_MODELS
from attribution.render import compact_money, money, percent, printable
from attribution.report import theme
from attribution.report.theme import CAPTURE, CREATION, group_label
from attribution.schema import minor_per_major

BASELINE = "last_touch"
CONVERSION = "(conversion)"
NULL = "(null)"
START = "(start)"
STATE_LABELS = {START: "Start", CONVERSION: "Won", NULL: "Not won"}

Spec = dict[str, Any]


@dataclass(frozen=True)
class Chart:
    """One chart: ``name`` (the HTML container ``chart-<name>`` and ``<name>.png``), the
    finding as ``title``, what is plotted as ``subtitle``, and the Vega-Lite ``spec``."""

    name: str
    title: str
    subtitle: str
    spec: Spec

    def titled(self) -> Spec:
        """The spec with its title and subtitle, for a stand-alone image."""
        return {"title": {"text": self.title, "subtitle": self.subtitle}, **self.spec}


# -- helpers ------------------------------------------------------------------------------------
class Keys:
    """Names keyed by their position (``k0``, ``k1``, ...) for a chart's encodings: a key is
    never a JavaScript object property (``constructor``, ``__proto__``), and the names come
    back on the axis through :meth:`axis_labels`, from the chart parameter :meth:`param`
    (add it to the spec's top-level ``params``)."""

    #: the chart parameter holding the names
    PARAM = "key_names"

    def __init__(self, names: Iterable[str], labels: Mapping[str, str] | None = None) -> None:
        self.names = list(dict.fromkeys(names))
        self._keys = {name: f"k{index}" for index, name in enumerate(self.names)}
        self._labels = labels or {}

    def __getitem__(self, name: str) -> str:
        return self._keys[name]

    def keys(self, names: Iterable[str]) -> list[str]:
        return [self._keys[name] for name in names]

    def label(self, name: str) -> str:
        """What a reader sees for ``name`` (escaped control characters)."""
        return self._labels.get(name, printable(name))

    def param(self) -> Spec:
        """The parameter holding the names, in key order (data, not expression text)."""
        return {"name": self.PARAM, "value": [self.label(name) for name in self.names]}

    def axis_labels(self) -> dict[str, str]:
        """Axis properties showing each key's name (the parameter indexed by the key's
        position)."""
        return {"labelExpr": f"{self.PARAM}[toNumber(slice(datum.value, 1))]"}


def _major(cents: int | float | None, currency: str) -> float | None:
    """Minor units of ``currency`` as its major units (a chart's axis value)."""
    return None if cents is None else cents / minor_per_major(currency)


def _group_rank(group: str | None) -> int:
    return theme.group_rank(group)


def label_colour_expr(groups: Mapping[str, str | None], keys: Keys,
                      default: str = "#374151") -> dict[str, str]:
    """A Vega expression colouring axis labels (channels, encoded by their :class:`Keys`) by
    their channel group's colour (:func:`~attribution.report.theme.group_colour`: the tables'
    colour too); ungrouped channels in ``default``."""
    named = set(keys.names)
    by_group: dict[str | None, list[str]] = {}
    for channel, group in groups.items():
        if channel in named and theme.group_colour(group) != theme.OTHER_COLOUR:
            by_group.setdefault(group, []).append(keys[channel])
    expr = f"'{default}'"
    for group in reversed(theme.group_order(by_group)):
        expr = (f"indexof({json.dumps(sorted(by_group[group]))}, datum.value) >= 0 ? "
                f"'{theme.group_colour(group)}' : {expr}")
    return {"expr": expr}


def _models(frame: pl.DataFrame) -> list[str]:
    return frame.get_column("model").unique(maintain_order=True).to_list()


def channel_groups(summary: pl.DataFrame) -> dict[str, str | None]:
    """``channel -> channel_group`` of a summary or comparison frame."""
    return dict(
        summary.select("channel", "channel_group")
        .unique(subset="channel", keep="first")
        .iter_rows()
    )


def channel_order(summary: pl.DataFrame) -> list[str]:
    """Channels by group (creation, capture, other), then by mean revenue credit over models."""
    mean = (
        summary.group_by("channel", "channel_group")
        .agg(
            pl.col("revenue_credit_cents").mean().alias("mean"),
            pl.col("pipeline_credit_cents").mean().alias("pipe"),
        )
        .with_columns(
            pl.col("channel_group").map_elements(_group_rank, return_dtype=pl.Int64).alias("rank")
        )
        .sort(["rank", "mean", "pipe", "channel"], descending=[False, True, True, False])
    )
    return mean.get_column("channel").to_list()


def _credited(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Rows of the channels with a non-zero ``column`` under at least one model."""
    return frame.filter((pl.col(column) != 0).any().over("channel"))


def _sign_money(cents: int, currency: str) -> str:
    text = compact_money(cents, currency)
    return text if cents < 0 else f"+{text}"


# -- 0. the decision: the recommended model against last-touch --------------------------------
TOO_FEW_LABEL = "too few deals to tell"
#: what a model alone would do where the data supports no move: pale, never a recommendation
UNSUPPORTED_COLOUR = "#F2DDB3"


def decision(table: pl.DataFrame, currency: str, model: str) -> Chart | None:
    """Each channel's share of won revenue under ``model`` and under last-touch, channels
    sorted by the shift, with the bootstrap interval of each share when the run has one.

    ``table`` is :func:`attribution.report.data.decision_table`: ``channel, channel_group,
    revenue_credit, revenue_share, last_touch_revenue_share, share_shift, sufficient`` and,
    with intervals, ``revenue_share_low/high`` and ``last_touch_revenue_share_low/high``.
    A channel marked insufficient is drawn hollow and never named in the title."""
    if table.height == 0:
        return None
    rows = table  # the table's channels, every one: a channel both models give 0% is a dot at 0
    order = rows.get_column("channel").to_list()
    keys = Keys(order)
    groups = channel_groups(rows)
    has_ci = "revenue_share_low" in rows.columns
    series = [(BASELINE, "last_touch_revenue_share", "last_touch_revenue_share_low",
               "last_touch_revenue_share_high"),
              (model, "revenue_share", "revenue_share_low", "revenue_share_high")]
    values = []
    for row in rows.iter_rows(named=True):
        for name, share, low, high in series:
            entry = {
                "key": keys[row["channel"]],
                "channel": printable(row["channel"]),
                "model": name,
                "share": row[share] * 100,
                "share_label": percent(row[share]),
                "evidence": "enough deals" if row["sufficient"] else TOO_FEW_LABEL,
                "shift_label": f"{row['share_shift'] * 100:+.1f} pts",
            }
            if has_ci:
                entry["low"] = row[low] * 100
                entry["high"] = row[high] * 100
                entry["range_label"] = f"{percent(row[low])} to {percent(row[high])}"
            values.append(entry)
    sufficient = rows.filter(pl.col("sufficient"))
    if sufficient.height:
        top = sufficient.sort(["share_shift", "channel"],
                              descending=[True, False]).row(0, named=True)
        bottom = sufficient.sort(["share_shift", "channel"]).row(0, named=True)
        if top["share_shift"] > 0:
            title = (f"{model} credits {printable(top['channel'])} with "
                     f"{percent(top['revenue_share'])} of won revenue, last-touch with "
                     f"{percent(top['last_touch_revenue_share'])}")
            if bottom["share_shift"] < 0:
                title += (f"; {printable(bottom['channel'])} falls from "
                          f"{percent(bottom['last_touch_revenue_share'])} to "
                          f"{percent(bottom['revenue_share'])}")
        else:
            title = f"{model} and last-touch credit the channels with enough deals alike"
    else:
        title = (f"Too few deals to tell where {model} and last-touch differ: no channel has "
                 "enough won deals for a finding")
    colours = [theme.BASELINE_COLOUR, "#E69F00"]
    names = [BASELINE, model]
    base_encoding: Spec = {
        "y": {"field": "key", "type": "nominal", "sort": keys.keys(order), "title": None,
              "axis": {**keys.axis_labels(), "labelColor": label_colour_expr(groups, keys),
                       "labelFontSize": 12, "labelFontWeight": 600}},
        "yOffset": {"field": "model", "type": "nominal", "sort": names},
    }
    tooltip = [{"field": "channel", "title": "Channel"}, {"field": "model", "title": "Model"},
               {"field": "share_label", "title": "Share of won revenue"},
               {"field": "shift_label", "title": f"{model} minus last-touch"},
               {"field": "evidence", "title": "Evidence"}]
    if has_ci:
        tooltip.insert(3, {"field": "range_label", "title": "Interval"})
    layers: list[Spec] = []
    if has_ci:
        layers.append({
            "mark": {"type": "rule", "strokeWidth": 2},
            "encoding": {**base_encoding,
                         "x": {"field": "low", "type": "quantitative"}, "x2": {"field": "high"},
                         "color": {"field": "model", "type": "nominal",
                                   "scale": {"domain": names, "range": colours},
                                   "title": "Model"},
                         "opacity": {"value": 0.6}},
        })
    layers.append({
        "mark": {"type": "point", "filled": True, "size": 70},
        "encoding": {
            **base_encoding,
            "x": {"field": "share", "type": "quantitative",
                  "title": "Share of won revenue (%)", "axis": {"format": ",.0f"}},
            "color": {"field": "model", "type": "nominal", "scale": {"domain": names,
                                                                      "range": colours},
                      "title": "Model"},
            "shape": {"field": "evidence", "type": "nominal",
                      "scale": {"domain": ["enough deals", TOO_FEW_LABEL],
                                "range": ["circle", "triangle-up"]},
                      "title": "Evidence"},
            "tooltip": tooltip,
        },
    })
    spec: Spec = {"params": [keys.param()], "data": {"values": values}, "width": 760,
                  "height": {"step": 18}, "layer": layers}
    subtitle = (f"Share of won revenue per channel under {model} (the recommended model) and "
                "last-touch, channels sorted by how much more " + model + " gives them"
                + ("; lines: bootstrap intervals" if has_ci else
                   "; run with --bootstrap N for intervals")
                + "; triangles: too few deals to tell")
    return Chart("decision", title, subtitle, spec)


# -- 0b. won revenue by month -------------------------------------------------------------------
def month_range(months: Iterable[str]) -> list[str]:
    """Every month (``2025-04``) from the earliest to the latest of ``months``.

    >>> month_range(["2025-11", "2026-02"])
    ['2025-11', '2025-12', '2026-01', '2026-02']
    """
    present = sorted(set(months))
    if not present:
        return []
    year, month = map(int, present[0].split("-"))
    last = tuple(map(int, present[-1].split("-")))
    every = []
    while (year, month) <= last:
        every.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return every


def monthly_credit(table: pl.DataFrame, currency: str, model: str) -> Chart | None:
    """Stacked bars: won revenue by month of close, split by the channels ``model`` credits.

    ``table``: ``month`` ("2025-01"), ``channel``, ``channel_group``, ``revenue_credit``."""
    if table.height == 0 or int(table.get_column("revenue_credit_cents").sum()) == 0:
        return None
    totals = (table.group_by("channel").agg(pl.col("revenue_credit_cents").sum())
              .sort(["revenue_credit_cents", "channel"], descending=[True, False]))
    order = totals.get_column("channel").to_list()
    keys = Keys(order)
    values = [
        {"month": row["month"], "key": keys[row["channel"]],
         "channel": printable(row["channel"]), "credit": _major(row["revenue_credit_cents"],
                                                                currency),
         "credit_label": money(row["revenue_credit_cents"], currency),
         "rank": order.index(row["channel"])}
        for row in table.iter_rows(named=True)
    ]
    months = table.group_by("month").agg(pl.col("revenue_credit_cents").sum()).sort("month")
    best = months.sort(["revenue_credit_cents", "month"], descending=[True, False]).row(0,
                                                                                        named=True)
    total = int(months.get_column("revenue_credit_cents").sum())
    # every month from the first to the last: a month without a won deal is a zero bar, not
    # a gap the axis closes
    axis = month_range(months.get_column("month").to_list())
    empty = [m for m in axis if m not in set(months.get_column("month").to_list())]
    title = (f"Won revenue by month of close, credited by {model}: "
             f"{compact_money(total, currency)} over "
             f"{len(axis)} months, the most in {best['month']}")
    if empty:
        title += (f"; no won revenue in {', '.join(empty[:3])}"
                  + (f" and {len(empty) - 3} more months" if len(empty) > 3 else ""))
    palette = theme.MODEL_COLOURS * (len(order) // len(theme.MODEL_COLOURS) + 1)
    spec: Spec = {
        "params": [keys.param()],
        "data": {"values": values},
        "width": 760,
        "height": 260,
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "month", "type": "ordinal", "title": None,
                  "scale": {"domain": axis}, "axis": {"labelAngle": -45}},
            "y": {"field": "credit", "type": "quantitative", "stack": "zero",
                  "title": f"Won revenue ({currency})", "axis": {"format": "$,.3~s"}},
            "color": {"field": "key", "type": "nominal", "sort": keys.keys(order),
                      "scale": {"domain": keys.keys(order), "range": palette[:len(order)]},
                      "title": "Channel",
                      "legend": {**keys.axis_labels(), "columns": 2, "symbolLimit": 40}},
            "order": {"field": "rank", "type": "quantitative"},
            "tooltip": [{"field": "month", "title": "Month"},
                        {"field": "channel", "title": "Channel"},
                        {"field": "credit_label", "title": "Won revenue credited"}],
        },
    }
    subtitle = (f"Revenue of deals won in each month, split over channels by {model} "
                "(credited revenue, not caused revenue)")
    return Chart("monthly", title, subtitle, spec)


# -- 0c. credit across stored runs ----------------------------------------------------------------
def run_label(started_at: Any, run_id: str) -> str:
    """How a stored run is named on an axis: its start (UTC, to the minute) and the tail of
    its id (two runs may start in the same minute)."""
    return f"{started_at:%Y-%m-%d %H:%M} #{str(run_id)[-8:]}"


def credit_trend(table: pl.DataFrame, currency: str, model: str) -> Chart | None:
    """Lines: each channel's revenue credited by ``model`` in each stored run, oldest first.

    ``table``: :func:`attribution.db.channel_trend` (``run_id``, ``started_at``, ``channel``,
    ``revenue_credit``, ``revenue_share``, ...)."""
    if table.height == 0:
        return None
    runs = table.select("run_id", "started_at").unique(maintain_order=True)
    if runs.height < 2:
        return None
    labels = [run_label(s, r) for r, s in runs.iter_rows()]
    position = {r: i for i, r in enumerate(runs.get_column("run_id").to_list())}
    totals = (table.group_by("channel").agg(pl.col("revenue_credit_cents").sum())
              .sort(["revenue_credit_cents", "channel"], descending=[True, False]))
    order = totals.get_column("channel").to_list()
    keys = Keys(order)
    values = [
        {"run": labels[position[row["run_id"]]], "position": position[row["run_id"]],
         "key": keys[row["channel"]], "channel": printable(row["channel"]),
         "credit": _major(row["revenue_credit_cents"], currency),
         "credit_label": money(row["revenue_credit_cents"], currency),
         "share_label": percent(row["revenue_share"])}
        for row in table.iter_rows(named=True)
    ]
    oldest, newest = runs.row(0)[0], runs.row(-1)[0]
    moves = (table.filter(pl.col("run_id") == newest).select("channel", "revenue_credit_cents")
             .join(table.filter(pl.col("run_id") == oldest).select(
                 "channel", pl.col("revenue_credit_cents").alias("before")), on="channel")
             .with_columns((pl.col("revenue_credit_cents") - pl.col("before")).alias("move"))
             .sort([pl.col("move").abs(), "channel"], descending=[True, False]))
    top = moves.row(0, named=True) if moves.height else None
    title = f"{model}'s credit over the last {runs.height} stored runs"
    if top is not None and top["move"]:
        title += (f": {printable(top['channel'])} moved the most, "
                  f"{_sign_money(int(top['move']), currency)}")
    palette = theme.MODEL_COLOURS * (len(order) // len(theme.MODEL_COLOURS) + 1)
    spec: Spec = {
        "params": [keys.param()],
        "data": {"values": values},
        "width": 760,
        "height": 260,
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "run", "type": "ordinal", "sort": labels, "title": "Stored run",
                  "axis": {"labelAngle": -45}},
            "y": {"field": "credit", "type": "quantitative",
                  "title": f"Won revenue credited ({currency})", "axis": {"format": "$,.3~s"}},
            "color": {"field": "key", "type": "nominal", "sort": keys.keys(order),
                      "scale": {"domain": keys.keys(order), "range": palette[:len(order)]},
                      "title": "Channel",
                      "legend": {**keys.axis_labels(), "columns": 2, "symbolLimit": 40}},
            "tooltip": [{"field": "run", "title": "Run"},
                        {"field": "channel", "title": "Channel"},
                        {"field": "credit_label", "title": "Won revenue credited"},
                        {"field": "share_label", "title": "Share"}],
        },
    }
    subtitle = (f"Each channel's won revenue credited by {model} in each run kept in the "
                "history database (credited revenue, not caused revenue)")
    return Chart("trend", title, subtitle, spec)


# -- 1. credit by model -----------------------------------------------------------------------
def credit_by_model(summary: pl.DataFrame, currency: str, baseline: str = BASELINE, *,
                    recommended: str | None = None,
                    insufficient: Iterable[str] = ()) -> Chart | None:
    """A dot plot: each channel's share of won revenue under every model, the recommended
    model and last-touch emphasised. The title never names a channel in ``insufficient``."""
    if summary.height == 0:
        return None
    models = _models(summary)
    if baseline in models:
        models = [baseline, *[m for m in models if m != baseline]]
    summary = _credited(summary, "revenue_credit_cents")
    order = channel_order(summary)
    groups = channel_groups(summary)
    keys = Keys(order)
    skip = set(insufficient)

    def role(name: str) -> str:
        if name == baseline:
            return "last-touch"
        if name == recommended:
            return f"{name} (recommended)"
        return "other models"

    roles = ["other models", "last-touch"] + ([f"{recommended} (recommended)"]
                                                if recommended and recommended != baseline
                                                and recommended in models else [])
    values = [
        {
            "model": row["model"],
            "role": role(row["model"]),
            "rank": roles.index(role(row["model"])),
            "key": keys[row["channel"]],
            "channel": printable(row["channel"]),
            "group": group_label(row["channel_group"]),
            "share": row["revenue_share"] * 100,
            "credit": _major(row["revenue_credit_cents"], currency),
            "credit_label": money(row["revenue_credit_cents"], currency),
            "share_label": percent(row["revenue_share"]),
        }
        for row in summary.iter_rows(named=True)
    ]
    title = "Revenue credit by channel depends on the model"
    # the headline compares touch models: the self-reported ones credit what buyers say
    touch_models = [m for m in models if m not in SELF_REPORTED_MODELS]
    if baseline in touch_models and len(touch_models) > 1:
        others = [m for m in touch_models if m != baseline]
        wide = summary.pivot(on="model", index="channel",
                             values="revenue_credit_cents").fill_null(0)
        gains = wide.select(
            "channel",
            pl.col(baseline).alias("base"),
            pl.mean_horizontal(others).alias("mean"),
        ).with_columns((pl.col("mean") - pl.col("base")).alias("gain"))
        gains = gains.filter(~pl.col("channel").is_in(list(skip)))
        if gains.height:
            top = gains.sort(["gain", "channel"], descending=[True, False]).row(0, named=True)
            if top["gain"] > 0:
                title = (
                    f"{printable(top['channel'])} is undervalued by last-touch: "
                    f"{compact_money(int(top['base']), currency)} "
                    f"under last-touch vs {compact_money(round(top['mean']), currency)} on "
                    f"average across {len(others)} multi-touch "
                    f"model{'s' if len(others) > 1 else ''}"
                )
        elif skip:
            title = "Too few deals to tell which channels last-touch undervalues"
    colours = [theme.OTHER_COLOUR, theme.BASELINE_COLOUR, "#E69F00"][:len(roles)]
    sizes = [40, 110, 110][:len(roles)]
    spec: Spec = {
        "params": [keys.param()],
        "data": {"values": values},
        "width": 760,
        "height": {"step": 22},
        "mark": {"type": "point", "filled": True},
        "encoding": {
            "y": {"field": "key", "type": "nominal", "sort": keys.keys(order), "title": None,
                  "axis": {**keys.axis_labels(), "labelColor": label_colour_expr(groups, keys),
                           "labelFontSize": 12, "labelFontWeight": 600}},
            "x": {"field": "share", "type": "quantitative",
                  "title": "Share of won revenue (%)", "axis": {"format": ",.0f"}},
            "color": {"field": "role", "type": "nominal", "sort": roles,
                      "scale": {"domain": roles, "range": colours}, "title": None},
            "size": {"field": "role", "type": "nominal", "sort": roles,
                     "scale": {"domain": roles, "range": sizes}, "legend": None},
            "order": {"field": "rank", "type": "quantitative"},
            "opacity": {"value": 0.9},
            "tooltip": [
                {"field": "channel", "title": "Channel"},
                {"field": "model", "title": "Model"},
                {"field": "credit_label", "title": "Revenue credit"},
                {"field": "share_label", "title": "Share of revenue"},
            ],
        },
    }
    subtitle = ("Each channel's share of won revenue under every model (a dot per model); "
                "last-touch and the recommended model emphasised")
    return Chart("credit_by_model", title, subtitle, spec)


# -- 2. shift from last-touch -----------------------------------------------------------------
def shift_from_last_touch(
    comparison: pl.DataFrame, currency: str, baseline: str = BASELINE
) -> Chart | None:
    """Diverging bars, one panel per multi-touch model: revenue credit minus last-touch's."""
    if comparison.height == 0:
        return None
    others = [m for m in _models(comparison) if m != baseline]
    if not others:
        return None
    rows = _credited(comparison.filter(pl.col("model") != baseline), "revenue_shift_cents")
    groups = channel_groups(comparison)
    order = (
        rows.group_by("channel")
        .agg(pl.col("revenue_shift_cents").mean().alias("mean"))
        .sort(["mean", "channel"], descending=[True, False])
        .get_column("channel")
        .to_list()
    )
    keys = Keys(order)
    values = [
        {
            "model": row["model"],
            "key": keys[row["channel"]],
            "channel": printable(row["channel"]),
            "group": group_label(row["channel_group"]),
            "shift": _major(row["revenue_shift_cents"], currency),
            "shift_label": (
                ("+" if row["revenue_shift_cents"] > 0 else "") + money(row["revenue_shift_cents"],
                                                                        currency)
            ),
            "share_label": f"{row['share_shift'] * 100:+.1f} pts",
            "base_label": money(row["last_touch_revenue_credit_cents"], currency),
            "credit_label": money(row["revenue_credit_cents"], currency),
        }
        for row in rows.iter_rows(named=True)
    ]
    creation = (
        rows.filter(pl.col("channel_group") == CREATION)
        .group_by("model")
        .agg(pl.col("revenue_shift_cents").sum())
    )
    shifts = dict(creation.iter_rows())
    if shifts:
        low, high = min(shifts.values()), max(shifts.values())
        span = (
            _sign_money(low, currency) if low == high
            else f"{_sign_money(low, currency)} to {_sign_money(high, currency)}"
        )
        if low > 0:
            count = (
                "The multi-touch model gives" if len(shifts) == 1
                else f"All {len(shifts)} multi-touch models give"
            )
            title = f"{count} demand creation more revenue credit than last-touch: {span}"
        elif high < 0:
            title = f"Multi-touch models give demand creation less credit than last-touch: {span}"
        else:
            gain = sum(1 for v in shifts.values() if v > 0)
            title = (
                f"{gain} of {len(shifts)} multi-touch models give demand creation more credit than "
                f"last-touch ({span})"
            )
    else:
        title = "How each multi-touch model moves credit away from last-touch"
    columns = min(3, len(others))
    spec: Spec = {
        "params": [keys.param()],
        "data": {"values": values},
        "facet": {"field": "model", "type": "nominal", "sort": others, "title": None,
                  "header": {"labelFontSize": 14, "labelAnchor": "start"}},
        "columns": columns,
        "spacing": {"row": 18, "column": 24},
        "resolve": {"axis": {"y": "independent"}},
        "spec": {
            "width": 880 // columns - 110,
            "height": {"step": 15},
            "layer": [
                {
                    "mark": {"type": "bar", "cornerRadiusEnd": 2},
                    "encoding": {
                        "y": {"field": "key", "type": "nominal", "sort": keys.keys(order),
                              "title": None,
                              "axis": {**keys.axis_labels(),
                                       "labelColor": label_colour_expr(groups, keys),
                                       "labelFontSize": 11}},
                        "x": {"field": "shift", "type": "quantitative",
                              "title": f"vs last-touch ({currency})",
                              "axis": {"format": "$,.2~s", "tickCount": 4}},
                        "color": {"field": "group", "type": "nominal",
                                  "scale": theme.group_scale(
                                      rows.get_column("channel_group").to_list()),
                                  "title": "Channel group"},
                        "tooltip": [
                            {"field": "channel", "title": "Channel"},
                            {"field": "model", "title": "Model"},
                            {"field": "shift_label", "title": "Shift vs last-touch"},
                            {"field": "share_label", "title": "Share shift"},
                            {"field": "base_label", "title": "Last-touch credit"},
                            {"field": "credit_label", "title": "Model credit"},
                        ],
                    },
                },
                {"mark": {"type": "rule", "color": "#4B5563"}, "encoding": {"x": {"datum": 0}}},
            ],
        },
    }
    subtitle = (
        "Revenue credit under each model minus last-touch's, per channel: right of the line "
        "gains, left loses; green is demand creation"
    )
    return Chart("shift", title, subtitle, spec)


# -- 3. share by channel group ----------------------------------------------------------------
def group_share(summary: pl.DataFrame, currency: str, baseline: str = BASELINE) -> Chart | None:
    """100% stacked bars: each model's revenue split between channel groups."""
    if summary.height == 0:
        return None
    models = _models(summary)
    if baseline in models:
        models = [baseline, *[m for m in models if m != baseline]]
    present = theme.group_order(summary.get_column("channel_group").unique().to_list())
    by_group = (
        summary.with_columns(
            pl.col("channel_group").fill_null("other")
            .map_elements(group_label, return_dtype=pl.String).alias("group")
        )
        .group_by("model", "group")
        .agg(
            pl.col("revenue_share").sum().alias("share"),
            pl.col("revenue_credit_cents").sum().alias("credit"),
        )
    )
    values = []
    for model in models:
        start = 0.0
        part = {g: (s, c) for _, g, s, c in by_group.filter(pl.col("model") == model).iter_rows()}
        for group in [group_label(g) for g in present]:
            if group not in part:
                continue
            share, credit = part[group]
            values.append(
                {
                    "model": model,
                    "group": group,
                    "start": start,
                    "end": start + share,
                    "mid": start + share / 2,
                    "share": share,
                    "label": percent(share, 0) if share >= 0.04 else "",
                    "credit_label": money(int(credit), currency),
                    "share_label": percent(share),
                }
            )
            start += share
    creation = {
        m: s for m, g, s, _ in by_group.iter_rows() if g == theme.GROUP_LABELS[CREATION]
    }
    title = "Revenue credit by channel group and model"
    if baseline in models and len(models) > 1:
        others = [creation.get(m, 0.0) for m in models if m != baseline]
        base = creation.get(baseline, 0.0)
        low, high = min(others), max(others)
        span = (
            percent(low, 0) if round(low, 2) == round(high, 2)
            else f"{percent(low, 0)}-{percent(high, 0)}"
        )
        title = (
            f"Demand creation earns {percent(base, 0)} of revenue credit under last-touch, "
            f"{span} under multi-touch models"
        )
    y = {"field": "model", "type": "nominal", "sort": models, "title": None,
         "axis": {"labelFontSize": 13, "labelFontWeight": 600}}
    spec: Spec = {
        "data": {"values": values},
        "width": 820,
        "height": {"step": 30},
        "layer": [
            {
                "mark": {"type": "bar", "height": {"band": 0.8}},
                "encoding": {
                    "y": y,
                    "x": {"field": "start", "type": "quantitative", "title": "Share of won revenue",
                          "scale": {"domain": [0, 1]}, "axis": {"format": "%"}},
                    "x2": {"field": "end"},
                    "color": {"field": "group", "type": "nominal",
                              "scale": theme.group_scale(present),
                              "title": "Channel group"},
                    "tooltip": [
                        {"field": "model", "title": "Model"},
                        {"field": "group", "title": "Group"},
                        {"field": "share_label", "title": "Share"},
                        {"field": "credit_label", "title": "Revenue credit"},
                    ],
                },
            },
            {
                "mark": {"type": "text", "color": "white", "fontWeight": 600, "fontSize": 12},
                "encoding": {"y": y, "x": {"field": "mid", "type": "quantitative"},
                             "text": {"field": "label"}},
            },
        ],
    }
    return Chart("group_share", title, "Each model's won revenue split by channel group", spec)


# -- 4. journey flow ----------------------------------------------------------------------------
def journey_flow(
    paths: pl.DataFrame,
    groups: Mapping[str, str | None],
    currency: str,
    *,
    height: int = 460,
    points: int = 24,
) -> Chart | None:
    """Sankey of won revenue from each journey's first-touch channel to its last-touch channel.

    ``paths`` is :func:`attribution.graph.distinct_paths` (``channels, conversions, nulls,
    revenue``); ribbon widths are won revenue. The layout is computed here (nodes stacked per
    column, ribbons as smooth areas), so any Vega-Lite renderer draws it without a plug-in.
    Returns None when no journey with touches won.
    """
    flows = paths.filter((pl.col("channels").list.len() > 0)
                         & (pl.col("revenue_cents") > 0)).select(
        pl.col("channels").list.first().alias("first"),
        pl.col("channels").list.last().alias("last"),
        "conversions",
        "revenue_cents",
    )
    if flows.height == 0:
        return None
    pairs = (
        flows.group_by("first", "last")
        .agg(pl.col("conversions").sum(), pl.col("revenue_cents").sum())
        .sort("first", "last")
    )
    total = int(pairs.get_column("revenue_cents").sum())
    size: dict[tuple[int, str], int] = defaultdict(int)
    deals: dict[tuple[int, str], int] = defaultdict(int)
    for first, last, won, revenue in pairs.iter_rows():
        size[(0, first)] += revenue
        size[(1, last)] += revenue
        deals[(0, first)] += won
        deals[(1, last)] += won

    def ordered(column: int) -> list[str]:
        names = [name for (c, name) in size if c == column]
        return sorted(names, key=lambda n: (_group_rank(groups.get(n)), -size[(column, n)], n))

    columns = [ordered(0), ordered(1)]
    pad = 8.0
    scale = min((height - pad * (len(col) - 1)) / total for col in columns)
    top: dict[tuple[int, str], float] = {}
    for index, column in enumerate(columns):
        used = sum(size[(index, n)] for n in column) * scale + pad * (len(column) - 1)
        y = (height - used) / 2
        for name in column:
            top[(index, name)] = y
            y += size[(index, name)] * scale + pad
    xs = [0.0, 1.0]
    node_width = 0.012
    headers = ["First touch", "Last touch"]

    nodes = []
    for index, column in enumerate(columns):
        for name in column:
            revenue = size[(index, name)]
            y0 = top[(index, name)]
            y1 = y0 + revenue * scale
            nodes.append({
                "x0": xs[index] - (node_width if index == 1 else 0),
                "x1": xs[index] + (node_width if index == 0 else 0),
                "y0": y0, "y1": y1, "colour": theme.group_colour(groups.get(name)),
                "label": (
                    f"{printable(name)}  {compact_money(revenue, currency)}"
                    if (y1 - y0) >= 8 else ""
                ),
                "column": headers[index], "node": printable(name),
                "revenue": money(revenue, currency),  # money: keep name
                "share": percent(revenue / total), "won": f"{deals[(index, name)]:,}",
                "label_x": xs[index] - 0.012 if index == 0 else xs[index] + 0.012,
                "label_y": (y0 + y1) / 2, "side": index,
            })

    # ribbons leave a source in target order and enter a target in source order: no crossing at
    # nodes
    first_rank = {n: i for i, n in enumerate(columns[0])}
    last_rank = {n: i for i, n in enumerate(columns[1])}
    source_start: dict[tuple[str, str], float] = {}
    target_start: dict[tuple[str, str], float] = {}
    offset: dict[str, float] = defaultdict(float)
    rows = list(pairs.iter_rows())
    for first, last, _, revenue in sorted(rows, key=lambda r: (first_rank[r[0]], last_rank[r[1]])):
        source_start[(first, last)] = top[(0, first)] + offset["s" + first]
        offset["s" + first] += revenue * scale
    for first, last, _, revenue in sorted(rows, key=lambda r: (last_rank[r[1]], first_rank[r[0]])):
        target_start[(first, last)] = top[(1, last)] + offset["t" + last]
        offset["t" + last] += revenue * scale
    ribbons: list[dict[str, Any]] = []
    x0, x1 = xs[0] + node_width, xs[1] - node_width
    for link, (first, last, won, revenue) in enumerate(
        sorted(rows, key=lambda r: (first_rank[r[0]], last_rank[r[1]]))
    ):
        width = revenue * scale
        sy, ty = source_start[(first, last)], target_start[(first, last)]
        tooltip = {"from": printable(first), "to": printable(last), "won": f"{won:,}",
                   "revenue": money(revenue, currency),  # money: keep name
                   "share": percent(revenue / total)}
        for step in range(points + 1):
            t = step / points
            s = t * t * (3 - 2 * t)
            ribbons.append({"link": link, "x": x0 + (x1 - x0) * t, "y0": sy + (ty - sy) * s,
                            "y1": sy + width + (ty - sy) * s,
                            "group": group_label(groups.get(first)),
                            **tooltip})

    creation_first = sum(size[(0, n)] for n in columns[0] if groups.get(n) == CREATION)
    capture_last = sum(size[(1, n)] for n in columns[1] if groups.get(n) == CAPTURE)
    title = (
        f"{percent(creation_first / total, 0)} of won revenue starts with a demand-creation touch; "
        f"{percent(capture_last / total, 0)} ends on a demand-capture touch"
    )
    x_scale = {"domain": [-0.24, 1.24], "nice": False, "zero": False}
    y_scale = {"domain": [0, height], "reverse": True, "nice": False, "zero": False}

    def axis_free(field: str) -> dict[str, Any]:
        return {"field": field, "type": "quantitative", "axis": None}

    def labels(side: int, align: str) -> Spec:
        return {
            "data": {"values": [n for n in nodes if n["side"] == side]},
            "mark": {"type": "text", "fontSize": 12, "fontWeight": 600, "color": "#111827",
                     "align": align},
            "encoding": {
                "x": {**axis_free("label_x"), "scale": x_scale},
                "y": {**axis_free("label_y"), "scale": y_scale},
                "text": {"field": "label"},
            },
        }

    spec: Spec = {
        "width": 880,
        "height": height + 10,
        "layer": [
            {
                "data": {"values": ribbons},
                "mark": {"type": "area", "opacity": 0.42, "interpolate": "linear"},
                "encoding": {
                    "x": {**axis_free("x"), "scale": x_scale},
                    "y": {**axis_free("y0"), "scale": y_scale, "stack": None},
                    "y2": {"field": "y1"},
                    "detail": {"field": "link", "type": "nominal"},
                    "color": {"field": "group", "type": "nominal",
                              "scale": theme.group_scale([groups.get(n) for n in columns[0]]),
                              "title": "First touch in"},
                    "tooltip": [
                        {"field": "from", "title": "First touch"},
                        {"field": "to", "title": "Last touch"},
                        {"field": "won", "title": "Won deals"},
                        {"field": "revenue", "title": "Won revenue"},
                        {"field": "share", "title": "Share of won revenue"},
                    ],
                },
            },
            {
                "data": {"values": nodes},
                "mark": {"type": "rect"},
                "encoding": {
                    "x": {**axis_free("x0"), "scale": x_scale},
                    "x2": {"field": "x1"},
                    "y": {**axis_free("y0"), "scale": y_scale},
                    "y2": {"field": "y1"},
                    "color": {"field": "colour", "type": "nominal", "scale": None, "legend": None},
                    "tooltip": [
                        {"field": "column", "title": "Column"},
                        {"field": "node", "title": "Channel"},
                        {"field": "won", "title": "Won deals"},
                        {"field": "revenue", "title": "Won revenue"},
                        {"field": "share", "title": "Share of won revenue"},
                    ],
                },
            },
            labels(0, "right"),
            labels(1, "left"),
            {
                "data": {"values": [
                    {"x": xs[i], "text": h, "align": a}
                    for i, (h, a) in enumerate(zip(headers, ["right", "left"], strict=True))
                ]},
                "transform": [{"filter": "datum.align == 'right'"}],
                "mark": {"type": "text", "fontSize": 13, "fontWeight": 700, "color": "#374151",
                         "dy": -8, "align": "right"},
                "encoding": {
                    "x": {**axis_free("x"), "scale": x_scale},
                    "y": {"datum": 0, "type": "quantitative", "scale": y_scale, "axis": None},
                    "text": {"field": "text"},
                },
            },
            {
                "data": {"values": [{"x": xs[1], "text": headers[1]}]},
                "mark": {"type": "text", "fontSize": 13, "fontWeight": 700, "color": "#374151",
                         "dy": -8, "align": "left"},
                "encoding": {
                    "x": {**axis_free("x"), "scale": x_scale},
                    "y": {"datum": 0, "type": "quantitative", "scale": y_scale, "axis": None},
                    "text": {"field": "text"},
                },
            },
        ],
    }
    won = int(pairs.get_column("conversions").sum())
    subtitle = (
        f"Won revenue of {won:,} won deals with touches ({compact_money(total, currency)}), "
        "from the "
        "channel of each deal's first touch (left) to the channel of its last touch (right)"
    )
    return Chart("journey_flow", title, subtitle, spec)


# -- 5. transition heatmap ---------------------------------------------------------------------
def transition_heatmap(transitions: pl.DataFrame, groups: Mapping[str, str | None],
                       insufficient: Iterable[str] = ()) -> Chart | None:
    """Heatmap of transition probabilities between states (``graph.transition_table`` rows)."""
    if transitions.height == 0:
        return None
    states = sorted(
        set(transitions.get_column("from_state").to_list())
        | set(transitions.get_column("to_state").to_list())
        - {START, CONVERSION, NULL},
        key=lambda s: (_group_rank(groups.get(s)), s),
    )
    rows = [START, *states]
    columns = [*states, CONVERSION, NULL]
    keys = Keys([START, *states, CONVERSION, NULL], labels=STATE_LABELS)

    def name(state: str) -> str:
        return keys[state]

    values = [
        {
            "from": name(row["from_state"]),
            "to": name(row["to_state"]),
            "from_label": keys.label(row["from_state"]),
            "to_label": keys.label(row["to_state"]),
            "probability": row["probability"],
            "label": f"{row['probability'] * 100:.0f}" if row["probability"] >= 0.095 else "",
            "probability_label": percent(row["probability"]),
            "count": f"{row['count']:,}",
        }
        for row in transitions.iter_rows(named=True)
    ]
    exits = transitions.filter(
        (pl.col("to_state") == CONVERSION) & ~pl.col("from_state").is_in([START])
    ).sort(["probability", "from_state"], descending=[True, False])
    if exits.height and exits.row(0, named=True)["from_state"] in set(insufficient):
        title = "Too few deals to tell which channel closes best"
    elif exits.height:
        best = exits.row(0, named=True)
        steps = transitions.filter(pl.col("from_state") != START)
        overall = float(
            exits.get_column("count").sum() / max(int(steps.get_column("count").sum()), 1)
        )
        title = (
            f"{printable(best['from_state'])} is the strongest closer: "
            f"{percent(best['probability'])} of its next "
            f"steps are a won deal ({percent(overall)} across all channels)"
        )
    else:
        title = "Where journeys go next, channel by channel"
    label_groups = dict(groups)
    colour = label_colour_expr(label_groups, keys)
    axis_common = {**keys.axis_labels(), "labelFontSize": 11, "labelColor": colour,
                   "domain": False, "ticks": False}
    spec: Spec = {
        "params": [keys.param()],
        "data": {"values": values},
        "width": {"step": 38},
        "height": {"step": 24},
        "layer": [
            {
                "mark": {"type": "rect", "stroke": "#ffffff", "strokeWidth": 1},
                "encoding": {
                    "x": {"field": "to", "type": "nominal", "sort": [name(c) for c in columns],
                          "title": "Next step",
                          "axis": {**axis_common, "orient": "top", "labelAngle": -40}},
                    "y": {"field": "from", "type": "nominal", "sort": [name(r) for r in rows],
                          "title": "From", "axis": axis_common},
                    "color": {"field": "probability", "type": "quantitative",
                              "scale": {"scheme": "purples", "type": "sqrt", "domain": [0, 1]},
                              "title": "Probability", "legend": {"format": "%", "orient": "right"}},
                    "tooltip": [
                        {"field": "from_label", "title": "From"},
                        {"field": "to_label", "title": "To"},
                        {"field": "probability_label", "title": "Probability"},
                        {"field": "count", "title": "Transitions"},
                    ],
                },
            },
            {
                "mark": {"type": "text", "fontSize": 10},
                "encoding": {
                    "x": {"field": "to", "type": "nominal", "sort": [name(c) for c in columns]},
                    "y": {"field": "from", "type": "nominal", "sort": [name(r) for r in rows]},
                    "text": {"field": "label"},
                    "color": {"condition": {"test": "datum.probability > 0.5", "value": "white"},
                              "value": "#111827"},
                },
            },
        ],
    }
    subtitle = (
        "Markov transition probabilities: each row sums to 100% over the next channel, a won deal "
        "or no win (numbers are percent, shown from 10%)"
    )
    return Chart("transitions", title, subtitle, spec)


# -- 6. removal effects ---------------------------------------------------------------------------
def removal_effects(
    effects: pl.DataFrame, groups: Mapping[str, str | None], weight_by: str = "conversions",
    insufficient: Iterable[str] = (),
) -> Chart | None:
    """Bars of each channel's removal-effect share, with the bootstrap 95% interval when present."""
    if effects.height == 0:
        return None
    column = "share_value" if weight_by == "revenue" else "share"
    has_ci = "ci_low" in effects.columns and "ci_high" in effects.columns
    frame = effects.sort([column, "channel"], descending=[True, False])
    keys = Keys(frame.get_column("channel").to_list())
    values = []
    for row in frame.iter_rows(named=True):
        item = {
            "key": keys[row["channel"]],
            "channel": printable(row["channel"]),
            "group": group_label(groups.get(row["channel"])),
            "share": row[column],
            "share_label": percent(row[column]),
            "removal_effect": percent(
                row["removal_effect_value" if weight_by == "revenue" else "removal_effect"]
            ),
        }
        if has_ci:
            item.update(ci_low=row["ci_low"], ci_high=row["ci_high"],
                        ci_label=f"{percent(row['ci_low'])} - {percent(row['ci_high'])}")
        values.append(item)
    top = frame.row(0, named=True)
    what = "revenue" if weight_by == "revenue" else "conversions"
    title = (
        f"Removing {printable(top['channel'])} would cost the most {what}: "
        f"{percent(top[column])} of the total removal effect"
    )
    if top["channel"] in set(insufficient):  # no finding named for too few deals
        title = f"Too few deals to tell which channel would cost the most {what} if removed"
    elif has_ci:
        title += f" (95% CI {percent(top['ci_low'])}-{percent(top['ci_high'])})"
    y = {"field": "key", "type": "nominal", "sort": keys.keys(keys.names), "title": None,
         "axis": {**keys.axis_labels(), "labelColor": label_colour_expr(groups, keys),
                  "labelFontSize": 12, "labelFontWeight": 600}}
    tooltip = [
        {"field": "channel", "title": "Channel"},
        {"field": "share_label", "title": "Share of removal effect"},
        {"field": "removal_effect", "title": "Removal effect"},
    ]
    if has_ci:
        tooltip.append({"field": "ci_label", "title": "95% bootstrap interval"})
    layers: list[Spec] = [
        {
            "mark": {"type": "bar", "cornerRadiusEnd": 2, "height": {"band": 0.7}},
            "encoding": {
                "y": y,
                "x": {"field": "share", "type": "quantitative",
                      "title": f"Share of removal effect ({what})",
                      "axis": {"format": "%"}},
                "color": {"field": "group", "type": "nominal",
                          "scale": theme.group_scale([groups.get(c) for c in keys.names]),
                          "title": "Channel group"},
                "tooltip": tooltip,
            },
        }
    ]
    if has_ci:
        layers.append({
            "mark": {"type": "rule", "color": "#111827", "strokeWidth": 1.5},
            "encoding": {"y": y, "x": {"field": "ci_low", "type": "quantitative"},
                         "x2": {"field": "ci_high"},
                         "tooltip": tooltip},
        })
        for end in ("ci_low", "ci_high"):
            layers.append({
                "mark": {"type": "tick", "color": "#111827", "thickness": 1.5, "size": 10,
                         "orient": "vertical"},
                "encoding": {"y": y, "x": {"field": end, "type": "quantitative"}},
            })
    spec: Spec = {"params": [keys.param()], "data": {"values": values}, "width": 820,
                  "height": {"step": 24}, "layer": layers}
    subtitle = (
        "Markov chain: the drop in " + what + " if the channel were removed, as a share of all "
        "channels' drops" + ("; black lines are 95% bootstrap intervals" if has_ci else
                             " (run with --bootstrap N for confidence intervals)")
    )
    return Chart("removal_effects", title, subtitle, spec)


# -- 7. budget -----------------------------------------------------------------------------------
def budget_chart(budget: pl.DataFrame, currency: str) -> Chart | None:
    """Current spend next to the recommended budget (and last-touch's), per channel; titled by
    :func:`attribution.budget.headline`. When the data supports no move
    (:func:`attribution.budget.verdict`), current spend next to what the model's credit alone
    would recommend, pale and labelled "not supported by the data"."""
    from attribution import budget as budgeting

    if budget.height == 0:
        return None
    model = budget.get_column("model")[0]
    found = budgeting.verdict(budget)
    groups = dict(budget.select("channel", "channel_group").iter_rows())
    unsupported = found.checked and not found.supported
    ranked = "unchecked_recommended_cents" if unsupported else "recommended_cents"
    order = (
        budget.sort([ranked, "channel"], descending=[True, False])
        .get_column("channel")
        .to_list()
    )
    keys = Keys(order)
    has_base = (
        not unsupported
        and "last_touch_recommended_cents" in budget.columns
        and budget.get_column("last_touch_recommended_cents").null_count() == 0
    )
    if unsupported:
        series = [("Current spend", "current_spend_cents", "change_cents"),
                  (f"{model} alone (not supported by the data)", "unchecked_recommended_cents",
                   "unchecked_change_cents")]
        colours = ["#9AA0A6", UNSUPPORTED_COLOUR]
    else:
        series = [("Current spend", "current_spend_cents", "change_cents"),
                  (f"Recommended ({model})", "recommended_cents", "change_cents")]
        colours = ["#9AA0A6", "#E69F00"]
        if has_base:
            series.append(("Recommended (last-touch)", "last_touch_recommended_cents",
                           "last_touch_change_cents"))
            colours.append(theme.BASELINE_COLOUR)
    values = [
        {
            "key": keys[row["channel"]],
            "channel": printable(row["channel"]),
            "series": label,
            "amount": _major(row[column], currency),  # money: keep name
            "amount_label": money(row[column], currency),
            "change_label": ("+" if row[change] > 0 else "") + money(row[change], currency),
            "evidence": row.get("evidence") or ("enough deals" if row.get("supported") else ""),
        }
        for row in budget.iter_rows(named=True)
        for label, column, change in series
    ]
    title = budgeting.headline(budget, currency)
    labels = [label for label, _, _ in series]
    tooltip = [
        {"field": "channel", "title": "Channel"},
        {"field": "series", "title": "Budget"},
        {"field": "amount_label", "title": "Amount"},
        {"field": "change_label", "title": "Change"},
    ]
    if found.checked:
        tooltip.append({"field": "evidence", "title": "Evidence"})
    spec: Spec = {
        "params": [keys.param()],
        "data": {"values": values},
        "width": 820,
        "height": {"step": 9},
        "mark": {"type": "bar", "cornerRadiusEnd": 2},
        "encoding": {
            "y": {"field": "key", "type": "nominal", "sort": keys.keys(order), "title": None,
                  "axis": {**keys.axis_labels(), "labelColor": label_colour_expr(groups, keys),
                           "labelFontSize": 12, "labelFontWeight": 600}},
            "yOffset": {"field": "series", "type": "nominal", "sort": labels},
            "x": {"field": "amount", "type": "quantitative", "title": f"Spend ({currency})",
                  "axis": {"format": "$,.3~s"}},
            "color": {"field": "series", "type": "nominal", "sort": labels,
                      "scale": {"domain": labels, "range": colours}, "title": None,
                      "legend": {"labelLimit": 400}},
            "tooltip": tooltip,
        },
    }
    if unsupported:
        subtitle = (f"Current spend per paid channel, and the budget {model}'s credit alone "
                    "would recommend: not supported by the data, so every channel keeps its "
                    "share of current spend")
    else:
        subtitle = (f"Current spend per paid channel and the budget recommended from {model} "
                    "credit")
        if has_base:
            subtitle += ", next to the same recommendation made on last-touch credit"
        if found.held:
            subtitle += "; channels without the evidence to move keep what they spend now"
    return Chart("budget", title, subtitle, spec)


def model_error_chart(summary: pl.DataFrame, baseline: str = BASELINE) -> Chart | None:
    """Each model's error against the simulated truth (``attribution evaluate``), best first,
    with last-touch's error as the reference line."""
    if summary.height == 0 or "mae" not in summary.columns:
        return None
    rows = summary.sort(["mae", "model"])
    order = rows.get_column("model").to_list()
    base = rows.filter(pl.col("model") == baseline)
    base_mae = float(base.get_column("mae")[0]) if base.height else None
    values = [
        {
            "model": r["model"],
            "mae": r["mae"] * 100,
            "label": f"{r['mae'] * 100:.1f} pts",
            "beats": f"{r['beats_last_touch']} of {r['worlds']} worlds",
            "kind": "last-touch" if r["model"] == baseline else
                    ("beats last-touch" if base_mae is not None and r["mae"] < base_mae
                     else "no better than last-touch"),
        }
        for r in rows.iter_rows(named=True)
    ]
    best = rows.row(0, named=True)
    worlds = int(best["worlds"])
    if base_mae is not None and best["model"] != baseline:
        title = (f"{best['model']} is closest to the truth: {best['mae'] * 100:.1f} points of "
                 f"share off per channel, against {base_mae * 100:.1f} for last-touch")
    else:
        title = f"{best['model']} is closest to the truth over {worlds} simulated worlds"
    layers: list[Spec] = [
        {
            "mark": {"type": "bar", "cornerRadiusEnd": 2},
            "encoding": {
                "y": {"field": "model", "type": "nominal", "sort": order, "title": None,
                      "axis": {"labelFontSize": 12, "labelFontWeight": 600}},
                "x": {"field": "mae", "type": "quantitative",
                      "title": "Mean absolute error of channel revenue shares (points)"},
                "color": {"field": "kind", "type": "nominal", "title": None,
                          "scale": {"domain": ["beats last-touch", "last-touch",
                                               "no better than last-touch"],
                                    "range": [theme.GROUP_COLOURS[theme.CREATION],
                                              theme.BASELINE_COLOUR, theme.OTHER_COLOUR]}},
                "tooltip": [{"field": "model", "title": "Model"},
                            {"field": "label", "title": "Error"},
                            {"field": "beats", "title": "Beats last-touch in"}],
            },
        }
    ]
    if base_mae is not None:
        layers.append({"mark": {"type": "rule", "strokeDash": [4, 3], "color": "#111827"},
                       "encoding": {"x": {"datum": base_mae * 100}}})
    spec: Spec = {"data": {"values": values}, "width": 820, "height": {"step": 22},
                  "layer": layers}
    subtitle = (f"Over {worlds} simulated worlds whose causal truth is known exactly "
                "(attribution evaluate); dashed line: last-touch")
    return Chart("model_error", title, subtitle, spec)
