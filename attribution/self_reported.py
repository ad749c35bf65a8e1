"""Self-reported source: what buyers say brought them ("How did you hear about us?").

Brand channels (a podcast, a colleague's word, a community thread, an AI assistant's answer)
leave no click, so tracked touches miss them. Many B2B teams ask on the demo form instead.
This module reads those answers (an optional ``self_reported`` column of the contacts or the
deals export), maps them to channels with the ``[self_reported]`` rules of the channel-rules
file (:class:`~attribution.channels.AnswerMatcher`), and gives each deal its buying group's
stated channel: the earliest mapped answer of the account's contacts (by their lead creation)
and deals (by their creation), at or before the deal's end. Answers no rule maps are listed
with their counts and blanks counted; neither is ever guessed.

It also builds the dark-funnel view (:func:`dark_funnel`): per channel, the tracked credit of
the recommended model next to the self-reported credit, and the deals whose stated channel has
no tracked touch in their journey.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from attribution.channels import ChannelRules, channel_key, relabel
from attribution.errors import quote_input
from attribution.schema import NO_TOUCH_CHANNEL, UTC_TIME, schema_of

#: how many unmatched answers a note lists (the rest are counted)
UNMATCHED_LISTED = 20
#: characters of an answer a note quotes at most
ANSWER_QUOTE_LIMIT = 200

#: one row per answer given (contacts and deals): where it came from and the channel it states
ANSWER_SCHEMA = schema_of({
    "account_id": pl.String,
    "answered_at": UTC_TIME,
    "source": pl.String,  # contacts | deals
    "record_id": pl.String,  # the contact's or the deal's id
    "answer": pl.String,
    "channel": pl.String,  # null: no [self_reported] rule matches
    "channel_group": pl.String,
})

#: the dark-funnel table, one row per channel
DARK_FUNNEL_SCHEMA = schema_of({
    "channel": pl.String,
    "channel_group": pl.String,
    "tracked_revenue_credit_cents": pl.Int64,
    "tracked_revenue_share": pl.Float64,
    # the self_reported model's credit: answered deals to their stated channel *and* the
    # unanswered ones by the fallback (tracked) model
    "self_reported_revenue_credit_cents": pl.Int64,
    "self_reported_revenue_share": pl.Float64,
    # what buyers said, alone: the won revenue of the answered deals stating the channel (its
    # share of all won revenue, so stated + fallback = self_reported)
    "stated_revenue_credit_cents": pl.Int64,
    "stated_revenue_share": pl.Float64,
    "stated_deals": pl.UInt32,
    "stated_won_deals": pl.UInt32,
    "dark_deals": pl.UInt32,
    "dark_won_deals": pl.UInt32,
    "dark_share": pl.Float64,
    "dark_revenue_cents": pl.Int64,
    "sufficient": pl.Boolean,
})


@dataclass(frozen=True)
class Answers:
    """The self-reported answers of a load.

    Attributes
    ----------
    table
        :data:`ANSWER_SCHEMA`: every non-blank answer, mapped or not.
    rows
        Rows of the inputs that have the column (contacts and deals).
    blank
        Of those, rows whose answer is empty.
    unmatched
        ``answer, rows``: answers no rule maps, most frequent first (then by text).
    """

    table: pl.DataFrame
    rows: int
    blank: int
    unmatched: pl.DataFrame

    @property
    def mapped(self) -> int:
        """Answers that state a channel."""
        return int(self.table.get_column("channel").is_not_null().sum())


def read_answers(contacts: pl.DataFrame | None, deals: pl.DataFrame,
                 rules: ChannelRules) -> Answers | None:
    """The answers of validated contacts and deals that have a ``self_reported`` column,
    mapped to channels by ``rules`` (each distinct answer matched once); None when neither
    has the column."""
    parts = []
    rows = 0
    if contacts is not None and "self_reported" in contacts.columns:
        rows += contacts.height
        parts.append(contacts.select(
            "account_id", pl.col("lead_created_at").alias("answered_at"),
            pl.lit("contacts").alias("source"), pl.col("contact_id").alias("record_id"),
            pl.col("self_reported").alias("answer")))
    if "self_reported" in deals.columns:
        rows += deals.height
        parts.append(deals.select(
            "account_id", pl.col("created_at").alias("answered_at"),
            pl.lit("deals").alias("source"), pl.col("deal_id").alias("record_id"),
            pl.col("self_reported").alias("answer")))
    if not parts:
        return None
    given = pl.concat(parts).filter(pl.col("answer").is_not_null())
    table = given.with_columns(rules.answer_channel(given.get_column("answer"))).with_columns(
        pl.when(pl.col("channel").is_not_null()).then(rules.group_of(pl.col("channel")))
        .alias("channel_group"),
    ).select(list(ANSWER_SCHEMA))
    unmatched = (
        table.filter(pl.col("channel").is_null()).group_by("answer").agg(pl.len().alias("rows"))
        .sort(["rows", "answer"], descending=[True, False])
    )
    return Answers(table=table, rows=rows, blank=rows - given.height, unmatched=unmatched)


def answers_note(answers: Answers) -> str:
    """The run's note on the answers: how many state a channel, how many are blank, and the
    unmatched ones with their counts (each escaped and cut to 200 characters)."""
    given = answers.table.height
    line = (f"self-reported source: {answers.mapped:,} of {given:,} answers map to a channel; "
            f"{answers.blank:,} of {answers.rows:,} rows are blank")
    unmatched = answers.unmatched
    if not unmatched.height:
        return line
    listed = ", ".join(
        f"{quote_input(answer, ANSWER_QUOTE_LIMIT)} ({rows:,})"
        for answer, rows in unmatched.head(UNMATCHED_LISTED).iter_rows()
    )
    more = (f" and {unmatched.height - UNMATCHED_LISTED:,} more"
            if unmatched.height > UNMATCHED_LISTED else "")
    return (f"{line}; {unmatched.height:,} distinct answers no [self_reported] rule matches "
            f"(not credited, never guessed): {listed}{more}; add patterns for them under "
            "[self_reported] in your channel rules")


def stated_channels(journeys: pl.DataFrame, answers: Answers,
                    labels: pl.Series | None = None) -> pl.DataFrame:
    """``journey_id, channel, channel_group``: each deal journey's stated channel, the
    earliest mapped answer of its account (contacts by lead creation, deals by creation; an
    answer without a time comes after those with one, then by source and record id) given at
    or before the journey's end. Channel names take the touches' spelling (``labels``) where
    their :func:`~attribution.channels.channel_key` agree.

    >>> from datetime import datetime, UTC
    >>> from attribution.channels import load_rules
    >>> deals = pl.DataFrame({"deal_id": ["d1"], "account_id": ["a"],
    ...                       "created_at": [datetime(2025, 1, 1, tzinfo=UTC)],
    ...                       "self_reported": ["A friend"]})
    >>> found = read_answers(None, deals, load_rules())
    >>> journeys = deals.select(journey_id="deal_id", account_id="account_id",
    ...                         status=pl.lit("won"), end_at="created_at")
    >>> stated_channels(journeys, found).rows()
    [('d1', 'word_of_mouth', 'demand_creation')]
    """
    mapped = answers.table.filter(pl.col("channel").is_not_null())
    deals = journeys.filter(pl.col("status") != "none").select("journey_id", "account_id",
                                                                 "end_at")
    found = (
        deals.join(mapped, on="account_id", how="inner")
        .filter(pl.col("answered_at").is_null() | (pl.col("answered_at") <= pl.col("end_at")))
        .sort(["journey_id", "answered_at", "source", "record_id", "answer"], nulls_last=True)
        .unique(subset="journey_id", keep="first", maintain_order=True)
        .select("journey_id", "channel", "channel_group")
    )
    if labels is not None and found.height:
        found = found.with_columns(relabel(found.get_column("channel"), labels.drop_nulls()
                                           .unique().to_list()))
    return found


def answered_note(journeys: pl.DataFrame, stated: pl.DataFrame, recommended: str) -> str:
    """How many deals have a stated channel (the self-reported models credit the others by
    the recommended model)."""
    deals = journeys.filter(pl.col("status") != "none").height
    answered = stated.height
    share = f" ({answered / deals:.0%})" if deals else ""
    return (f"self-reported source: {answered:,} of {deals:,} deals{share} have a stated "
            f"channel; the self_reported and blended models credit the others by the "
            f"recommended model ({recommended})")


def dark_funnel(summary: pl.DataFrame, touches: pl.LazyFrame, journeys: pl.LazyFrame,
                stated: pl.DataFrame, *, tracked: str, self_reported: str = "self_reported",
                min_deals: int = 30) -> pl.DataFrame:
    """The dark-funnel table (:data:`DARK_FUNNEL_SCHEMA`), one row per channel.

    ``tracked_*`` is the ``tracked`` model's revenue credit (the recommended model: touches
    only), ``self_reported_*`` the ``self_reported`` model's (each answered deal whole to its
    stated channel, the others as ``tracked``: the fallback's credit is in it); both come from
    ``summary`` and sum to won revenue. ``stated_*`` is what buyers said, alone: the won
    revenue of the answered deals stating the channel, and its share of all won revenue (the
    unanswered deals' revenue is in no channel's). ``stated_deals`` counts the deals stating
    the channel, ``dark_deals`` those of them whose journey has no touch of the channel (compared by
    :func:`~attribution.channels.channel_key`), ``dark_share`` their share and
    ``dark_revenue`` their won revenue. ``sufficient`` is False when fewer than ``min_deals``
    won deals state the channel (too few to tell).
    """
    money = journeys.filter(pl.col("status") != "none").select(
        "journey_id", "status", "revenue_cents").collect()
    seen = touches.select("journey_id", "channel").unique().collect()
    seen_keys = seen.with_columns(
        pl.col("channel").map_elements(channel_key, return_dtype=pl.String).alias("_key")
    ).select("journey_id", "_key").unique()
    said = (
        stated.join(money, on="journey_id", how="inner")
        .with_columns(pl.col("channel").map_elements(channel_key, return_dtype=pl.String)
                      .alias("_key"))
        .join(seen_keys.with_columns(pl.lit(True).alias("_touched")), on=["journey_id", "_key"],
              how="left")
        .with_columns(pl.col("_touched").fill_null(False), (pl.col("status") == "won")
                      .alias("_won"))
    )
    counts = said.group_by("channel").agg(
        pl.col("channel_group").first(),
        pl.len().cast(pl.UInt32).alias("stated_deals"),
        pl.col("_won").sum().cast(pl.UInt32).alias("stated_won_deals"),
        (~pl.col("_touched")).sum().cast(pl.UInt32).alias("dark_deals"),
        (~pl.col("_touched") & pl.col("_won")).sum().cast(pl.UInt32).alias("dark_won_deals"),
        pl.when(~pl.col("_touched")).then(pl.col("revenue_cents")).otherwise(0).sum()
        .cast(pl.Int64).alias("dark_revenue_cents"),
        pl.col("revenue_cents").sum().cast(pl.Int64).alias("stated_revenue_credit_cents"),
    )
    # every deal's won revenue, answered or not: the shares' denominator, as the models'
    won_total = int(money.get_column("revenue_cents").sum())
    counts = counts.with_columns(
        (pl.col("stated_revenue_credit_cents") / won_total if won_total else pl.lit(0.0))
        .alias("stated_revenue_share"))

    def credit(model: str, prefix: str) -> pl.DataFrame:
        return summary.filter(pl.col("model") == model).select(
            "channel", pl.col("channel_group").alias(f"_{prefix}_group"),
            pl.col("revenue_credit_cents").alias(f"{prefix}_revenue_credit_cents"),
            pl.col("revenue_share").alias(f"{prefix}_revenue_share"))

    table = (
        credit(tracked, "tracked")
        .join(credit(self_reported, "self_reported"), on="channel", how="full", coalesce=True)
        .join(counts, on="channel", how="full", coalesce=True)
        .with_columns(
            pl.coalesce("channel_group", "_tracked_group", "_self_reported_group")
            .alias("channel_group"),
            *(pl.col(c).fill_null(0) for c in ("tracked_revenue_credit_cents",
                                               "self_reported_revenue_credit_cents", "stated_deals",
                                               "stated_won_deals", "dark_deals",
                                               "dark_won_deals", "dark_revenue_cents",
                                               "stated_revenue_credit_cents")),
            *(pl.col(c).fill_null(0.0) for c in ("tracked_revenue_share",
                                                 "self_reported_revenue_share",
                                                 "stated_revenue_share")),
        )
        .with_columns(
            pl.when(pl.col("stated_deals") > 0)
            .then(pl.col("dark_deals") / pl.col("stated_deals")).alias("dark_share"),
            (pl.col("stated_won_deals") >= min_deals).alias("sufficient"),
        )
    )
    return (table.select([pl.col(c).cast(t) for c, t in DARK_FUNNEL_SCHEMA.items()])
            .sort(["dark_revenue_cents", "self_reported_revenue_credit_cents", "channel"],
                  descending=[True, True, False]))


def with_dark_funnel(comparison: pl.DataFrame, dark: pl.DataFrame) -> pl.DataFrame:
    """``comparison`` rows (model, channel, ...) each with its channel's dark-funnel columns
    (``compare --format json``): the list keeps its shape, a row per model and channel."""
    columns = [c for c in DARK_FUNNEL_SCHEMA if c not in ("channel_group", "sufficient")]
    return comparison.join(dark.select(columns), on="channel", how="left",
                           maintain_order="left")


def largest_dark_channel(table: pl.DataFrame) -> dict[str, Any] | None:
    """The channel with the most won revenue from deals that state it without a tracked touch
    of it, among channels with enough stated won deals (``sufficient``); None when no channel
    qualifies (the headline then names none)."""
    ready = table.filter(pl.col("sufficient") & (pl.col("dark_revenue_cents") > 0)
                         & (pl.col("channel") != NO_TOUCH_CHANNEL))
    if not ready.height:
        return None
    return ready.sort(["dark_revenue_cents", "channel"], descending=[True, False]).row(0,
                                                                                       named=True)


__all__ = [
    "ANSWER_SCHEMA",
    "DARK_FUNNEL_SCHEMA",
    "Answers",
    "answered_note",
    "answers_note",
    "dark_funnel",
    "largest_dark_channel",
    "read_answers",
    "stated_channels",
    "with_dark_funnel",
]
