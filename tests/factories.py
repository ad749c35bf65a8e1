"""Tiny inline exports for tests: validated frames and journeys built from them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from attribution.config import Config
from attribution.journeys import Journeys, build_journeys
from attribution.schema import UTC_TIME
from attribution.simulate import World

GROUPS = {
    "podcast": "demand_creation",
    "newsletter": "demand_creation",
    "community": "demand_creation",
    "events": "demand_creation",
    "paid_search": "demand_capture",
    "direct": "demand_capture",
    "review_sites": "demand_capture",
}


def at(text: str) -> datetime:
    """'2025-01-31' or '2025-01-31T10:00' as an aware UTC datetime."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC)


def touches_frame(rows: list[tuple[str, str, str, str]]) -> pl.DataFrame:
    """rows of (account_id, contact_id, channel, timestamp) -> validated touchpoints."""
    return pl.DataFrame(
        {
            "_row": list(range(1, len(rows) + 1)),
            "touchpoint_id": [f"t{i}" for i in range(1, len(rows) + 1)],
            "timestamp": [at(r[3]) for r in rows],
            "contact_id": [r[1] for r in rows],
            "account_id": [r[0] for r in rows],
            "channel": [r[2] for r in rows],
            "channel_group": [GROUPS.get(r[2], "other") for r in rows],
            "touch_type": [None] * len(rows),
            "campaign": [None] * len(rows),
        },
        schema_overrides={"timestamp": UTC_TIME, "touch_type": pl.String, "campaign": pl.String},
    )


def deals_frame(rows: list[tuple[str, str, str, str | None, str, int]]) -> pl.DataFrame:
    """rows of (deal_id, account_id, created_at, closed_at, status, amount_cents)."""
    return pl.DataFrame(
        {
            "_row": list(range(1, len(rows) + 1)),
            "deal_id": [r[0] for r in rows],
            "account_id": [r[1] for r in rows],
            "created_at": [at(r[2]) for r in rows],
            "closed_at": [at(r[3]) if r[3] else None for r in rows],
            "status": [r[4] for r in rows],
            "amount_cents": [r[5] for r in rows],
        },
        schema_overrides={"created_at": UTC_TIME, "closed_at": UTC_TIME,
                          "amount_cents": pl.Int64},
    )


def contacts_frame(rows: list[tuple[str, str, str | None]]) -> pl.DataFrame:
    """rows of (contact_id, account_id, lead_created_at)."""
    return pl.DataFrame(
        {
            "contact_id": [r[0] for r in rows],
            "account_id": [r[1] for r in rows],
            "lead_created_at": [at(r[2]) if r[2] else None for r in rows],
        },
        schema={"contact_id": pl.String, "account_id": pl.String, "lead_created_at": UTC_TIME},
    )


def journeys_of(touches, deals, contacts=(), **options) -> Journeys:
    journeys, _stats = build_journeys(
        touches_frame(list(touches)), deals_frame(list(deals)), contacts_frame(list(contacts)),
        **options,
    )
    return journeys


def channel_credit(credit: pl.DataFrame, column: str = "revenue_credit_cents") -> dict[str, int]:
    """{channel: credit in cents} of a credit table."""
    totals = credit.group_by("channel").agg(pl.col(column).sum()).sort("channel")
    return {c: int(v) for c, v in totals.iter_rows()}


#: the worked journey of tests/test_rule_models.py: deal D1 at account A, $1,000.00 won
WORKED_TOUCHES = [
    ("A", "ann", "podcast", "2025-01-01"),      # 0 first touch
    ("A", "bob", "newsletter", "2025-01-10"),   # 1 lead creation (bob's lead at 2025-01-12)
    ("A", "ann", "direct", "2025-01-20"),       # 2
    ("A", "bob", "paid_search", "2025-02-01"),  # 3 opportunity creation (deal created 02-03)
    ("A", "cat", "direct", "2025-02-10"),       # 4 closed won (last touch; closed 02-15)
]
WORKED_DEALS = [("D1", "A", "2025-02-03", "2025-02-15", "won", 100_000)]
WORKED_CONTACTS = [("ann", "A", None), ("bob", "A", "2025-01-12"), ("cat", "A", "2025-03-01")]


def hand_world(**changes) -> World:
    """A world whose truth is worked out by hand: podcast and direct reach every account;
    podcast always causes paid search (its only way in); every account creates a deal; a deal
    is won exactly when paid search was seen; deals are 10,000 USD, doubled by direct; no noise
    touches, no randomness in outcomes."""
    fields: dict[str, object] = {
        "name": "hand",
        "reach": {"podcast": 1.0, "paid_search": 0.0, "direct": 1.0},
        "stage": {"podcast": 0.1, "paid_search": 0.6, "direct": 0.9},
        "causes": {("podcast", "paid_search"): 1.0},
        "base_deal_logit": 60.0,
        "base_win_logit": -60.0,
        "win_effect": {"paid_search": 120.0},
        "size_effect": {"direct": math.log(2.0)},
        "base_amount": 10_000.0,
        "amount_sigma": 0.0,
        "noise_touches": 0.0,
    }
    return World(**(fields | changes))


#: channels the answers of :func:`with_answers` state in turn (one no touch carries, one a
#: touch does, and no answer)
STATED_CYCLE = ("word_of_mouth", None, "podcast")


def with_answers(journeys: Journeys, cycle=STATED_CYCLE) -> Journeys:
    """``journeys`` with self-reported answers: the deal journeys, in journey_id order, state
    the channels of ``cycle`` in turn (None: no answer); ``cycle=()``: answers known, none
    given."""
    import dataclasses

    deals = (journeys.journeys.filter(pl.col("status") != "none").select("journey_id")
             .collect().sort("journey_id").get_column("journey_id").to_list())
    rows = [(j, cycle[i % len(cycle)]) for i, j in enumerate(deals)] if cycle else []
    stated = pl.DataFrame(
        [(j, c, "demand_creation") for j, c in rows if c is not None],
        schema={"journey_id": pl.String, "channel": pl.String, "channel_group": pl.String},
        orient="row",
    )
    return dataclasses.replace(journeys, stated=stated)



def rejected_and_blanked_contacts(folder: Path, models: tuple[str, ...]) -> Config:
    """A tiny export in ``folder``: contact c2 has no account (rejected, its touch with it),
    c3 a lead date that cannot be read (the cell blanked, the contact kept); the config of a
    run of ``models`` over it (every reject allowed)."""
    (folder / "c.csv").write_text("contact_id,account_id,lead_created_at\nc1,A,2025-01-01\n"
                                  "c2,,2025-01-01\nc3,A,31.02.2025\n")
    (folder / "t.csv").write_text("touchpoint_id,timestamp,contact_id,channel\n"
                                  "t1,2025-01-02,c1,email\nt2,2025-01-03,c2,email\n"
                                  "t3,2025-01-04,c3,email\n")
    (folder / "d.csv").write_text("deal_id,account_id,created_at,closed_at,status,amount\n"
                                  "D1,A,2025-01-05,2025-02-01,won,100\n")
    return Config(touchpoints=folder / "t.csv", deals=folder / "d.csv",
                  contacts=folder / "c.csv", max_reject_rate=1.0, models=models)
