"""Weights -> money: exact touch-level credit and the channel summary.

This is the only place a model's weights become money, so conservation holds for every model
by construction: each deal's amount (in minor units) is split over its weighted rows by the
largest-remainder method. Every row first gets ``floor(weight x amount)`` cents; the cents
left over go one each to the rows with the largest fractional parts, ties going to the earlier
touch (then the channel name). The credit of a deal therefore sums to its amount exactly,
and channel totals sum to total pipeline and total won revenue to the cent.

A deal with no touch in its window is credited whole to the ``(no touch)`` channel so that
totals always reconcile with the deals file.

A model whose credit is defined by channel totals (Markov's global allocation: the same
channel-level weights, its shares, in every journey) is split the other way round, totals
first (:func:`split_by_totals`): each channel's total is its share of the total, rounded by
largest remainder, and those totals are then distributed over the deals so that each deal
still sums to its amount. Rounding each deal on its own would starve small channels: a
channel whose share of a small deal is below half a cent would lose that fraction on every
deal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from attribution.errors import ModelError
from attribution.journeys import JourneyIndex, Journeys, conform
from attribution.schema import (
    CREDIT_SCHEMA,
    DETAIL_COLUMNS,
    NO_TOUCH_CHANNEL,
    NO_TOUCH_GROUP,
    SUMMARY_SCHEMA,
    UTC_TIME,
)

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

WEIGHT_TOLERANCE = 1e-9
#: from this many credit rows on, the deal columns are gathered one at a time (less memory)
GATHER_BY_COLUMN_FROM = 1_000_000
#: from this many ranked rows on, leftover cents are ranked by polars' two-key sort (on two
#: threads) rather than numpy's lexsort (bench/RESULTS.md)
POLARS_RANK_FROM = 100_000
#: the columns a money journey without a touch may be given (:func:`_untouched`)
_UNTOUCHED_TYPES: dict[str, PolarsDataType] = {
    "_j": pl.UInt32, "journey_id": pl.String, "touch_index": pl.UInt32, "channel": pl.String,
    "weight": pl.Float64, "touchpoint_id": pl.String, "timestamp": UTC_TIME,
    "channel_group": pl.String}


def channel_groups(journeys: Journeys) -> pl.LazyFrame:
    """Distinct ``channel -> channel_group`` pairs of the journeys (plus ``(no touch)``)."""
    return pl.concat(
        [
            journeys.touches.select("channel", "channel_group").unique(),
            pl.LazyFrame({"channel": [NO_TOUCH_CHANNEL], "channel_group": [NO_TOUCH_GROUP]}),
        ]
    ).unique(subset="channel", keep="first")


def allocate(journeys: Journeys, weights: pl.LazyFrame, model: str, *,
             population: pl.DataFrame | None = None) -> pl.LazyFrame:
    """Touch-level credit (:data:`~attribution.schema.CREDIT_SCHEMA`) for one model's weights.

    Only journeys that carry money are credited: deals (won, lost, open) and path-table rows.
    ``pipeline_credit`` splits every deal's amount; ``revenue_credit`` splits won revenue;
    ``conversion_credit`` splits conversions (1 per won deal). The touch's id, time and channel
    group come with the weights when the model carried them (:data:`DETAIL_COLUMNS`), else
    from the journeys.

    Channel-level weights that are the same in every journey (``touch_index`` null: a model's
    channel shares, as Markov's global allocation gives) are split totals first
    (:func:`split_by_totals`) over the journeys they weigh, or over ``population`` when it is
    given: ``journey_id, amount_cents, revenue_cents`` of every journey the shares weigh in the
    whole run, for an engine that allocates a part of the journeys at a time (Spark's batches),
    so the part gets the cents the whole gives it.

    Raises
    ------
    ModelError
        If the weights of a journey do not sum to 1 or a weight is negative.
    """
    money = journeys.money
    money = pl.DataFrame([  # column by column: no query plan
        pl.Series("_j", np.arange(money.height, dtype=np.uint32)),
        *(money.get_column(c) for c in ("journey_id", "deal_id", "account_id", "status",
                                        "amount_cents", "revenue_cents", "conversions",
                                        "n_touches")),
    ])
    carried = [c for c in DETAIL_COLUMNS if c in weights.collect_schema().names()]
    touched = (  # zero-weight rows carry no money (a missing weight stays, to be refused)
        weights.select("journey_id", "touch_index", "channel", "weight", *carried)
        .filter(pl.col("weight").ne_missing(0.0))
        .collect()
    )
    touched, runs = _credit_rows(touched, money)
    untouched = _untouched(money, touched.columns, touched.get_column("_j"))
    _check_weights(touched, runs, untouched, money, model)
    # touched rows in the journeys' order (by journey_id for built journeys), by touch, then
    # channel, inside each journey; deals without a touch (one row each) come last. Built
    # column by column (Series operations): each DataFrame operation costs a query plan,
    # which is most of the time on small inputs.
    if untouched is None:
        rows = touched
    else:
        rows = pl.concat([touched, untouched])
        runs = runs.followed_by(JourneyIndex.of_sizes(np.ones(untouched.height, np.int64)))
    index = rows.get_column("_j")
    row = index.to_numpy()
    starts = runs.starts
    journey = row[starts]
    weight = rows.get_column("weight").to_numpy()
    amount = money.get_column("amount_cents").to_numpy()
    revenue = money.get_column("revenue_cents").to_numpy()
    bare = 0 if untouched is None else untouched.height
    shares = _channel_shares(rows, runs, bare)
    if shares is not None:  # credit defined by channel totals: the totals first
        pipeline_credit, revenue_credit = _by_totals(rows, runs, money, shares, population,
                                                     bare)
    else:
        pipeline_credit = _largest_remainder(weight, amount[journey], starts)
        if ((revenue[journey] != 0) & (revenue[journey] != amount[journey])).any():
            revenue_credit = _largest_remainder(weight, revenue[journey], starts)
        else:  # revenue is 0 or the whole amount: it splits as the amount does
            revenue_credit = np.where(revenue[row] == 0, 0, pipeline_credit)
    deal = _deal_columns(journeys, money, index, row)
    columns = {
        "model": pl.Series("model", [model], pl.String).new_from_index(0, rows.height),
        **{c: deal.get_column(c) for c in ("deal_id", "account_id", "status")},
        **{c: rows.get_column(c) for c in rows.columns if c != "_j"},
        "pipeline_credit_cents": pl.Series("pipeline_credit_cents", pipeline_credit),
        "revenue_credit_cents": pl.Series("revenue_credit_cents", revenue_credit),
        "conversion_credit": (rows.get_column("weight") * deal.get_column("conversions")).alias(
            "conversion_credit"),
    }
    if set(CREDIT_SCHEMA.names()) <= set(columns):  # every detail came with the weights
        return pl.DataFrame([columns[c].cast(t).alias(c) for c, t in CREDIT_SCHEMA.items()]).lazy()
    credit = pl.DataFrame(list(columns.values()))
    looked_up = [c for c in ("touchpoint_id", "timestamp") if c not in carried]
    if looked_up and credit.get_column("touch_index").null_count() == credit.height:
        credit = credit.with_columns(  # channel-level weights: no touch to look up
            pl.lit(None, CREDIT_SCHEMA[c]).alias(c) for c in looked_up
        )
    elif looked_up:
        details = journeys.touches.select("journey_id", "touch_index", *looked_up).collect()
        credit = credit.join(details, on=["journey_id", "touch_index"], how="left",
                             maintain_order="left")
    if "channel_group" not in carried:
        credit = credit.join(channel_groups(journeys).collect(), on="channel", how="left",
                             maintain_order="left")
    return conform(credit.lazy(), CREDIT_SCHEMA)


def _deal_columns(journeys: Journeys, money: pl.DataFrame, index: pl.Series,
                  row: np.ndarray) -> pl.DataFrame:
    """``deal_id``, ``account_id``, ``status`` and ``conversions`` of each credit row's money
    journey (``index``, ``row``: its row of ``money``, as a Series and as an array).

    The touch-level models of a run credit the same rows (every money touch), so the last
    gather is kept in ``journeys.deal_gather`` and reused when the rows' money rows are the
    same.
    """
    kept = journeys.deal_gather
    if kept.rows is not None and kept.columns is not None and np.array_equal(kept.rows, row):
        return kept.columns
    dealt = ("deal_id", "account_id", "status", "conversions")
    if index.len() < GATHER_BY_COLUMN_FROM:  # one frame gather, its columns in parallel
        deal = pl.DataFrame([money.get_column(c) for c in dealt])[index]
    else:  # column by column: slower, but a lower peak (one gathered column at a time)
        deal = pl.DataFrame([money.get_column(c).gather(index) for c in dealt])
    kept.rows, kept.columns = row, deal
    return deal


def _untouched(money: pl.DataFrame, columns: list[str],
               weighed: pl.Series | None = None) -> pl.DataFrame | None:
    """One ``(no touch)`` row, weight 1, per money journey without a touch, with ``columns``
    (None when every money journey has a touch). A journey without a touch that the model
    weighed itself (``weighed``: the ``_j`` of its rows; a self-reported channel credits a
    deal no touch reached) is the model's, not ``(no touch)``'s."""
    if not money.height or money.get_column("n_touches").min():
        return None
    without = money.get_column("n_touches") == 0
    if weighed is not None and weighed.len():
        without = without & ~money.get_column("_j").is_in(weighed.unique().implode())
    bare = without.arg_true()
    if not bare.len():
        return None
    values = {
        "_j": money.get_column("_j").gather(bare),
        "journey_id": money.get_column("journey_id").gather(bare),
        "channel": pl.Series([NO_TOUCH_CHANNEL], dtype=pl.String).new_from_index(0, bare.len()),
        "weight": pl.Series([1.0], dtype=pl.Float64).new_from_index(0, bare.len()),
        "channel_group": pl.Series([NO_TOUCH_GROUP], dtype=pl.String).new_from_index(
            0, bare.len()),
    }
    return pl.DataFrame([
        values[c].alias(c) if c in values
        else pl.Series(c, [None] * bare.len(), _UNTOUCHED_TYPES[c])
        for c in columns
    ])


def _credit_rows(rows: pl.DataFrame, money: pl.DataFrame) -> tuple[pl.DataFrame, JourneyIndex]:
    """``rows`` with ``_j``, their journey's row in ``money`` (rows of other journeys dropped),
    in credit order: by ``_j``, then touch, then channel (nulls last); and the index of their
    runs of ``_j``.

    The journey of each run of rows (:meth:`JourneyIndex.of`) is looked up once, not every
    row; with no join at all when the runs are the money journeys that have touches, in order.
    Nothing is sorted when the rows are in credit order already, which weights made from the
    journeys' touches are: the runs' money rows increase (each journey one run, in the
    journeys' order) and ``touch_index`` increases along each run (or, for channel-level
    weights without a touch, the channel does).
    """
    journey = rows.get_column("journey_id")
    touch = rows.get_column("touch_index")
    runs = JourneyIndex.of(journey, touch)
    keys = runs.keys(journey)
    touched = money.get_column("n_touches") > 0
    if keys.equals(money.get_column("journey_id").filter(touched)):
        found = money.get_column("_j").filter(touched)  # every touched journey, in order
    else:
        found = (
            keys.to_frame()
            .join(money.select("journey_id", "_j"), on="journey_id", how="left",
                  maintain_order="left")
            .get_column("_j")
        )
    rows = rows.hstack([found.gather(pl.Series(runs.run_of_rows())).alias("_j")])
    if found.null_count():  # runs of journeys that carry no money
        keep = rows.get_column("_j").is_not_null()
        rows = rows.filter(keep)
        runs = runs.select(keep.to_numpy())
        found = found.drop_nulls()
    run_row = found.to_numpy()
    if _runs_in_order(rows, runs, touch):  # each run in touch (or channel) order already
        if not (run_row[1:] <= run_row[:-1]).any():  # each journey one run, in money order
            return rows, runs
        if np.bincount(run_row).max() == 1:  # each journey one run, in another order:
            # the runs are put in money order whole (what the sort below would give)
            by_run = np.argsort(run_row, kind="stable")
            sizes = runs.sizes[by_run]
            rows = rows[np.repeat(runs.starts[by_run] - (np.cumsum(sizes) - sizes), sizes)
                        + np.arange(runs.rows, dtype=np.int64)]
            return rows, JourneyIndex.of_sizes(sizes, touch_ordered=runs.touch_ordered)
    order = ["_j", "touch_index", "channel"]
    if not _in_order(rows, order):
        rows = rows.sort(order, nulls_last=True, maintain_order=True)
    return rows, JourneyIndex.of(rows.get_column("_j"))


def _runs_in_order(rows: pl.DataFrame, runs: JourneyIndex, touch: pl.Series) -> bool:
    """Whether each run of ``rows`` is in credit order inside: ``touch_index`` increasing, or
    for channel-level weights (no ``touch_index``) the channel increasing."""
    if runs.touch_ordered:
        return True
    channel = rows.get_column("channel")
    if touch.null_count() != touch.len() or channel.null_count():
        return False
    rising = (channel.slice(1) > channel.slice(0, max(rows.height - 1, 0))).to_numpy()
    same = np.ones(rows.height, dtype=bool)
    same[runs.starts] = False
    return not (same[1:] & ~rising).any()


def _largest_remainder(weight: np.ndarray, totals: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Split each segment's total (minor units) over its rows by ``weight``, exactly.

    Segments are the runs of rows beginning at ``starts``. Each row gets the floor of its
    share; the cents left over go one each to the rows with the largest fractional parts,
    ties to the earlier row.
    """
    sizes = np.diff(np.r_[starts, weight.size])
    raw = weight * np.repeat(totals, sizes).astype(np.float64)
    floor = np.floor(raw)
    credit = floor.astype(np.int64)
    left = totals - np.add.reduceat(credit, starts) if weight.size else totals
    credit += np.repeat(left >= sizes, sizes)  # enough for every row: one each
    partial = (left > 0) & (left < sizes)
    if not partial.any():
        return credit
    # rank the fractions inside the segments that get some of them; the first ``left`` rows of
    # each segment, in rank order, take a cent each
    ranked_sizes = sizes[partial]
    rows = np.flatnonzero(np.repeat(partial, sizes))
    fraction = (raw - floor)[rows]
    width = int(ranked_sizes[0])
    if (ranked_sizes == width).all():  # segments of one size (a channel-level split): a table,
        # a segment a row, ranked row by row (a stable sort along each row)
        table = fraction.reshape(-1, width)
        if (table[:, 1:] > table[:, :-1]).any():
            order = np.argsort(-table, axis=1, kind="stable")
            rows = np.take_along_axis(rows.reshape(-1, width), order, axis=1).ravel()
        takes = (np.arange(width) < left[partial][:, None]).ravel()
        credit[rows[takes]] += 1
        return credit
    segment = np.repeat(np.flatnonzero(partial), ranked_sizes)  # non-decreasing
    rising = (fraction[1:] > fraction[:-1]) & (segment[1:] == segment[:-1])
    if not rising.any():  # ranked already (an even split: equal fractions in each segment)
        ranked = rows
    elif rows.size < POLARS_RANK_FROM:  # stable sorts: ties keep the rows' order
        ranked = rows[np.lexsort((-fraction, segment))]
    else:
        by_fraction = pl.DataFrame({"segment": segment, "fraction": fraction})
        ranked = rows[
            by_fraction.select(pl.arg_sort_by(["segment", "fraction"],
                                              descending=[False, True],
                                              maintain_order=True)).to_series().to_numpy()
        ]
    # sorted by segment first, the segments keep their places: rank = position - offset
    offset = np.repeat(np.cumsum(ranked_sizes) - ranked_sizes, ranked_sizes)
    credit[ranked[np.arange(ranked.size) - offset < left[segment]]] += 1
    return credit


def _channel_shares(rows: pl.DataFrame, runs: JourneyIndex,
                    untouched: int) -> pl.DataFrame | None:
    """``channel, weight``: the channel shares when the weights are channel-level
    (``touch_index`` null) and the same in every journey, else None. ``rows`` are in credit
    order (``runs`` their runs), the last ``untouched`` of them the ``(no touch)`` rows of
    deals without a touch."""
    touched = rows.height - untouched
    if not touched or rows.get_column("touch_index").head(touched).null_count() != touched:
        return None
    sizes = runs.sizes[: runs.starts.size - untouched]
    width = int(sizes[0])
    if (sizes != width).any():
        return None
    channel = rows.get_column("channel").head(touched)
    weight = rows.get_column("weight").head(touched).to_numpy().reshape(-1, width)
    first = channel.head(width)
    if first.null_count() or (weight != weight[0]).any():
        return None
    if not channel.equals(first.gather(np.tile(np.arange(width), channel.len() // width))):
        return None
    return pl.DataFrame({"channel": first, "weight": weight[0]})


def _by_totals(rows: pl.DataFrame, runs: JourneyIndex, money: pl.DataFrame,
               shares: pl.DataFrame, population: pl.DataFrame | None, untouched: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Pipeline and revenue credit of ``rows`` (channel-level rows with the same ``shares`` in
    each journey, in credit order, then ``untouched`` rows of deals without a touch) split
    totals first over the journeys they weigh, or over ``population``."""
    journey = rows.get_column("_j").to_numpy()[runs.starts]
    weighed, bare = journey[: journey.size - untouched], journey[journey.size - untouched:]
    ids = money.get_column("journey_id").gather(weighed)
    if population is None:
        population = pl.DataFrame([ids, *(money.get_column(c).gather(weighed)
                                          for c in ("amount_cents", "revenue_cents"))])
        # the journeys are the population: each one's place in journey_id order (the ids are
        # distinct) is the inverse of their sorting permutation, no join needed
        order = ids.arg_sort().to_numpy()
        at = np.empty(order.size, dtype=np.int64)
        at[order] = np.arange(order.size)
        population = population[order]
    else:
        population = population.select("journey_id", "amount_cents",
                                       "revenue_cents").sort("journey_id")
        found = ids.to_frame().join(population.with_row_index("_p"), on="journey_id",
                                    how="left", maintain_order="left").get_column("_p")
        if found.null_count():
            missing = ids.filter(found.is_null())[0]
            raise ModelError(f"journey {missing!r} is not in the population its channel totals "
                             "were split over")
        at = found.to_numpy()
    share = shares.get_column("weight").to_numpy()
    credit = []
    amount = population.get_column("amount_cents").to_numpy()
    revenue = population.get_column("revenue_cents").to_numpy()
    split_amount = split_by_totals(amount, share)
    # revenue that is the amount (path rows, won deals alone) splits as the amount does
    split_revenue = (split_amount if np.array_equal(amount, revenue)
                     else split_by_totals(revenue, share))
    for column, split in (("amount_cents", split_amount), ("revenue_cents", split_revenue)):
        whole = money.get_column(column).gather(bare).to_numpy()  # (no touch): whole
        credit.append(np.concatenate([split[at].ravel(), whole]).astype(np.int64))
    return credit[0], credit[1]


def split_by_totals(amounts: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Split each amount (integer minor units) over channels by ``shares``, channel totals
    first: a ``(len(amounts), len(shares))`` table of non-negative integers whose every row
    sums to its amount and whose every column sums to that channel's share of the total,
    rounded by largest remainder (ties to the earlier channel): within a cent of
    ``share x total``.

    How: each row is first split on its own by largest remainder (each cell the floor or the
    ceiling of ``share x amount``), which leaves the columns off by a few cents each, the
    small channels short (every row rounds their small fractions down). Cents then move inside
    rows, from a column above its total to one below: a move keeps the row's sum, and is made
    in the rows where the giving cell lies furthest above its exact value and the taking cell
    furthest below (ties to the earlier row). The result depends only on the amounts in their
    order and the shares; callers give amounts in ``journey_id`` order, so it does not depend
    on the order of the input rows.

    >>> split_by_totals(np.array([1, 1, 1, 1]), np.array([0.75, 0.25])).tolist()
    [[0, 1], [1, 0], [1, 0], [1, 0]]
    """
    amounts = np.asarray(amounts, dtype=np.int64)
    share = np.asarray(shares, dtype=np.float64)
    width = share.size
    if not amounts.size or not width:
        return np.zeros((amounts.size, width), dtype=np.int64)
    if (amounts < 0).any() or (share < 0).any() or share.sum() <= 0:
        raise ModelError("channel totals split non-negative amounts by non-negative shares")
    share = share / math.fsum(share)  # correctly rounded: the same sum in any order
    exact = amounts[:, None].astype(np.float64) * share[None, :]
    cents = np.floor(exact).astype(np.int64)
    fraction = exact - cents
    # each row on its own: its leftover cents to its largest fractions (ties: earlier channel);
    # the floors sum to at most the amount (their sum is below amount + 1) and the leftover
    # to at most the width
    left = np.clip(amounts - cents.sum(axis=1), 0, width)
    order = np.argsort(-fraction, axis=1, kind="stable")
    np.put_along_axis(cents, order, np.take_along_axis(cents, order, axis=1)
                      + (np.arange(width) < left[:, None]), axis=1)
    target = _apportion(share, int(amounts.sum()))
    excess = cents.sum(axis=0) - target
    while (excess > 0).any():
        over = int(np.argmax(excess))  # the first of the largest: deterministic
        under = int(np.argmin(excess))
        movable = np.flatnonzero(cents[:, over] > 0)  # a column above its total has some
        gain = (cents[movable, over] - exact[movable, over]) + (exact[movable, under]
                                                                - cents[movable, under])
        moves = min(int(excess[over]), int(-excess[under]), movable.size)
        chosen = movable[np.argsort(-gain, kind="stable")[:moves]]
        cents[chosen, over] -= 1
        cents[chosen, under] += 1
        excess[over] -= moves
        excess[under] += moves
    return cents


def _apportion(share: np.ndarray, total: int) -> np.ndarray:
    """``total`` split by ``share`` (summing to 1) by largest remainder, ties to the earlier
    share: each part the floor or the ceiling of ``share x total``."""
    exact = share * float(total)
    parts = np.floor(exact).astype(np.int64)
    left = int(np.clip(total - parts.sum(), 0, share.size))
    parts[np.argsort(-(exact - parts), kind="stable")[:left]] += 1
    if parts.sum() != total:  # float floors above the exact parts: take from the largest
        parts[int(np.argmax(parts))] += total - int(parts.sum())
    return parts


def _in_order(rows: pl.DataFrame, order: list[str]) -> bool:
    """Whether ``rows`` are sorted by the ``order`` columns (nulls last), without sorting."""
    later = pl.lit(False)
    for name in reversed(order):  # lexicographic: a column decides unless equal, then the next
        column = pl.col(name)
        previous = column.shift(1)
        greater = (column > previous).fill_null(column.is_null() & previous.is_not_null())
        equal = column.eq_missing(previous)
        later = greater | (equal & later)
    return bool(rows.select((later | (pl.int_range(pl.len()) == 0)).all()).item())


def _check_weights(touched: pl.DataFrame, runs: JourneyIndex, untouched: pl.DataFrame | None,
                   money: pl.DataFrame, model: str) -> None:
    """Every journey that carries money has weights >= 0 summing to 1: its nonzero ones in
    ``touched`` (in credit order, ``runs`` its runs of ``_j``), or its one row in ``untouched``
    (a deal without a touch)."""
    row = touched.get_column("_j").to_numpy()
    starts = runs.starts
    weight = touched.get_column("weight").to_numpy()
    journey = row[starts]
    total = np.add.reduceat(weight, starts) if weight.size else weight
    lowest = np.fmin.reduceat(weight, starts) if weight.size else weight
    bare = (np.empty(0, np.uint32) if untouched is None
            else untouched.get_column("_j").to_numpy())
    twice = np.isin(journey, bare)  # weights for a deal without a touch: its row counts too
    total = total + twice
    lowest = np.where(twice, np.fmin(lowest, 1.0), lowest)
    bad = (np.abs(total - 1.0) > WEIGHT_TOLERANCE) | (lowest < 0) | np.isnan(total)
    if bad.any():
        first = (
            pl.DataFrame({"_j": journey[bad], "total": total[bad], "lowest": lowest[bad]})
            .join(money.select("_j", "journey_id"), on="_j")
            .sort("journey_id")
            .row(0, named=True)
        )
        raise ModelError(
            f"model {model!r} returned weights summing to {first['total']!r} "
            f"(lowest {first['lowest']!r}) for journey {first['journey_id']!r}; "
            "weights must be >= 0 and sum to 1 per journey"
        )
    if journey.size + bare.size - int(twice.sum()) < money.height:
        missing = (
            money.join(pl.DataFrame({"_j": np.r_[journey, bare]}, schema={"_j": pl.UInt32}),
                       on="_j", how="anti")
            .sort("journey_id")
            .row(0, named=True)
        )
        raise ModelError(
            f"model {model!r} returned no weight above 0 for journey {missing['journey_id']!r}; "
            "weights must be >= 0 and sum to 1 per journey"
        )


#: above this many (journey, channel) cells, :func:`deals_touched` sorts instead of marking
_MARKED_CELLS = 50_000_000


def deals_touched(journeys: Journeys) -> pl.DataFrame:
    """``channel, deals_touched``: the deals (path rows) on which each channel has at least one
    touch, and :data:`~attribution.schema.NO_TOUCH_CHANNEL` with the deals without any.

    Counted on the journeys' runs of rows (``Journeys.runs``, which the models share): each
    touch's (journey, channel) cell is marked once in a table of journeys by channels, so no
    text is hashed beyond the channels' own coding.
    """
    names, counts, untouched = channel_reach(journeys)
    touched = pl.DataFrame({
        "channel": names,
        "deals_touched": pl.Series(counts, dtype=pl.UInt32),
    }).filter(pl.col("deals_touched") > 0)
    bare = pl.DataFrame({"channel": [NO_TOUCH_CHANNEL], "deals_touched": [untouched]},
                        schema={"channel": pl.String, "deals_touched": pl.UInt32})
    return pl.concat([touched, bare])


def channel_reach(journeys: Journeys, per_deal: np.ndarray | None = None
                  ) -> tuple[pl.Series, np.ndarray, int]:
    """What :func:`deals_touched` counts, each deal counting ``per_deal`` (int64, one value per
    row of ``journeys.money``; default 1): the channels (sorted, then a null for touches
    without a channel), each channel's total over the money journeys with at least one touch
    of it, and the total over the money journeys without a touch."""
    money = journeys.money
    runs = journeys.runs
    touches = runs.touches
    keys = touches.get_column("journey_id").gather(runs.starts)
    ids = money.get_column("journey_id")
    has_touch = money.get_column("n_touches") > 0
    run_money: np.ndarray | None = None  # each run's row of ``money`` (when weighted)
    if keys.equals(ids.filter(has_touch)):  # the money journeys alone
        counted = np.ones(keys.len(), dtype=bool)
        if per_deal is not None:
            run_money = np.flatnonzero(has_touch.to_numpy())
    else:
        counted = keys.is_in(ids.implode()).fill_null(False).to_numpy()
        if per_deal is not None:
            run_money = (keys.to_frame().join(money.select("journey_id").with_row_index("_m"),
                                              on="journey_id", how="left", maintain_order="left")
                         .get_column("_m").fill_null(0).to_numpy().astype(np.int64))
    channel = touches.get_column("channel")
    names = channel.drop_nulls().unique().sort()
    width = names.len() + 1  # the last code: a touch without a channel
    code = (channel.cast(pl.Enum(names.to_list())).to_physical().fill_null(names.len())
            .to_numpy().astype(np.int64))
    run = np.repeat(np.arange(runs.starts.size, dtype=np.int64), runs.sizes)
    rows = runs.spread(counted)
    cells = run[rows] * width + code[rows]
    if runs.starts.size * width <= _MARKED_CELLS:
        marked = np.zeros(runs.starts.size * width, dtype=bool)
        marked[cells] = True
        if per_deal is None:
            counts = marked.reshape(-1, width).sum(axis=0)
        else:
            cells = np.flatnonzero(marked)
    elif per_deal is None:
        counts = np.bincount(np.unique(cells) % width, minlength=width)
    else:
        cells = np.unique(cells)
    if per_deal is not None:
        assert run_money is not None
        counts = np.zeros(width, dtype=np.int64)
        np.add.at(counts, cells % width, np.asarray(per_deal, np.int64)[run_money[cells // width]])
        untouched = int(np.asarray(per_deal, np.int64)[~has_touch.to_numpy()].sum())
    else:
        untouched = int((~has_touch).sum())
    return pl.concat([names, pl.Series([None], dtype=pl.String)]), counts, untouched


def summarise(credit: pl.LazyFrame | pl.DataFrame, journeys: Journeys, *,
              touched: pl.DataFrame | None = None) -> pl.DataFrame:
    """Channel summary (:data:`~attribution.schema.SUMMARY_SCHEMA`) of a credit table.

    ``deals_touched`` counts the deals (path rows) on which the channel has at least one touch,
    whatever the model credited; shares are of the model's total revenue and pipeline. A caller
    summarising models one at a time passes ``touched`` (:func:`deals_touched` of the journeys)
    to count it once: the summaries of each model's credit, concatenated in model order, are
    the summary of the whole credit table.
    """
    credit = credit.lazy()
    touched = deals_touched(journeys) if touched is None else touched
    models = credit.select("model").unique(maintain_order=True)
    summary = (
        credit.group_by("model", "channel", "channel_group")
        .agg(
            pl.col("pipeline_credit_cents").sum(),
            pl.col("revenue_credit_cents").sum(),
            exact_sum(pl.col("conversion_credit")),
        )
        .join(touched.lazy(), on="channel", how="left")
        .with_columns(pl.col("deals_touched").fill_null(0))
        .filter(
            (pl.col("pipeline_credit_cents") != 0)
            | (pl.col("revenue_credit_cents") != 0)
            | (pl.col("channel") != NO_TOUCH_CHANNEL)
        )
        .join(models.with_row_index("_model_order"), on="model", how="left")
        .sort(["_model_order", "revenue_credit_cents", "pipeline_credit_cents", "channel"],
              descending=[False, True, True, False])
        .drop("_model_order")
    )
    return conform(_with_shares(summary.collect()).lazy(), SUMMARY_SCHEMA).collect()


def summarise_shares(journeys: Journeys, shares: pl.DataFrame, model: str, *,
                     touched: pl.DataFrame | None = None) -> pl.DataFrame | None:
    """The channel summary of a model whose weights are the same channel ``shares``
    (``channel, weight``) in every journey with a touch (:meth:`Fit.channel_shares`), from
    totals, without its credit rows: what :func:`summarise` gives for :func:`allocate`'s credit
    of those weights, byte for byte. None when no journey that carries money has a touch (then
    :func:`allocate` splits nothing by totals).

    It holds because :func:`split_by_totals` makes each channel's column sum its share of the
    total, rounded by largest remainder (:func:`_apportion`), whatever the deals; the
    conversion credit of a channel is the exact sum of its share times each journey's
    conversions, summed once per distinct conversions count (integer parts: any order gives the
    same). Deals without a touch are credited whole to ``(no touch)``.
    ``tests/test_credit.py`` compares it with the summary of the allocated credit.
    """
    from attribution.journeys import channel_group_of

    money = journeys.money
    has_touch = money.get_column("n_touches") > 0
    if not has_touch.any() or not shares.height:
        return None
    share = shares.get_column("weight").to_numpy()
    share = share / math.fsum(share)  # as split_by_totals normalises it
    groups = channel_group_of(journeys.touches).collect()
    channels = shares.select("channel").join(groups, on="channel", how="left",
                                             maintain_order="left")
    touched_money = money.filter(has_touch)
    conversions = (touched_money.drop_nulls("conversions").group_by("conversions").len("_n")
                   .sort("conversions"))  # each distinct count once, with how many journeys
    counted = pl.DataFrame({
        "channel": np.repeat(channels.get_column("channel").to_numpy(), conversions.height),
        "_value": (shares.get_column("weight").to_numpy()[:, None]
                   * conversions.get_column("conversions").to_numpy()[None, :]).ravel(),
        "_n": np.tile(conversions.get_column("_n").to_numpy(), shares.height),
    }, schema={"channel": pl.String, "_value": pl.Float64, "_n": pl.Int64})
    conversion_credit = (counted.group_by("channel", maintain_order=True)
                         .agg(exact_sum(pl.col("_value"), count=pl.col("_n"))
                              .alias("conversion_credit")))
    rows = channels.with_columns(
        pl.lit(model).alias("model"),
        pl.Series("pipeline_credit_cents",
                  _apportion(share, int(touched_money.get_column("amount_cents").sum()))),
        pl.Series("revenue_credit_cents",
                  _apportion(share, int(touched_money.get_column("revenue_cents").sum()))),
    ).join(conversion_credit, on="channel", how="left", maintain_order="left")
    bare = money.filter(~has_touch)
    if bare.height:  # deals without a touch: whole, to (no touch)
        rows = pl.concat([rows, pl.DataFrame({
            "channel": [NO_TOUCH_CHANNEL], "channel_group": [NO_TOUCH_GROUP], "model": [model],
            "pipeline_credit_cents": [int(bare.get_column("amount_cents").sum())],
            "revenue_credit_cents": [int(bare.get_column("revenue_cents").sum())],
            "conversion_credit": bare.select(exact_sum(pl.col("conversions").cast(pl.Float64)))
            .to_series(),
        }, schema=rows.schema)])
    credit = conform(rows.lazy(), CREDIT_SCHEMA)
    return summarise(credit, journeys, touched=touched)


def exact_sum(value: pl.Expr, *, count: pl.Expr | None = None) -> pl.Expr:
    """The sum of a float expression (inside a ``group_by`` or not), correctly rounded.

    A plain ``sum()`` adds partial sums in an order that depends on how polars spread the rows
    over threads, so two runs on the same input could differ in the last digit. Here every
    value is cut into two integers (its multiples of 2^-32 and the 2^-84 multiples of the
    rest); integer sums are exact in any order, and the total is rounded to a float once. The
    result depends only on the values, not on their order: the same bytes every run. (Bits
    below 2^-84 of each value are dropped; nulls count as nothing.) With ``count``, each value
    counts that many times, as if repeated.
    """
    scaled = value * 2.0**32
    whole = scaled.floor().cast(pl.Int128)
    rest = ((scaled - scaled.floor()) * 2.0**52).floor().cast(pl.Int128)
    if count is not None:  # each value ``count`` times: its integer parts times the count
        whole, rest = whole * count, rest * count
    exact = whole.sum() * 2**52 + rest.sum()
    return exact.cast(pl.Float64) * 2.0**-84


def _with_shares(summary: pl.DataFrame) -> pl.DataFrame:
    """``pipeline_share`` and ``revenue_share``: each row's credit over its model's total (0
    when that is 0), divided in numpy so every share is the correctly rounded quotient.

    (In polars a quotient by a value that is the same on every row, such as one model's total,
    can be taken as a product with its reciprocal, off in the last digit: a model's shares
    then depended on which other models ran with it.)
    """
    shares = []
    for column in ("pipeline_credit_cents", "revenue_credit_cents"):
        credit = summary.get_column(column).cast(pl.Float64).to_numpy()
        totals = summary.get_column("model").replace_strict(
            dict(summary.group_by("model").agg(pl.col(column).sum()).iter_rows()),
            return_dtype=pl.Int64,
        ).cast(pl.Float64).to_numpy()
        share = np.zeros(summary.height, dtype=np.float64)
        np.divide(credit, totals, out=share, where=totals != 0)
        shares.append(pl.Series(column.replace("_credit_cents", "_share"), share))
    return summary.with_columns(shares)
