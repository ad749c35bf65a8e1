"""Plain, slow, obviously correct versions of the fast paths, for property tests to compare.

Nothing here is fast or clever: a journey is built by looping over the deals and reading the
touches of the account one by one; credit is split deal by deal with Python integers. Each
function follows the rule as the module docstring of :mod:`attribution.journeys` or
:mod:`attribution.credit` states it, and shares no code with the library beyond the schemas.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from attribution.errors import ModelError
from attribution.journeys import Journeys
from attribution.schema import (
    ACCOUNT_JOURNEY_PREFIX,
    CREDIT_SCHEMA,
    DETAIL_COLUMNS,
    JOURNEY_SCHEMA,
    NO_TOUCH_CHANNEL,
    NO_TOUCH_GROUP,
    REJECT_SCHEMA,
    TOUCH_SCHEMA,
)

Row = dict[str, Any]

#: the touch order: time, then these columns, missing values last, then the input row
_TIE_BREAKS = ("contact_id", "channel", "touch_type", "campaign", "touchpoint_id",
               "utm_source", "utm_medium")


def _nulls_last(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else "")


def reference_journeys(
    touchpoints: pl.DataFrame,
    deals: pl.DataFrame,
    contacts: pl.DataFrame,
    *,
    lookback_days: int = 180,
    dedup_minutes: float = 30.0,
    as_of: datetime | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Touches (:data:`TOUCH_SCHEMA`), journeys (:data:`JOURNEY_SCHEMA`) and the row counts
    (``touches_used``, ``touches_deduplicated``, ``touches_out_of_window``) of the buying-group
    journeys, built one deal at a time. Touches are listed journey by journey in ``journey_id``
    order, each journey's in touch order; journeys in ``journey_id`` order."""
    touches = [row | {"_input": n} for n, row in enumerate(touchpoints.iter_rows(named=True))]
    deal_rows = list(deals.iter_rows(named=True))
    if as_of is None:
        moments = ([t["timestamp"] for t in touches] + [d["created_at"] for d in deal_rows]
                   + [d["closed_at"] for d in deal_rows if d["closed_at"] is not None])
        as_of = max(moments) if moments else datetime(1970, 1, 1, tzinfo=UTC)
    first_lead: dict[str, datetime] = {}
    for contact in contacts.iter_rows(named=True):
        lead = contact["lead_created_at"]
        if lead is not None and (contact["account_id"] not in first_lead
                                 or lead < first_lead[contact["account_id"]]):
            first_lead[contact["account_id"]] = lead

    journeys: list[Row] = []
    for deal in deal_rows:
        if deal["created_at"] > as_of:
            continue  # created after the as-of instant: out of scope
        closed_later = deal["closed_at"] is not None and deal["closed_at"] > as_of
        status = "open" if closed_later else deal["status"]
        closed_at = None if status == "open" else deal["closed_at"]
        journeys.append({
            "journey_id": deal["deal_id"], "account_id": deal["account_id"],
            "deal_id": deal["deal_id"], "status": status, "amount_cents": deal["amount_cents"],
            "created_at": deal["created_at"], "closed_at": closed_at,
            "end_at": closed_at if closed_at is not None else as_of,
            "_start": deal["created_at"] - timedelta(days=lookback_days),
            "conversions": int(status == "won"), "nulls": int(status == "lost"),
            "revenue_cents": deal["amount_cents"] if status == "won" else 0,
        })
    with_deal = {j["account_id"] for j in journeys}
    touched_accounts = {t["account_id"] for t in touches if t["timestamp"] <= as_of}
    for account in touched_accounts - with_deal:
        journeys.append({
            "journey_id": ACCOUNT_JOURNEY_PREFIX + account, "account_id": account,
            "deal_id": None, "status": "none", "amount_cents": 0, "created_at": None,
            "closed_at": None, "end_at": as_of, "_start": None,
            "conversions": 0, "nulls": 1, "revenue_cents": 0,
        })
    journeys.sort(key=lambda j: j["journey_id"])

    out: list[Row] = []
    windowed: set[int] = set()
    used: set[int] = set()
    for journey in journeys:
        mine = [t for t in touches
                if t["account_id"] == journey["account_id"]
                and (journey["_start"] is None or t["timestamp"] >= journey["_start"])
                and t["timestamp"] <= journey["end_at"]]
        windowed |= {t["_input"] for t in mine}
        mine.sort(key=lambda t: (t["timestamp"], *(_nulls_last(t.get(c)) for c in _TIE_BREAKS),
                                 t["_input"]))
        kept = []
        last_seen: dict[tuple[Any, Any], datetime] = {}
        for touch in mine:  # the chain rule: each touch against the person's previous one
            person = (touch["contact_id"], touch["channel"])
            previous = last_seen.get(person)
            last_seen[person] = touch["timestamp"]
            if (dedup_minutes > 0 and previous is not None
                    and touch["timestamp"] - previous < timedelta(minutes=dedup_minutes)):
                continue
            kept.append(touch)
        used |= {t["_input"] for t in kept}
        journey["n_touches"] = len(kept)
        lead = _last_at_or_before(kept, first_lead.get(journey["account_id"]))
        created = _last_at_or_before(kept, journey["created_at"])
        for position, touch in enumerate(kept):
            out.append({
                "journey_id": journey["journey_id"], "account_id": journey["account_id"],
                "touch_index": position,
                **{c: touch[c] for c in ("touchpoint_id", "contact_id", "timestamp", "channel",
                                         "channel_group", "touch_type", "campaign")},
                "is_first": position == 0,
                "is_lead_creation": position == lead,
                "is_opportunity_creation": journey["status"] != "none" and position == created,
                "is_closed_won": journey["status"] == "won" and position == len(kept) - 1,
            })
    counts = {
        "touches_used": len(used),
        "touches_deduplicated": len(windowed - used),
        "touches_out_of_window": touchpoints.height - len(windowed),
    }
    return (pl.DataFrame(out, schema=TOUCH_SCHEMA),
            pl.DataFrame([{c: j[c] for c in JOURNEY_SCHEMA} for j in journeys],
                         schema=JOURNEY_SCHEMA),
            counts)


