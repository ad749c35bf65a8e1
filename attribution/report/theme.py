"""The report's look: one palette, one font, one number format, shared by the HTML and the PNGs.

Demand creation and demand capture keep the same colours in every chart (Okabe-Ito bluish
green and blue, told apart by colour-blind readers), and so does sales (reddish purple); a group
of the user's own channel rules gets a colour of its own, picked by its name; ungrouped
channels (``other``), ``(no touch)`` and ``(unmapped)`` are grey. Charts and tables name and
colour a channel's group alike (:func:`group_label`, :func:`group_colour`). Money is formatted
with the run's currency through a d3 format locale, so axis labels read ``$1.2M`` / ``€1.2M``
without the charts knowing the currency.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from attribution.render import SYMBOLS

CREATION = "demand_creation"
CAPTURE = "demand_capture"
SALES = "sales"

GROUP_COLOURS = {CREATION: "#009E73", CAPTURE: "#0072B2", SALES: "#CC79A7"}
OTHER_COLOUR = "#9AA0A6"
GROUP_LABELS = {CREATION: "Demand creation", CAPTURE: "Demand capture", SALES: "Sales"}
OTHER_LABEL = "Other"
#: the groups that read as "Other" (grey): ungrouped channels and the placeholders' group
OTHER_GROUPS = frozenset({"", "other", "(no touch)", "(unmapped)"})
#: colours of the groups a channel rules file names beyond these, picked by the group's name
#: (the same group, the same colour, in every chart and table)
EXTRA_GROUP_COLOURS = ["#D55E00", "#7B4FA0", "#8C564B", "#56B4E9", "#B8860B"]
#: the order groups are listed in, everywhere: creation, capture, sales, any other named
#: group (by name), Other
GROUP_ORDER = [GROUP_LABELS[CREATION], GROUP_LABELS[CAPTURE], GROUP_LABELS[SALES], OTHER_LABEL]
GROUP_RANGE = [GROUP_COLOURS[CREATION], GROUP_COLOURS[CAPTURE], GROUP_COLOURS[SALES],
               OTHER_COLOUR]

BASELINE_COLOUR = "#3C4043"
#: colours of the non-baseline models (no green or blue: those mean channel groups)
MODEL_COLOURS = [
    "#E69F00", "#D55E00", "#CC79A7", "#7B4FA0", "#8C564B", "#F781BF", "#B8860B", "#800000",
    "#B0B0B0", "#FFB000", "#5E3C99", "#E7298A",
]
WON_COLOUR = "#1F2937"
NOT_WON_COLOUR = "#C7CBD1"

FONT = "Helvetica Neue, Helvetica, Arial, Liberation Sans, DejaVu Sans, sans-serif"


def _is_other(group: str | None) -> bool:
    return (group or "").strip().lower() in OTHER_GROUPS


def group_label(group: str | None) -> str:
    """A channel group as a reader sees it, the same in every table and chart:
    ``demand_creation -> 'Demand creation'``, ``sales -> 'Sales'``, a group of the user's
    channel rules by its name (``brand_awareness -> 'Brand awareness'``); ungrouped
    channels (``other``) and placeholders are ``'Other'``."""
    if group in GROUP_LABELS:
        return GROUP_LABELS[group]
    if group is None or _is_other(group):
        return OTHER_LABEL
    text = group.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def group_colour(group: str | None) -> str:
    """The colour of a channel group: fixed for creation, capture and sales, grey for Other,
    and for any other named group one of :data:`EXTRA_GROUP_COLOURS` chosen by its name."""
    if group in GROUP_COLOURS:
        return GROUP_COLOURS[group]
    if group is None or _is_other(group):
        return OTHER_COLOUR
    return EXTRA_GROUP_COLOURS[zlib.crc32(group.encode("utf-8")) % len(EXTRA_GROUP_COLOURS)]


def group_rank(group: str | None) -> int:
    """Where a group is listed: creation 0, capture 1, sales 2, another named group 3,
    Other 4."""
    if group in (CREATION, CAPTURE, SALES):
        return (CREATION, CAPTURE, SALES).index(group)
    return 4 if group is None or _is_other(group) else 3


def group_order(groups: Iterable[str | None]) -> list[str | None]:
    """``groups`` once each (by their label), in :func:`group_rank` order, then by label."""
    seen: dict[str, str | None] = {}
    for group in groups:
        seen.setdefault(group_label(group), group)
    return sorted(seen.values(), key=lambda g: (group_rank(g), group_label(g)))


def group_scale(groups: Iterable[str | None] | None = None) -> dict[str, Any]:
    """The colour scale of channel groups, by label: the ``groups`` present (default:
    creation, capture, sales, Other), each in its own colour in every chart."""
    present = group_order([CREATION, CAPTURE, SALES, None] if groups is None else groups)
    return {"domain": [group_label(g) for g in present],
            "range": [group_colour(g) for g in present]}


def group_class(group: str | None) -> str:
    """The CSS class of a channel name of ``group`` in a table: ``group-sales``; any text of
    a user's group made a class name (``brand awareness`` -> ``group-brand_awareness``)."""
    return "group-" + "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_"
                              for c in str(group))


def group_css(groups: Iterable[str | None]) -> str:
    """CSS rules colouring channel names by group in tables (:func:`group_class`), for the
    groups present beyond creation and capture (whose rules are in the page's CSS)."""
    rules = []
    for group in group_order(groups):
        if group is None or group in (CREATION, CAPTURE) or _is_other(group):
            continue
        rules.append(f".{group_class(group)} {{ color: {group_colour(group)}; "
                     "font-weight: 600; }")
    return "\n".join(rules)


def model_scale(models: list[str], baseline: str = "last_touch") -> dict[str, Any]:
    """Colours per model: the baseline dark grey, the others from :data:`MODEL_COLOURS`."""
    colours = []
    others = iter(MODEL_COLOURS * (len(models) // len(MODEL_COLOURS) + 1))
    for model in models:
        colours.append(BASELINE_COLOUR if model == baseline else next(others))
    return {"domain": models, "range": colours}


def format_locale(currency: str) -> dict[str, Any]:
    """A d3-format locale whose ``$`` prints the run's currency (``€``, ``£``, or ``' EUR'``)."""
    symbol = SYMBOLS.get(currency)
    return {
        "decimal": ".",
        "thousands": ",",
        "grouping": [3],
        "currency": [symbol, ""] if symbol else ["", f" {currency}"],
    }


def vega_config() -> dict[str, Any]:
    """Vega-Lite ``config``: fonts, sizes and quiet axes for a board deck."""
    return {
        "font": FONT,
        "background": "#ffffff",
        "padding": 8,
        "view": {"stroke": None},
        "title": {
            "anchor": "start",
            "fontSize": 18,
            "fontWeight": 600,
            "color": "#111827",
            "subtitleFontSize": 13,
            "subtitleColor": "#4B5563",
            "offset": 12,
        },
        "axis": {
            "labelFontSize": 12,
            "titleFontSize": 12,
            "titleFontWeight": 500,
            "titleColor": "#374151",
            "labelColor": "#374151",
            "gridColor": "#E5E7EB",
            "domainColor": "#9CA3AF",
            "tickColor": "#9CA3AF",
        },
        "legend": {
            "labelFontSize": 12, "titleFontSize": 12, "orient": "top", "titleFontWeight": 500
        },
        "header": {"labelFontSize": 13, "labelFontWeight": 600, "titleFontSize": 13},
        "bar": {"discreteBandSize": {"band": 0.85}},
    }
