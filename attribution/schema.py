"""Column names and dtypes of every table `attribution` reads or produces.

Input columns are the *canonical* names; a config's ``[columns.<input>]`` table maps a
file's own names onto them. Money is held as integer minor units of the run's currency
(ISO 4217: cents for USD, fils for KWD, yen for JPY; :func:`currency_decimals`) in ``Int64``
everywhere inside the library and only turned into decimals at the output edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from polars._typing import PolarsDataType


def schema_of(columns: Mapping[str, PolarsDataType]) -> pl.Schema:
    """A named schema (a typed mapping, so classes such as ``pl.String`` and instances such
    as ``pl.Datetime("us", "UTC")`` can stand side by side)."""
    return pl.Schema(columns)

UTC_TIME = pl.Datetime("us", "UTC")

# -- inputs ----------------------------------------------------------------------------
#: canonical input columns: name -> required?  (``None``: required unless an alternative is given)
TOUCHPOINT_COLUMNS: dict[str, bool] = {
    "timestamp": True,
    "contact_id": False,  # contact_id and/or account_id
    "account_id": False,
    "channel": False,  # channel, or utm_source / utm_medium
    "utm_source": False,
    "utm_medium": False,
    "utm_campaign": False,
    "touch_type": False,
    "touchpoint_id": False,
}
DEAL_COLUMNS: dict[str, bool] = {
    "deal_id": True,
    "account_id": True,
    "created_at": True,
    "closed_at": False,
    "status": True,
    "amount": True,  # money: keep name
    "currency": False,
    "is_won": False,  # boolean won flag (Salesforce IsWon): with is_closed, stands in for status
    "is_closed": False,
    "segment": False,  # read by `attribution calibrate` for experiments on one segment only
    "self_reported": False,  # "How did you hear about us?": free text or a picklist value
}
CONTACT_COLUMNS: dict[str, bool] = {
    "contact_id": True,
    "account_id": True,
    "lead_created_at": False,
    "self_reported": False,  # "How did you hear about us?": free text or a picklist value
}
INPUT_COLUMNS: dict[str, dict[str, bool]] = {
    "touchpoints": TOUCHPOINT_COLUMNS,
    "deals": DEAL_COLUMNS,
    "contacts": CONTACT_COLUMNS,
}

DEAL_STATUSES = ("won", "lost", "open")

# -- money -----------------------------------------------------------------------------
#: ISO 4217 minor units of the currencies whose minor unit is not a hundredth (every other
#: code has two decimals)
CURRENCY_DECIMALS: dict[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                     "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def currency_decimals(currency: str) -> int:
    """The ISO 4217 minor unit of ``currency``: its decimals (2 for a code not listed in
    :data:`CURRENCY_DECIMALS`).

    >>> currency_decimals("JPY"), currency_decimals("USD"), currency_decimals("KWD")
    (0, 2, 3)
    """
    return CURRENCY_DECIMALS.get(currency.upper(), 2)


def minor_per_major(currency: str) -> int:
    """How many of ``currency``'s minor units make one major unit: the integer money of a run
    in ``currency`` is held in these (cents for USD, fils for KWD, yen for JPY).

    >>> minor_per_major("USD"), minor_per_major("KWD"), minor_per_major("JPY")
    (100, 1000, 1)
    """
    return 10 ** currency_decimals(currency)


# -- rejects ---------------------------------------------------------------------------
REJECT_SCHEMA = schema_of(
    {
        "file": pl.String,
        "input": pl.String,  # touchpoints | deals | contacts | spend | paths
        "row": pl.Int64,  # 1-based data row (the header is row 0); a table's: in the rows read
        "column": pl.String,
        "reason": pl.String,
        "value": pl.String,
        # a database source's row: its primary key, else the input's id column (deal_id,
        # touchpoint_id, contact_id) as text; null for a file, whose row number finds it
        "key": pl.String,
    }
)

# -- journeys (the contract between journeys.py and every model) -------------------------
#: one row per touch of a journey, ordered by ``touch_index`` inside ``journey_id``
TOUCH_SCHEMA = schema_of(
    {
        "journey_id": pl.String,
        "account_id": pl.String,
        "touch_index": pl.UInt32,  # 0-based position in the journey, by time
        "touchpoint_id": pl.String,
        "contact_id": pl.String,
        "timestamp": UTC_TIME,  # null for journeys read from a path table
        "channel": pl.String,
        "channel_group": pl.String,
        "touch_type": pl.String,
        "campaign": pl.String,
        "is_first": pl.Boolean,
        "is_lead_creation": pl.Boolean,
        "is_opportunity_creation": pl.Boolean,
        "is_closed_won": pl.Boolean,
    }
)

#: journey_id of an account touched without a deal: this, then the account id (a deal_id
#: starting with it is rejected at load, so journey ids never clash)
ACCOUNT_JOURNEY_PREFIX = "account:"

#: one row per journey: a deal (won, lost, open), an account touched without a deal
#: (status ``none``), or one row of an aggregated path table (status ``path``)
JOURNEY_SCHEMA = schema_of(
    {
        "journey_id": pl.String,
        "account_id": pl.String,
        "deal_id": pl.String,
        "status": pl.String,  # won | lost | open | none | path
        "amount_cents": pl.Int64,  # minor units: a deal's pipeline value, a path row's revenue
        "created_at": UTC_TIME,
        "closed_at": UTC_TIME,
        "end_at": UTC_TIME,  # close, or the as-of date for open deals and deal-less accounts
        "n_touches": pl.UInt32,
        "conversions": pl.Int64,  # 1 for a won deal; the count for a path row
        "nulls": pl.Int64,  # 1 for a lost deal or a deal-less account; the count for a path row
        "revenue_cents": pl.Int64,  # minor units: a won deal's amount, a path row's value
    }
)

#: what a model returns: a weight per touch (or per channel when touch_index is null)
WEIGHT_SCHEMA = schema_of(
    {
        "journey_id": pl.String,
        "touch_index": pl.UInt32,
        "channel": pl.String,
        "weight": pl.Float64,
    }
)

#: columns of a touch that a model's weights may carry along, saving
#: :func:`attribution.credit.allocate` a lookup
DETAIL_COLUMNS = ("touchpoint_id", "timestamp", "channel_group")

#: touch-level credit, one row per (model, journey, touch); money in minor units
CREDIT_SCHEMA = schema_of(
    {
        "model": pl.String,
        "journey_id": pl.String,
        "deal_id": pl.String,
        "account_id": pl.String,
        "status": pl.String,
        "touch_index": pl.UInt32,
        "touchpoint_id": pl.String,
        "timestamp": UTC_TIME,
        "channel": pl.String,
        "channel_group": pl.String,
        "weight": pl.Float64,
        "pipeline_credit_cents": pl.Int64,  # share of the deal's amount (every created deal)
        "revenue_credit_cents": pl.Int64,
         # share of won revenue (won deals / path conversion value)
        "conversion_credit": pl.Float64,  # share of conversions
    }
)

#: channel summary, one row per (model, channel)
SUMMARY_SCHEMA = schema_of(
    {
        "model": pl.String,
        "channel": pl.String,
        "channel_group": pl.String,
        "deals_touched": pl.UInt32,
        "pipeline_credit_cents": pl.Int64,
        "revenue_credit_cents": pl.Int64,
        "conversion_credit": pl.Float64,
        "pipeline_share": pl.Float64,
        "revenue_share": pl.Float64,
    }
)

NO_TOUCH_CHANNEL = "(no touch)"
NO_TOUCH_GROUP = "(no touch)"
UNMAPPED_CHANNEL = "(unmapped)"

#: columns that hold money in minor units; written out as decimals (JSON: numbers) in major
#: units, a ``*_cents`` one under its name without the suffix (:func:`major_name`)
MONEY_COLUMNS = frozenset(
    {
        "shapley_value_cents",  # Shapley values with value="revenue" (floats: estimates)
        "standard_error_cents",
        "amount_cents",
        "revenue_cents",
        "pipeline_credit_cents",
        "revenue_credit_cents",
        "revenue_credit_low_cents",  # bootstrap bounds of the credit (--bootstrap)
        "revenue_credit_high_cents",
        "last_touch_revenue_credit_cents",
        "revenue_shift_cents",
        "pipeline_cents",
        "won_revenue_cents",
        "spend_cents",
        "avg_deal_size_cents",
        "revenue_per_lead_cents",
        "cost_per_lead_cents",
        "cost_per_opportunity_cents",
        "cost_per_won_deal_cents",
        "current_spend_cents",
        "recommended_cents",
        "change_cents",
        "last_touch_recommended_cents",
        "last_touch_change_cents",
        "decision_shift_cents",
        "unchecked_recommended_cents",  # a budget before the evidence check
        "unchecked_change_cents",
        "floor_cents",
        "cap_cents",
        "proposed_spend_cents",
        "expected_revenue_cents",
        "revenue_change_cents",
        "counted_spend_cents",
        "band_low_cents",
        "band_high_cents",
        # attribution calibrate: a model's credit beside an experiment's measured lift
        "model_credit_cents",
        "lift_cents",
        "lift_lower_cents",
        "lift_upper_cents",
        "credit_error_cents",
        "mean_absolute_error_cents",
        # the dark funnel: tracked credit beside self-reported credit
        "tracked_revenue_credit_cents",
        "self_reported_revenue_credit_cents",
        "stated_revenue_credit_cents",
        "dark_revenue_cents",
    }
)

def major_name(column: str) -> str:
    """The name a money column in minor units takes once written in major units: without its
    ``_cents`` suffix (``shapley_value_cents`` -> ``shapley_value``)."""
    return column.removesuffix("_cents")


#: columns that hold a share or rate (shown as percentages)
SHARE_COLUMNS = frozenset(
    {
        "revenue_share",
        "pipeline_share",
        "share",
        "share_value",
        "win_rate",
        "conversion_rate",
        "probability",
        "spend_share",
        "revenue_credit_share",
        "recommended_share",
        "last_touch_revenue_share",
        "current_share",
        "paid_revenue_share",
        "tracked_revenue_share",
        "self_reported_revenue_share",
        "stated_revenue_share",
        "dark_share",
    }
)