def _last_at_or_before(touches: list[Row], moment: datetime | None) -> int:
    """Position of the last touch at or before ``moment``; 0 (the first) when none is."""
    found = 0
    for position, touch in enumerate(touches):
        if moment is not None and touch["timestamp"] <= moment:
            found = position
    return found


def largest_remainder(weights: list[float], total: int) -> list[int]:
    """``total`` cents over ``weights``: floors, then a cent each to the largest fractional
    parts, ties to the earlier row."""
    raw = [w * float(total) for w in weights]
    credit = [math.floor(r) for r in raw]
    left = total - sum(credit)
    ranked = sorted(range(len(raw)), key=lambda i: (-(raw[i] - math.floor(raw[i])), i))
    for rank, i in enumerate(ranked):
        credit[i] += rank < left
    return credit


def split_by_totals(amounts: list[int], shares: list[float]) -> list[list[int]]:
    """Channel totals first, row by row (:func:`attribution.credit.split_by_totals`): each row
    by largest remainder; then, while a channel is above its total (its largest-remainder
    share of the whole), the first most over-credited channel gives cents to the first most
    under-credited one: as many as the smaller gap, one each from the rows where the giving
    cell is furthest above its exact value plus the taking cell furthest below (ties: the
    earlier row)."""
    total_share = math.fsum(shares)
    share = [s / total_share for s in shares]
    exact = [[float(a) * s for s in share] for a in amounts]
    cents = [largest_remainder_of(row, a) for row, a in zip(exact, amounts, strict=True)]
    target = largest_remainder_of([s * float(sum(amounts)) for s in share], sum(amounts))
    excess = [sum(row[k] for row in cents) - target[k] for k in range(len(share))]
    while any(e > 0 for e in excess):
        over = excess.index(max(excess))
        under = excess.index(min(excess))
        gains = sorted(
            ((cents[d][over] - exact[d][over]) + (exact[d][under] - cents[d][under]), d)
            for d in range(len(amounts)) if cents[d][over] > 0)
        gains.sort(key=lambda g: (-g[0], g[1]))
        moves = min(excess[over], -excess[under], len(gains))
        for _, d in gains[:moves]:
            cents[d][over] -= 1
            cents[d][under] += 1
        excess[over] -= moves
        excess[under] += moves
    return cents


def largest_remainder_of(exact: list[float], total: int) -> list[int]:
    """``total`` over parts whose exact values are ``exact``: floors, then a cent each to the
    largest fractions, ties to the earlier part."""
    credit = [math.floor(r) for r in exact]
    ranked = sorted(range(len(exact)), key=lambda i: (-(exact[i] - credit[i]), i))
    left = total - sum(credit)
    for rank, i in enumerate(ranked):
        credit[i] += rank < left
    return credit


