"""How sure is each model's channel credit: bootstrap intervals over the buying groups.

The unit resampled is the account (the buying group), not the touch: a replicate draws as
many accounts as the run has, with replacement, and every journey of an account drawn ``k``
times counts ``k`` times (a deal and the account's deal-less journey move together). A path
table has no accounts; its rows are resampled instead, and :attr:`Intervals.note` says so.

A replicate never copies money. Two facts make it cheap:

* A per-journey model's (the rules') weights of a journey depend on that journey alone, so
  they are the same in every replicate: a replicate's channel credit is the sum of each
  journey's credit (allocated once, in exact cents) times the journey's count
  (:func:`replicate_totals`, one sparse product for every replicate at once).
* A fitted model (Markov, Shapley, incremental) is fitted again on every replicate, as if on
  the resampled journeys (each drawn journey listed as often as it was drawn,
  :func:`resampled_journeys`), without making those copies: a model with a weighted fit
  (:class:`~attribution.models.base.WeightedFits`: incremental, Shapley) under the journeys'
  counts as weights, a few ``bincount`` calls and its small fit a replicate; Markov from the
  resample's path counts (each distinct path's outcomes times its journeys' counts). The
  refit's weights of a journey depend only on the fit and that journey's own touches, so the
  copies of a journey get the same credit as the original: the replicate's channel credit is
  the original journeys' credit under the refit times their counts, with no copy allocated.
  A fitted model with neither is refitted on real copies.

``tests/test_intervals.py`` checks both against the naive resample-and-rerun (copies built,
every model run on them through :func:`attribution.pipeline.run_models`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from attribution.credit import allocate
from attribution.errors import ConfigError
from attribution.journeys import Journeys
from attribution.models.base import AttributionModel, WeightedFits
from attribution.models.self_reported import SELF_REPORTED_MODELS
from attribution.pipeline import RunResult, Scopes
from attribution.schema import NO_TOUCH_CHANNEL

if TYPE_CHECKING:
    from scipy import sparse

#: columns the intervals add to a summary (and, with last-touch's, to a comparison)
INTERVAL_COLUMNS = ("revenue_credit_low_cents", "revenue_credit_high_cents", "revenue_share_low",
                    "revenue_share_high")
#: columns the sufficiency check adds
SUFFICIENCY_COLUMNS = ("won_deals_touched", "sufficient")

#: a journey's copy number is appended to its id after this (ids cannot hold control text)
_COPY_SEPARATOR = "\x1e"

TOO_FEW = "too few deals to tell"

#: threads refitting replicates at once (fewer replicate fits than _PARALLEL_FROM: none)
_WORKERS = max(1, min(4, os.cpu_count() or 1))
_PARALLEL_FROM = 60


@dataclass(frozen=True)
class Intervals:
    """Bootstrap intervals of every model's channel revenue credit.

    ``table`` has ``model, channel`` and :data:`INTERVAL_COLUMNS` (credit in minor units);
    ``replicates`` the number of resamples, ``level`` the coverage, ``unit`` what was
    resampled (``account`` or ``path row``) and ``note`` a sentence saying so."""

    table: pl.DataFrame
    replicates: int
    level: float
    seed: int
    unit: str
    note: str


def resampling_units(journeys: Journeys) -> tuple[np.ndarray, int, str]:
    """Per journey (in the journeys frame's order) the code of its unit, the number of
    units, and the unit's name: the account, or the journey itself where there is none (a path
    table's rows)."""
    frame = journeys.journeys.select("journey_id", "account_id").collect()
    account = frame.get_column("account_id")
    if account.null_count() == frame.height:
        return np.arange(frame.height, dtype=np.int64), frame.height, "path row"
    # a journey without an account is its own unit
    unit = account.fill_null(pl.lit("\x1f") + frame.get_column("journey_id"))
    codes = unit.rank("dense").cast(pl.Int64).to_numpy() - 1
    return codes, int(codes.max()) + 1 if codes.size else 0, "account"


def draw_counts(n_units: int, replicates: int, seed: int) -> np.ndarray:
    """``(replicates, n_units)`` int32 counts: how often each unit is drawn in each replicate
    (``n_units`` draws with replacement). Deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    counts = np.empty((replicates, n_units), dtype=np.int32)
    for r in range(replicates):
        counts[r] = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
    return counts


def journey_credit(credit: pl.DataFrame, journey_ids: pl.Series,
                   channels: list[str]) -> sparse.csr_matrix:
    """``(journeys, channels)`` revenue credit of a credit table, journeys in the order of
    ``journey_ids`` (a journey absent from the credit has none)."""
    rows = (
        credit.lazy()
        .group_by("journey_id", "channel")
        .agg(pl.col("revenue_credit_cents").sum())
        .join(pl.LazyFrame({"journey_id": journey_ids}).with_row_index("_row"),
              on="journey_id", how="inner")
        .join(pl.LazyFrame({"channel": channels}, schema={"channel": pl.String})
              .with_row_index("_col"), on="channel",
              how="inner")
        .collect()
    )
    from scipy import sparse  # here: a run without --bootstrap never needs it

    return sparse.csr_matrix(
        (rows.get_column("revenue_credit_cents").cast(pl.Float64).to_numpy(),
         (rows.get_column("_row").to_numpy(), rows.get_column("_col").to_numpy())),
        shape=(journey_ids.len(), len(channels)),
    )


def replicate_totals(counts: np.ndarray, credit: sparse.csr_matrix) -> np.ndarray:
    """``(replicates, channels)``: each replicate's channel credit, the journeys' credit
    weighted by how often each was drawn (``counts``: replicates x journeys)."""
    return np.asarray((credit.T @ counts.T.astype(np.float64)).T)


def resampled_journeys(journeys: Journeys, counts: np.ndarray) -> Journeys:
    """The journeys with journey ``j`` (in the journeys frame's order) listed ``counts[j]``
    times: the naive resample. Copies after the first get the id ``<id>\\x1e<k>``."""
    frame = journeys.journeys.collect()
    rows = np.repeat(np.arange(frame.height), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    copy = np.arange(rows.size) - first
    picked = frame[rows].with_columns(pl.Series("_copy", copy, dtype=pl.Int64))
    new_id = (pl.when(pl.col("_copy") == 0).then(pl.col("journey_id"))
              .otherwise(pl.col("journey_id") + _COPY_SEPARATOR + pl.col("_copy").cast(pl.String)))
    pairs = picked.select("journey_id", new_id.alias("_new"))
    touches = (
        journeys.touches.collect()
        .join(pairs, on="journey_id", how="inner", maintain_order="right_left")
        .with_columns(pl.col("_new").alias("journey_id"))
        .drop("_new")
    )
    return Journeys.from_frames(
        touches, picked.with_columns(new_id.alias("journey_id")).drop("_copy"),
        has_timestamps=journeys.has_timestamps, has_milestones=journeys.has_milestones,
        as_of=journeys.as_of,
    )


def weighted_credit(journeys: Journeys, weights: pl.LazyFrame) -> pl.DataFrame:
    """``journey_id, channel, revenue_credit`` (float minor units): each money journey's
    revenue times its channels' summed weights, and the whole of it to ``(no touch)`` for a
    journey without touches. The exact split of :func:`~attribution.credit.allocate` less its
    rounding to the cent (under a cent per deal and channel), which a resample's channel totals
    do not need."""
    money = journeys.journeys.filter(pl.col("status") != "none").select(
        "journey_id", "n_touches", pl.col("revenue_cents").fill_null(0).cast(pl.Float64))
    touched = (
        weights.group_by("journey_id", "channel").agg(pl.col("weight").sum())
        .join(money.select("journey_id", "revenue_cents"), on="journey_id", how="inner")
        .select("journey_id", "channel",
                (pl.col("weight") * pl.col("revenue_cents")).alias("revenue_credit_cents"))
    )
    untouched = money.filter(pl.col("n_touches") == 0).select(
        "journey_id", pl.lit(NO_TOUCH_CHANNEL).alias("channel"),
        pl.col("revenue_cents").alias("revenue_credit_cents"))
    return pl.concat([touched, untouched]).collect()


def _bounds(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1.0 - level) / 2.0
    return (np.quantile(values, tail, axis=0), np.quantile(values, 1.0 - tail, axis=0))


def bootstrap(journeys: Journeys, models: Sequence[AttributionModel], *, replicates: int,
              level: float = 0.9, seed: int = 0,
              progress: Callable[[str, int, int], None] | None = None) -> Intervals:
    """Intervals of every model's channel revenue credit and share over ``replicates``
    resamples of the accounts (:mod:`attribution.intervals`)."""
    if replicates < 1:
        raise ConfigError(f"--bootstrap: expected a number of resamples >= 1, not {replicates}")
    if not 0 < level < 1:
        raise ConfigError(f"--interval: expected a coverage between 0 and 1, not {level}")
    report = progress or (lambda _s, _d, _t: None)
    units, n_units, unit = resampling_units(journeys)
    unit_counts = draw_counts(n_units, replicates, seed)
    counts = unit_counts[:, units]  # replicates x journeys (the journeys frame's order)
    tables = []
    for done, (model, channels, totals) in enumerate(replicate_credit(journeys, models, counts)):
        report(f"bootstrap {model.name}", done, len(models))
        tables.append(_table(model.name, channels, totals, level))
    report("bootstrap", len(models), len(models))
    note = (f"{round(level * 100)}% intervals from {replicates:,} resamples of the "
            + ("accounts (the buying group is the unit)" if unit == "account" else
               "path-table rows (a path table has no accounts, so its rows are resampled)"))
    return Intervals(pl.concat(tables) if tables else _table("", [], np.zeros((1, 0)), level),
                     replicates, level, seed, unit, note)


def replicate_credit(journeys: Journeys, models: Sequence[AttributionModel],
                     counts: np.ndarray,
                     ) -> Iterator[tuple[AttributionModel, list[str], np.ndarray]]:
    """Per model, its channels and ``(replicates, channels)`` revenue credit of each
    resample (``counts``: replicates x journeys, the journeys frame's order).

    The fitted models' refits are independent of each other: with enough of them they run in
    worker threads, a block of replicates each (every block builds its own frames; the shared
    ones are only read, and polars and numpy let go of the GIL while they work), while the rule
    models are summed here; the blocks come back in replicate order, so the result does not
    depend on the threads. (Not processes: a spawned worker re-runs the caller's main script.)
    """
    ids = journeys.journeys.select("journey_id").collect().get_column("journey_id")
    scopes = Scopes(journeys, models)
    fitted = [m for m in models if m.fits]
    refits = len(fitted) * counts.shape[0]
    pool: Executor | None = None
    pending: dict[int, list[Any]] = {}
    if fitted and _WORKERS > 1 and refits >= _PARALLEL_FROM:
        pool = ThreadPoolExecutor(_WORKERS)
        whole = _Frames.of(journeys)
        blocks = np.array_split(np.arange(counts.shape[0]), _WORKERS)
        for model in fitted:
            model.check(journeys)
            if model.reweights():
                # prepared once, read by every block
                prepared = model.weighted(journeys)
                pending[id(model)] = [pool.submit(_reweight_replicates, prepared, counts[block])
                                      for block in blocks if block.size]
                continue
            frames = _Frames.of(scopes.of(model))
            pending[id(model)] = [pool.submit(_refit_replicates, whole, frames, model,
                                              counts[block]) for block in blocks if block.size]
    try:
        for model in models:
            model.check(journeys)
            scope = scopes.of(model)
            if id(model) in pending:
                replicates = [r for future in pending[id(model)] for r in future.result()]
                totals, channels = _stack(replicates)
            elif model.reweights():
                totals, channels = _stack(_reweight_replicates(model.weighted(journeys), counts))
            elif model.fits:
                totals, channels = _stack(_refit_replicates(
                    _Frames.of(journeys), _Frames.of(scope), model, counts))
            else:
                credit = allocate(scope, model.weights(scope), model.name).collect()
                channels = sorted(credit.get_column("channel").unique().to_list())
                totals = replicate_totals(counts, journey_credit(credit, ids, channels))
            scopes.done(model)
            yield model, channels, totals
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


@dataclass(frozen=True)
class _JourneyPaths:
    """Each journey's distinct channel path and outcomes, for summing a resample's path
    counts (:data:`~attribution.models.counts.PATH_COUNTS_SCHEMA`) without copying a
    journey."""

    #: per journey (the journeys frame's order), its path's row in ``paths``; -1: no touch
    path: np.ndarray
    #: ``path_key, channels``, one row per distinct path
    paths: pl.DataFrame
    #: per journey: conversions, nulls (closed), revenue, opens, as path_counts counts them
    outcomes: dict[str, np.ndarray]

    @classmethod
    def of(cls, journeys: Journeys) -> _JourneyPaths:
        from attribution.graph import journey_outcomes
        from attribution.models.counts import PATH_KEY_SEPARATOR

        frame = journeys.journeys.select("journey_id").collect()
        keyed = (
            journeys.touches.select("journey_id", "touch_index",
                                    pl.col("channel").fill_null(""))
            .collect().sort("journey_id", "touch_index")
            .group_by("journey_id", maintain_order=True)
            .agg(pl.col("channel").alias("channels"))
            .with_columns(pl.col("channels").list.join(PATH_KEY_SEPARATOR).alias("path_key"))
        )
        paths = (keyed.select("path_key", "channels").unique("path_key", keep="first")
                 .sort("path_key").with_row_index("_path"))
        per = frame.join(keyed.select("journey_id", "path_key")
                         .join(paths.select("path_key", "_path"), on="path_key"),
                         on="journey_id", how="left", maintain_order="left")
        every = journey_outcomes(journeys, include_open=True).collect()
        closed = journey_outcomes(journeys, include_open=False).collect()
        outcomes = (
            frame.join(every.select("journey_id", "conversions", "revenue_cents",
                                    pl.col("nulls").alias("_all")),
                       on="journey_id", how="left", maintain_order="left")
            .join(closed.select("journey_id", "nulls"), on="journey_id", how="left",
                  maintain_order="left")
            .select(pl.col("conversions", "revenue_cents", "nulls", "_all").fill_null(0))
        )
        return cls(
            path=per.get_column("_path").fill_null(-1).cast(pl.Int64).to_numpy(),
            paths=paths.drop("_path"),
            outcomes={
                "conversions": outcomes.get_column("conversions").to_numpy(),
                "nulls": outcomes.get_column("nulls").to_numpy(),
                "revenue_cents": outcomes.get_column("revenue_cents").to_numpy(),
                "opens": (outcomes.get_column("_all") - outcomes.get_column("nulls")).to_numpy(),
            },
        )

    def counts(self, drawn: np.ndarray) -> pl.DataFrame:
        """The path counts of a resample (``drawn``: how often each journey was drawn), the
        paths of no drawn journey left out, as :func:`~attribution.models.counts.path_counts`
        of the copied journeys gives them."""
        touched = self.path >= 0
        where = self.path[touched]
        size = self.paths.height
        seen = np.bincount(where, weights=drawn[touched], minlength=size) > 0
        sums = {name: np.rint(np.bincount(where, weights=(drawn * values)[touched],
                                          minlength=size)).astype(np.int64)
                for name, values in self.outcomes.items()}
        return self.paths.with_columns(
            [pl.Series(name, values) for name, values in sums.items()]
        ).filter(pl.Series(seen)).select("path_key", "channels", "conversions", "nulls",
                                         "revenue_cents", "opens")


def _refit_from_paths(journeys: Journeys, model: AttributionModel,
                      counts: np.ndarray) -> list[dict[str, float]]:
    """A path-count model's replicates: fitted from the resample's summed path counts (what
    its ``fit_input`` says the fit reads), each path's revenue credited by the refit's weights
    of that path (a journey's weights under such a fit depend on its path alone)."""
    from attribution.models.counts import path_journeys

    paths = _JourneyPaths.of(journeys)
    untouched = paths.path < 0
    found = []
    for row in counts:
        table = paths.counts(row)
        fitted = model.fit_counts(table)
        paying = table.filter(pl.col("revenue_cents") > 0)
        # deals without a touch: their revenue is (no touch)'s, under every model
        alone = float((row[untouched] * paths.outcomes["revenue_cents"][untouched]).sum())
        base = {NO_TOUCH_CHANNEL: alone} if alone else {}
        if paying.is_empty():
            found.append(base)
            continue
        scored = path_journeys(paying, keep_unobserved=True)
        weights = fitted.weights(scored)
        revenue = scored.journeys.select("journey_id", pl.col("amount_cents").cast(pl.Float64)
                                         .alias("_revenue")).collect()
        credit = (weights.collect().join(revenue, on="journey_id")
                  .group_by("channel").agg((pl.col("weight") * pl.col("_revenue")).sum()))
        found.append({**dict(credit.iter_rows()), **base})
    return found


def _stack(replicates: list[dict[str, float]]) -> tuple[np.ndarray, list[str]]:
    """Replicates' channel credit as a ``(replicates, channels)`` array, channels sorted."""
    channels = sorted({c for r in replicates for c in r})
    totals = np.array([[r.get(c, 0.0) for c in channels] for r in replicates])
    return totals.reshape(len(replicates), len(channels)), channels


@dataclass(frozen=True)
class _Frames:
    """Journeys as collected frames: what a worker process is sent."""

    touches: pl.DataFrame
    journeys: pl.DataFrame
    has_timestamps: bool
    has_milestones: bool
    as_of: Any
    stated: pl.DataFrame | None = None

    @classmethod
    def of(cls, journeys: Journeys) -> _Frames:
        return cls(journeys.touches.collect(), journeys.journeys.collect(),
                   journeys.has_timestamps, journeys.has_milestones, journeys.as_of,
                   journeys.stated)

    def build(self, keep: pl.Series | None = None) -> Journeys:
        touches, frame = self.touches, self.journeys
        if keep is not None:
            touches = touches.filter(pl.col("journey_id").is_in(keep))
            frame = frame.filter(pl.col("journey_id").is_in(keep))
        return Journeys(touches=touches.lazy(), journeys=frame.lazy(),
                        has_timestamps=self.has_timestamps, has_milestones=self.has_milestones,
                        as_of=self.as_of, stated=self.stated)


def _reweight_replicates(prepared: WeightedFits, counts: np.ndarray) -> list[dict[str, float]]:
    """Per replicate (a row of ``counts``), the channel credit of a model refitted under the
    replicate's journey counts (:class:`~attribution.models.base.WeightedFits`): no journey is
    copied, and the revenue credited is the drawn money journeys' (the scope of any model)."""
    return [prepared.revenue_credit(row) for row in counts]


def _refit_replicates(whole: _Frames, scope: _Frames, model: AttributionModel,
                      counts: np.ndarray) -> list[dict[str, float]]:
    """Per replicate (a row of ``counts``), the channel credit of ``model`` refitted on it."""
    if model.fit_input is not None and model.fit_input.merges:
        return _refit_from_paths(whole.build(), model, counts)
    journeys = whole.build()
    ids = whole.journeys.get_column("journey_id")
    position = (pl.DataFrame({"journey_id": ids}).with_row_index("_row")
                .join(scope.journeys.select("journey_id"), on="journey_id", how="semi",
                      maintain_order="left"))
    scope_rows = position.get_column("_row").to_numpy()
    scope_ids = position.get_column("journey_id")

    def one(row: np.ndarray) -> dict[str, float]:
        fitted = model.fit(resampled_journeys(journeys, row))
        # only the journeys drawn: a refit may know nothing of an undrawn journey's channels
        subset = scope.build(scope_ids.filter(pl.Series(row[scope_rows] > 0)).implode())
        credit = weighted_credit(subset, fitted.weights(subset))
        names = sorted(credit.get_column("channel").unique().to_list())
        total = replicate_totals(row[None, :], journey_credit(credit, ids, names))[0]
        return dict(zip(names, total.tolist(), strict=True))

    return [one(row) for row in counts]


def _table(model: str, channels: list[str], totals: np.ndarray, level: float) -> pl.DataFrame:
    whole = totals.sum(axis=1, keepdims=True)
    shares = np.divide(totals, whole, out=np.zeros_like(totals), where=whole != 0)
    if totals.shape[1]:
        low, high = _bounds(totals, level)
        share_low, share_high = _bounds(shares, level)
    else:
        low = high = share_low = share_high = np.zeros(0)
    return pl.DataFrame({
        "model": [model] * len(channels),
        "channel": channels,
        "revenue_credit_low_cents": np.round(low).astype(np.int64),
        "revenue_credit_high_cents": np.round(high).astype(np.int64),
        "revenue_share_low": share_low,
        "revenue_share_high": share_high,
    }, schema={"model": pl.String, "channel": pl.String, "revenue_credit_low_cents": pl.Int64,
               "revenue_credit_high_cents": pl.Int64, "revenue_share_low": pl.Float64,
               "revenue_share_high": pl.Float64})


def won_deals_touched(journeys: Journeys, *, stated: bool = False) -> pl.DataFrame:
    """``channel, won_deals_touched``: the won deals (a path row's conversions) on which each
    channel has at least one touch; ``(no touch)`` the won deals without any. Counted as
    :func:`~attribution.credit.deals_touched` counts deals, each deal weighing its won deals
    (``tests/test_models_contract.py`` compares it with a plain join and group-by).
    ``stated``: a deal whose buyers name the channel (:attr:`Journeys.stated`) counts too (the
    evidence of the self-reported models), by the plain join."""
    if stated and journeys.stated is not None:
        return _won_deals_touched_or_stated(journeys, journeys.stated)
    from attribution.credit import channel_reach

    money = journeys.money
    won = (money.select(pl.when(pl.col("status") == "won").then(1)
                        .when(pl.col("status") == "path")
                        .then(pl.col("conversions").fill_null(0)).otherwise(0)
                        .cast(pl.Int64))
           .to_series().to_numpy())
    won = np.maximum(won, 0)  # only journeys with won deals count
    names, counts, untouched = channel_reach(journeys, won)
    touched = pl.DataFrame({"channel": names, "won_deals_touched": counts},
                           schema={"channel": pl.String, "won_deals_touched": pl.Int64})
    untouched_row = pl.DataFrame({"channel": [NO_TOUCH_CHANNEL],
                                  "won_deals_touched": [untouched]},
                                 schema={"channel": pl.String, "won_deals_touched": pl.Int64})
    return pl.concat([touched.filter(pl.col("won_deals_touched") > 0),
                      untouched_row]).sort("channel")


def _won_deals_touched_or_stated(journeys: Journeys, stated: pl.DataFrame) -> pl.DataFrame:
    """:func:`won_deals_touched` with the deals' stated channels counted as touches."""
    pairs = pl.concat([journeys.touches.select("journey_id", "channel"),
                       stated.lazy().select("journey_id", "channel")])
    won = (journeys.journeys.filter(pl.col("status").is_in(["won", "path"]))
           .select("journey_id", "n_touches",
                   pl.when(pl.col("status") == "won").then(1)
                   .otherwise(pl.col("conversions").fill_null(0)).cast(pl.Int64).alias("_won"))
           .filter(pl.col("_won") > 0).collect())
    touched = (
        pairs.unique().collect()
        .join(won, on="journey_id", how="inner")
        .group_by("channel").agg(pl.col("_won").sum().alias("won_deals_touched"))
    )
    untouched = pl.DataFrame({
        "channel": [NO_TOUCH_CHANNEL],
        "won_deals_touched": [int(won.filter(pl.col("n_touches") == 0)
                                  .get_column("_won").sum())],
    }, schema={"channel": pl.String, "won_deals_touched": pl.Int64})
    return pl.concat([touched.with_columns(pl.col("won_deals_touched").cast(pl.Int64)),
                      untouched]).sort("channel")


def sufficiency(summary: pl.DataFrame, journeys: Journeys, min_deals: int, *,
                won: pl.DataFrame | None = None) -> pl.DataFrame:
    """``summary`` with ``won_deals_touched`` and ``sufficient``: False (too few deals to
    tell) when fewer than ``min_deals`` won deals touched the channel (for the self-reported
    models: touched it or name it), or when the channel's interval (if the summary has one)
    is wider than its estimate. ``won``: the journeys' :func:`won_deals_touched` when the
    caller has it."""
    won = won_deals_touched(journeys) if won is None else won
    marked = summary.join(won, on="channel", how="left",
                          maintain_order="left").with_columns(
        pl.col("won_deals_touched").fill_null(0))
    if journeys.stated is not None:  # the self-reported models' evidence: touched or stated
        said = won_deals_touched(journeys, stated=True).rename({"won_deals_touched": "_said"})
        marked = marked.join(said, on="channel", how="left", maintain_order="left").with_columns(
            pl.when(pl.col("model").is_in(list(SELF_REPORTED_MODELS)))
            .then(pl.col("_said").fill_null(0)).otherwise(pl.col("won_deals_touched"))
            .alias("won_deals_touched")).drop("_said")
    enough = pl.col("won_deals_touched") >= min_deals
    if "revenue_credit_low_cents" in marked.columns:
        enough = enough & (
            (pl.col("revenue_credit_high_cents") - pl.col("revenue_credit_low_cents"))
            <= pl.col("revenue_credit_cents"))
    return marked.with_columns(enough.alias("sufficient"))


def marked(result: RunResult, *, won: pl.DataFrame | None = None) -> pl.DataFrame:
    """The run's summary with :data:`SUFFICIENCY_COLUMNS` (:func:`sufficiency` under the run's
    ``min_deals``): its own when :func:`with_intervals` added them."""
    if "sufficient" in result.summary.columns:
        return result.summary
    return sufficiency(result.summary, result.journeys, result.config.min_deals, won=won)


def with_intervals(result: RunResult, *, replicates: int | None = None,
                   level: float | None = None, seed: int | None = None,
                   min_deals: int | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> RunResult:
    """The run with :data:`INTERVAL_COLUMNS` and :data:`SUFFICIENCY_COLUMNS` in its summary
    (and so in its comparison), from ``replicates`` resamples (default: the config's
    ``bootstrap``); the run itself when that is 0. The note on what was resampled goes to the
    run's notes."""
    config = result.config
    replicates = config.bootstrap if replicates is None else replicates
    if not replicates:
        return result
    if not result.models or result.journeys is None:
        raise ConfigError("--bootstrap needs a run with models and its journeys")
    found = bootstrap(result.journeys, result.models, replicates=replicates,
                      level=config.interval if level is None else level,
                      seed=config.seed if seed is None else seed, progress=progress)
    # a channel no resample credited has the interval [0, 0]
    summary = result.summary.join(found.table, on=["model", "channel"], how="left",
                                  maintain_order="left").with_columns(
        pl.col(*INTERVAL_COLUMNS).fill_null(0))
    summary = sufficiency(summary, result.journeys,
                          config.min_deals if min_deals is None else min_deals)
    return dataclasses.replace(result, summary=summary, notes=[*result.notes, found.note])


#: a run with fewer won deals than this says so at the top of every output
FEW_WON_DEALS = 100


def few_won_deals(result: RunResult) -> str | None:
    """The warning of a run with fewer than :data:`FEW_WON_DEALS` won deals, or None."""
    won = int(result.totals().get("won_deals", 0))
    if won >= FEW_WON_DEALS:
        return None
    return (f"only {won:,} won deals (fewer than {FEW_WON_DEALS}): too few to tell reliably "
            "which channels drive revenue; read every share as a wide range")


def insufficient(result: RunResult, model: str, *,
                 won: pl.DataFrame | None = None) -> list[str]:
    """The channels of ``model`` with too few deals to tell (:func:`sufficiency`; ``won``:
    the run's :func:`won_deals_touched` when the caller has it)."""
    marked = result.summary.filter(pl.col("model") == model)
    if "sufficient" not in marked.columns:
        marked = sufficiency(marked, result.journeys, result.config.min_deals, won=won)
    return marked.filter(~pl.col("sufficient")).get_column("channel").to_list()


def evidence_notes(result: RunResult, models: Sequence[str] | None = None) -> list[str]:
    """What a reader must know before trusting the numbers: a run with few won deals, and per
    model the channels with too few deals to tell."""
    lines = []
    warning = few_won_deals(result)
    if warning:
        lines.append(warning)
    if result.summary.is_empty():
        return lines
    names = list(models) if models is not None else [m.name for m in result.models]
    won = None  # counted once for every model (when the summary has no sufficiency yet)
    if names and "sufficient" not in result.summary.columns:
        won = won_deals_touched(result.journeys)
    for name in names:
        channels = insufficient(result, name, won=won)
        if channels:
            lines.append(f"{name}: {TOO_FEW} (fewer than {result.config.min_deals} won deals "
                         f"touched, or an interval wider than its estimate): "
                         + ", ".join(channels))
    return lines


__all__ = [
    "FEW_WON_DEALS",
    "evidence_notes",
    "few_won_deals",
    "insufficient",
    "marked",
    "INTERVAL_COLUMNS",
    "SUFFICIENCY_COLUMNS",
    "TOO_FEW",
    "Intervals",
    "bootstrap",
    "draw_counts",
    "journey_credit",
    "replicate_credit",
    "replicate_totals",
    "resampled_journeys",
    "resampling_units",
    "sufficiency",
    "with_intervals",
    "won_deals_touched",
]
