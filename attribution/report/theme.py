"""The report's look: one palette, one font, one number format, shared by the HTML and the PNGs.

Demand creation and demand capture keep the same colours in every chart (Okabe-Ito bluish
green and blue, told apart by colour-blind readers); anything else (``(no touch)``,
``(unmapped)``, sales) is grey. Money is formatted with the run's currency through a d3 format
locale, so axis labels read ``$1.2M`` / ``€1.2M`` without the charts knowing the currency.
"""

from __future__ import annotations

from typing import Any

from attribution.render import SYMBOLS

CREATION = "demand_creation"
CAPTURE = "demand_capture"

GROUP_COLOURS = {CREATION: "#009E73", CAPTURE: "#0072B2"}
OTHER_COLOUR = "#9AA0A6"
GROUP_LABELS = {CREATION: "Demand creation", CAPTURE: "Demand capture"}
OTHER_LABEL = "Other"
#: the order groups are listed in, everywhere
GROUP_ORDER = [GROUP_LABELS[CREATION], GROUP_LABELS[CAPTURE], OTHER_LABEL]
GROUP_RANGE = [GROUP_COLOURS[CREATION], GROUP_COLOURS[CAPTURE], OTHER_COLOUR]

BASELINE_COLOUR = "#3C4043"
#: colours of the non-baseline models (no green or blue: those mean channel groups)
MODEL_COLOURS = [
    "#E69F00", "#D55E00", "#CC79A7", "#7B4FA0", "#8C564B", "#F781BF", "#B8860B", "#800000",
    "#B0B0B0", "#FFB000", "#5E3C99", "#E7298A",
]
WON_COLOUR = "#1F2937"
NOT_WON_COLOUR = "#C7CBD1"

FONT = "Helvetica Neue, Helvetica, Arial, Liberation Sans, DejaVu Sans, sans-serif"


def group_label(group: str | None) -> str:
    """``demand_creation -> 'Demand creation'``; anything else is ``'Other'``."""
    return GROUP_LABELS.get(group or "", OTHER_LABEL)


def group_colour(group: str | None) -> str:
    return GROUP_COLOURS.get(group or "", OTHER_COLOUR)


def group_scale() -> dict[str, Any]:
    """The colour scale of channel groups (same domain and range in every chart)."""
    return {"domain": GROUP_ORDER, "range": GROUP_RANGE}


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