def _shared_channel_weights(money: list[Row], per_journey: dict[int, list[Row]]
                            ) -> list[tuple[str, float]] | None:
    """The (channel, weight) pairs every weighed money journey (with touches, or weights of
    its own) has, when its weights are
    channel-level (no touch index) and the same in each, in channel order; else None."""
    seen = None
    for n, journey in enumerate(money):
        if journey["n_touches"] == 0 and n not in per_journey:  # (no touch)'s whole
            continue
        rows = per_journey.get(n, [])
        if not rows or any(r["touch_index"] is not None or r["channel"] is None for r in rows):
            return None
        pairs = sorted((r["channel"], r["weight"]) for r in rows)
        if seen is not None and pairs != seen:
            return None
        seen = pairs
    return seen


def reference_credit(journeys: Journeys, weights: pl.DataFrame, model: str) -> pl.DataFrame:
    """Touch-level credit (:data:`CREDIT_SCHEMA`) of ``weights``, deal by deal.

    The journeys that carry money (every status but ``none``) are credited in the order of
    the journeys frame; inside each, its nonzero weights by touch, then channel (missing
    last), then as given; deals without a touch that the weights leave out get one
    ``(no touch)`` row each, after all the others (a deal without a touch that the weights
    credit, a self-reported channel, keeps its weights). A journey's weights must be >= 0 and
    sum to 1 (within 1e-9), else
    :class:`ModelError`.
    """
    money = [j for j in journeys.journeys.collect().iter_rows(named=True) if j["status"] != "none"]
    position = {j["journey_id"]: n for n, j in enumerate(money)}
    touches = {(t["journey_id"], t["touch_index"]): t
               for t in journeys.touches.collect().iter_rows(named=True)}
    group_of = {t["channel"]: t["channel_group"] for t in touches.values()}
    carried = [c for c in DETAIL_COLUMNS if c in weights.columns]
    per_journey: dict[int, list[Row]] = {}
    for row in weights.iter_rows(named=True):
        if row["journey_id"] in position and row["weight"] != 0.0:
            per_journey.setdefault(position[row["journey_id"]], []).append(row)
    shared = _shared_channel_weights(money, per_journey)
    by_totals: dict[str, tuple[list[int], list[int]]] = {}
    if shared is not None:  # a model's channel shares: channel totals first, by journey_id
        weighed = sorted((j for n, j in enumerate(money)
                          if j["n_touches"] > 0 or n in per_journey),
                         key=lambda j: j["journey_id"])
        share = [w for _, w in shared]
        pipelines = split_by_totals([j["amount_cents"] for j in weighed], share)
        revenues = split_by_totals([j["revenue_cents"] for j in weighed], share)
        by_totals = {j["journey_id"]: (p, v)
                     for j, p, v in zip(weighed, pipelines, revenues, strict=True)}
    out: list[Row] = []
    bare = []
    for n, journey in enumerate(money):
        rows = per_journey.get(n, [])
        if journey["n_touches"] == 0 and not rows:  # weighed by the model: the model's
            rows = [{"journey_id": journey["journey_id"], "touch_index": None,
                     "channel": NO_TOUCH_CHANNEL, "weight": 1.0, "_added": True}]
        elif not rows:
            raise ModelError(f"no weight for journey {journey['journey_id']!r}")
        weight = [r["weight"] for r in rows]
        if (any(w is None or math.isnan(w) or w < 0 for w in weight)
                or abs(sum(weight) - 1.0) > 1e-9):
            raise ModelError(f"weights {weight!r} for journey {journey['journey_id']!r}")
        rows.sort(key=lambda r: (*_nulls_last(r["touch_index"]), *_nulls_last(r["channel"])))
        pipeline = largest_remainder(weight := [r["weight"] for r in rows], journey["amount_cents"])
        revenue = largest_remainder(weight, journey["revenue_cents"])
        if journey["journey_id"] in by_totals:
            pipeline, revenue = by_totals[journey["journey_id"]]
        for r, p, v in zip(rows, pipeline, revenue, strict=True):
            no_touch = r.get("_added", False)
            touch = {} if no_touch else touches.get((r["journey_id"], r["touch_index"]), {})
            detail = {c: r.get(c) if c in carried else touch.get(c) for c in DETAIL_COLUMNS}
            credit = {
                "model": model, "journey_id": journey["journey_id"],
                "deal_id": journey["deal_id"], "account_id": journey["account_id"],
                "status": journey["status"], "touch_index": r["touch_index"],
                "touchpoint_id": None if no_touch else detail["touchpoint_id"],
                "timestamp": None if no_touch else detail["timestamp"],
                "channel": r["channel"],
                "channel_group": NO_TOUCH_GROUP if no_touch
                else detail["channel_group"] if "channel_group" in carried
                else group_of.get(r["channel"]),
                "weight": r["weight"], "pipeline_credit_cents": p, "revenue_credit_cents": v,
                "conversion_credit": r["weight"] * journey["conversions"],
            }
            (bare if no_touch else out).append(credit)
    return pl.DataFrame(out + bare, schema=CREDIT_SCHEMA)


def reference_parse_paths(
    raw: pl.DataFrame, names: dict[str, str], *, source: str = "<paths>", separator: str = ">"
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Touches (:data:`TOUCH_SCHEMA`), journeys (:data:`JOURNEY_SCHEMA`) and rejects of a path
    table, read one row at a time as :mod:`attribution.paths` states it: steps trimmed, a row
    with an empty path or step, or a count or value that is not a number >= 0 rejected (one
    reject per problem, in column order), values in exact cents rounded half to even, and
    each channel spelled as the most frequent spelling of its key (ties: the smallest)."""
    import re
    from collections import Counter
    from decimal import ROUND_HALF_EVEN, Decimal

    from attribution.channels import channel_key

    def text(row: Row, name: str) -> str | None:
        value = row.get(names[name]) if name in names else None
        return None if value is None else str(value)

    def blank(value: str | None) -> bool:
        return value is None or value.strip() == ""

    def whole(value: str | None) -> int | None:
        if value is None or not re.fullmatch(r"\+?\d+(\.0*)?", value.strip()):
            return None
        return int(re.match(r"\+?(\d+)", value.strip()).group(1))  # type: ignore[union-attr]

    def cents(value: str | None) -> int | None:
        if value is None or not re.fullmatch(r"\+?(\d+\.?\d*|\.\d+)", value.strip()):
            return None
        exact = Decimal(value.strip().lstrip("+")).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        return int(exact * 100)

    rejects: list[Row] = []
    kept: list[tuple[int, list[str], int, int, int]] = []
    for number, row in enumerate(raw.iter_rows(named=True), start=1):
        path = text(row, "path")
        steps = [] if path is None else [step.strip() for step in path.split(separator)]
        conversions, nulls, value = (text(row, "conversions"), text(row, "nulls"),
                                     text(row, "conversion_value"))
        problems = [
            ("path", blank(path), "empty path"),
            ("path", not blank(path) and "" in steps,
             f"empty step in path (separator {separator!r})"),
            ("conversions", blank(conversions), "missing conversions"),
            ("conversions", not blank(conversions) and whole(conversions) is None,
             "conversions is not a whole number >= 0"),
            ("nulls", not blank(nulls) and whole(nulls) is None,
             "nulls is not a whole number >= 0"),
            ("conversion_value", not blank(value) and cents(value) is None,
             "conversion value is not a decimal number >= 0"),
        ]
        found = [(column, reason) for column, bad, reason in problems if bad]
        for column, reason in found:
            rejects.append({"file": source, "input": "paths", "row": number,
                            "column": names.get(column, column), "reason": reason,
                            "value": text(row, column)})
        if not found:
            kept.append((number, steps, whole(conversions) or 0, whole(nulls) or 0,
                         cents(value) or 0))
    spellings = Counter(step for _, steps, *_ in kept for step in steps)
    usual: dict[str, str] = {}
    for name, _count in sorted(spellings.items(), key=lambda item: (-item[1], item[0])):
        usual.setdefault(channel_key(name), name)
    touches = [
        {"journey_id": f"path-{number}", "touch_index": position,
         "channel": usual[channel_key(step)], "channel_group": usual[channel_key(step)],
         "is_first": position == 0}
        for number, steps, *_ in kept for position, step in enumerate(steps)
    ]
    journeys = [
        {"journey_id": f"path-{number}", "status": "path", "amount_cents": value,
         "n_touches": len(steps), "conversions": conversions, "nulls": nulls,
         "revenue_cents": value}
        for number, steps, conversions, nulls, value in kept
    ]

    def frame(rows: list[Row], schema: pl.Schema) -> pl.DataFrame:
        return pl.DataFrame(
            {name: [row.get(name) for row in rows] for name in schema.names()}, schema=schema)

    return (frame(touches, TOUCH_SCHEMA), frame(journeys, JOURNEY_SCHEMA),
            frame(rejects, REJECT_SCHEMA))
