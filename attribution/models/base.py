"""The interface every attribution model implements.

A model is a frozen dataclass whose fields are its keyword hyperparameters (stored unchanged,
as in scikit-learn). It never reads files and never prints. Given
:class:`~attribution.journeys.Journeys` it returns *weights*: a lazy frame with
:data:`~attribution.schema.WEIGHT_SCHEMA` (``journey_id, touch_index, channel, weight``) whose
weights are >= 0 and sum to 1 inside every journey that has at least one touch. It may also
carry the touch's ``touchpoint_id``, ``timestamp`` and ``channel_group``
(:data:`DETAIL_COLUMNS`), which saves looking them up. ``touch_index`` may be null when a model
credits channels of a journey rather than individual touches (a global Markov allocation, say).

Models that learn from the population (Markov, Shapley, incremental) take two declared steps:
``fit(journeys) -> Fit`` learns once from every journey, and the :class:`Fit` gives the weights
of any journeys (``Fit.weights(journeys)``) and its own output tables (``Fit.tables()``: removal
effects, channel values, effects). Such a model says so with ``fit_input``, a
:class:`FitInput` that engines read to decide what to fit it on: every journey at once, or
counts summed over partitions of the accounts (:mod:`attribution.models.counts`). Both steps
are checked when the class is defined, not when a run reaches them.

Turning weights into exact money is not the model's job: :func:`attribution.credit.allocate`
does it once for every model, so conservation to the cent holds by construction.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import polars as pl

from attribution.errors import ModelError
from attribution.journeys import JourneyIndex, Journeys, TouchRuns
from attribution.schema import DETAIL_COLUMNS

#: what a model may need from the journeys
NEEDS_TIMESTAMPS = "timestamps"
NEEDS_MILESTONES = "milestones"
#: self-reported answers ("How did you hear about us?") mapped to each deal's stated channel
NEEDS_SELF_REPORTED = "self_reported"


class FitInput(enum.Enum):
    """What a fitted model learns from; engines read it instead of asking for a model's type.

    * ``JOURNEYS``: every journey at once (touch times, milestones); the path counts do not
      reproduce the fit (a model may still sum tallies of its own: :meth:`AttributionModel.
      fits_from_tallies`, as ``incremental`` does).
    * ``PATH_COUNTS``: the distinct channel paths with their summed outcomes
      (:func:`attribution.models.counts.path_counts`); counts of disjoint sets of accounts add up,
      so a fit on merged partition counts equals the fit on the whole.
    * ``CHANNEL_SETS``: the same counts, keeping paths seen only in open deals (a channel-set
      game plays on every set it saw).
    """

    JOURNEYS = "journeys"
    PATH_COUNTS = "path_counts"
    CHANNEL_SETS = "channel_sets"

    @property
    def merges(self) -> bool:
        """Whether fits on partitions' counts, merged, equal the fit on the whole."""
        return self is not FitInput.JOURNEYS


class Fit:
    """What a fitted model learned from the population.

    Subclasses (frozen dataclasses) implement :meth:`weights` and :meth:`tables`; a subclass
    that lacks either is refused when it is defined. Attributes named in ``transient`` (caches
    tied to the journeys the fit was made on) are not pickled, so a fit shipped to another
    process carries only what it learned.
    """

    transient: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in ("weights", "tables"):
            if getattr(cls, method) is getattr(Fit, method):
                raise TypeError(f"{cls.__name__} is a Fit and must implement {method}()")

    def weights(self, journeys: Journeys) -> pl.LazyFrame:  # pragma: no cover - interface
        """Weights (:data:`~attribution.schema.WEIGHT_SCHEMA`) of ``journeys``' touches, from
        what was fitted; the journeys need not be the ones the fit was made on."""
        raise NotImplementedError

    def tables(self) -> dict[str, pl.DataFrame]:  # pragma: no cover - interface
        """The fit's own output tables by name (written as ``<model>_<name>``)."""
        raise NotImplementedError

    def channel_shares(self) -> pl.DataFrame | None:
        """``channel, weight``: when the fit's weights are these same channel-level shares in
        every journey with a touch (Markov's global allocation), so that its credit is defined
        by channel totals (:func:`attribution.credit.split_by_totals`); None otherwise (the
        default). A run that keeps no credit rows then summarises the model from the totals
        (:func:`attribution.credit.summarise_shares`)."""
        return None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self.transient:
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class WeightedFits:
    """A fitted model's fits on fixed journeys under journey multiplicities, prepared once.

    ``weights[j]`` (a whole number >= 0, one per journey in the journeys frame's order) says
    how often journey ``j`` counts: the fit under ``weights`` equals the fit on the journeys
    with journey ``j`` listed ``weights[j]`` times (0: left out). A bootstrap refits a model on
    every resample this way (:mod:`attribution.intervals`) without copying a touch. A model
    that can be refitted so names its subclass in ``weighted_type``; a subclass that lacks
    :meth:`prepare`, :meth:`fit` or :meth:`revenue_credit` is refused when it is defined.
    """

    @classmethod
    def prepare(cls, model: AttributionModel,
                journeys: Journeys) -> WeightedFits:  # pragma: no cover - interface
        """What ``model``'s fits under any weights read from ``journeys``, taken once."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in ("prepare", "fit", "revenue_credit"):  # money: keep name (a method)
            if inspect.getattr_static(cls, method) is inspect.getattr_static(WeightedFits, method):
                raise TypeError(f"{cls.__name__} is a WeightedFits and must implement {method}()")

    def fit(self, weights: np.ndarray) -> Fit:  # pragma: no cover - interface
        """The fit on the journeys, journey ``j`` counted ``weights[j]`` times."""
        raise NotImplementedError

    def revenue_credit(self, weights: np.ndarray) -> dict[str, float]:  # pragma: no cover
        """Channel revenue credit (minor units, float: not split into cents) of the money
        journeys, each counted ``weights[j]`` times, under the fit on the same ``weights``:
        what :func:`~attribution.credit.allocate` gives the listed copies, before rounding.
        Channels of the drawn money journeys only (``(no touch)`` for one without a touch)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class AttributionModel:
    """Base class: subclasses set ``name``, ``label``, ``needs`` and implement ``weights``;
    a model that learns from the population sets ``fit_input`` and ``fit_type`` and implements
    ``fit`` instead (its weights are its fit's)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: one line shown by ``attribution models``
    summary: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    #: whether a journey's weights depend on other journeys (statistics fitted over all of
    #: them, converting or not). A model that says False is given only the journeys that carry
    #: money (deals, path rows), which is much less work on real exports.
    uses_population: ClassVar[bool] = True
    #: what the model's fit learns from; None for a model that fits nothing
    fit_input: ClassVar[FitInput | None] = None
    #: the class of what ``fit`` returns (a :class:`Fit`), for a model that fits
    fit_type: ClassVar[type[Fit] | None] = None
    #: the class of what :meth:`weighted` returns, for a fitted model that can be refitted
    #: under journey multiplicities without copying journeys (a :class:`WeightedFits`); None
    #: for one that cannot (a bootstrap then refits it on copies)
    weighted_type: ClassVar[type[WeightedFits] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.fit_input is None:
            return
        problems = []
        if cls.fit is AttributionModel.fit:
            problems.append("implement fit(journeys) -> Fit")
        if cls.weights is not AttributionModel.weights:
            problems.append("take its weights from its fit (Fit.weights), not override weights")
        if not (isinstance(cls.fit_type, type) and issubclass(cls.fit_type, Fit)):
            problems.append("name the Fit subclass its fit returns in fit_type")
        weighted = cls.weighted_type
        if weighted is not None and not (isinstance(weighted, type)
                                         and issubclass(weighted, WeightedFits)):
            problems.append("name a WeightedFits subclass (or None) in weighted_type")
        if problems:
            raise TypeError(
                f"model {cls.__name__} declares fit_input={cls.fit_input.value!r}, so it must "
                + " and ".join(problems)
            )

    @property
    def fits(self) -> bool:
        """Whether the model learns from the population (``fit`` then ``Fit.weights``)."""
        return self.fit_input is not None

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        """Weights (:data:`~attribution.schema.WEIGHT_SCHEMA`) of ``journeys``; for a model
        that fits, those of its fit on the same journeys."""
        if self.fit_input is None:  # pragma: no cover - interface
            raise NotImplementedError
        return self.fit(journeys).weights(journeys)

    def fit(self, journeys: Journeys) -> Fit:
        """Learn from every journey given; only models with a ``fit_input`` do."""
        raise ModelError(f"model {self.name!r} learns nothing from the population: it has no fit")

    def reweights(self) -> bool:
        """Whether a bootstrap refits this model under journey weights (:meth:`weighted`)
        rather than on copied journeys."""
        return self.weighted_type is not None

    def weighted(self, journeys: Journeys) -> WeightedFits:
        """Fits on ``journeys`` under any journey multiplicities (:class:`WeightedFits`), for a
        model with a ``weighted_type``."""
        if self.weighted_type is None:
            raise ModelError(f"model {self.name!r} cannot be fitted under journey weights")
        self.check(journeys)
        return self.weighted_type.prepare(self, journeys)

    def fit_counts(self, paths: pl.DataFrame) -> Fit:
        """The fit from summed distinct-path counts
        (:func:`attribution.models.counts.path_counts`, merged over partitions with
        :func:`~attribution.models.counts.merge_path_counts`), for a model whose ``fit_input``
        merges; equal to :meth:`fit` on the journeys the counts came from."""
        from attribution.models.counts import path_journeys

        if self.fit_input is None or not self.fit_input.merges:
            raise ModelError(
                f"model {self.name!r} fits on every journey at once; it cannot be fitted from "
                "path counts"
            )
        keep_unobserved = self.fit_input is FitInput.CHANNEL_SETS
        return self.fit(path_journeys(paths, keep_unobserved=keep_unobserved))

    def fits_from_tallies(self) -> bool:
        """Whether this model (with these hyperparameters) fits from :meth:`tally` outputs,
        whose size is bounded by the model, not the journeys: an engine that holds the
        journeys in partitions sums each partition's tallies and calls :meth:`fit_tallies`
        instead of bringing every distinct path to one place. None do unless they say so."""
        return False

    def tally(self, journeys: Journeys) -> dict[str, pl.DataFrame]:
        """Additive tallies of ``journeys`` (for :meth:`fit_tallies`): tables whose integer
        columns sum, grouped by the others, over disjoint sets of journeys."""
        raise ModelError(f"model {self.name!r} is not fitted from tallies")

    def fit_tallies(self, tallies: Mapping[str, pl.DataFrame]) -> Fit:
        """The fit from :meth:`tally` tables of disjoint sets of journeys, stacked (summed
        here): equal to :meth:`fit` on all of them."""
        raise ModelError(f"model {self.name!r} is not fitted from tallies")

    def params(self) -> dict[str, Any]:
        """Hyperparameters and their values, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def check(self, journeys: Journeys) -> None:
        """Raise :class:`ModelError` if the journeys lack what this model needs."""
        if NEEDS_TIMESTAMPS in self.needs and not journeys.has_timestamps:
            raise ModelError(
                f"model {self.name!r} needs touch timestamps, which a path table does not have; "
                "run it on touchpoint exports instead"
            )
        if NEEDS_MILESTONES in self.needs and not journeys.has_milestones:
            raise ModelError(
                f"model {self.name!r} needs journey milestones (lead and opportunity creation), "
                "which a path table does not have; run it on touchpoint and deal exports instead"
            )
        if NEEDS_SELF_REPORTED in self.needs and journeys.stated is None:
            raise ModelError(
                f"model {self.name!r} needs self-reported answers (a self_reported column on "
                "the contacts or deals, e.g. \"How did you hear about us?\"), which these "
                "exports do not have; map the column under [columns.contacts] or "
                "[columns.deals]"
            )


def with_journey_columns(touches: pl.DataFrame, table: pl.LazyFrame | pl.DataFrame,
                         columns: list[str], *, index: JourneyIndex | None = None) -> pl.DataFrame:
    """``touches`` with ``columns`` of ``table`` (a row per ``journey_id``) added: the left
    join of the touches on ``journey_id``, in the touches' order (null where the table lacks
    the journey).

    The table is joined on the first row of each run of the touches (``index``, their
    :class:`~attribution.journeys.JourneyIndex` when the caller has it) and the values
    repeated along the run: one key a journey rather than a row, the same result for any
    layout. A journey the table lists twice gets the row-by-row join itself (its touches once
    per listing).
    """
    journey = touches.get_column("journey_id")
    index = JourneyIndex.of(journey) if index is None else index
    table = table.lazy().select("journey_id", *columns).collect()
    runs = index.keys(journey).to_frame()
    found = runs.join(table, on="journey_id", how="left", maintain_order="left")
    if found.height != runs.height:  # a journey listed twice in the table
        return touches.join(table, on="journey_id", how="left", maintain_order="left")
    return touches.hstack(found.select(columns)[pl.Series(index.run_of_rows())].get_columns())


def normalise(weights: pl.LazyFrame, raw: str = "raw") -> pl.LazyFrame:
    """Turn a column of raw non-negative scores into weights summing to 1 per journey
    (:func:`run_normalised` over the journeys' runs of rows; any layout).

    A journey whose scores are all zero gets an even split. The touch's
    :data:`DETAIL_COLUMNS`, when ``weights`` has them, are kept for
    :func:`~attribution.credit.allocate`.
    """
    runs = TouchRuns.of(weights.collect())
    scores = runs.touches.get_column(raw).cast(pl.Float64).to_numpy()
    return run_weights(runs, run_normalised(runs, scores))


def with_weight(touches: pl.LazyFrame, weight: pl.Expr) -> pl.LazyFrame:
    """Weight rows (:data:`~attribution.schema.WEIGHT_SCHEMA`, plus the touch's
    :data:`DETAIL_COLUMNS` when ``touches`` has them) with ``weight`` computed on ``touches``."""
    names = touches.collect_schema().names()
    return touches.select("journey_id", "touch_index", "channel",
                          weight.cast(pl.Float64).alias("weight"),
                          *[c for c in DETAIL_COLUMNS if c in names])


def run_weights(runs: TouchRuns, weight: np.ndarray) -> pl.LazyFrame:
    """Weight rows (as :func:`with_weight` makes them) of the runs' touches, in their order,
    with ``weight`` (one value a row)."""
    touches = runs.touches
    return pl.DataFrame([
        *(touches.get_column(c) for c in ("journey_id", "touch_index", "channel")),
        pl.Series("weight", weight, dtype=pl.Float64),
        *(touches.get_column(c) for c in DETAIL_COLUMNS if c in touches.columns),
    ]).lazy()


def run_normalised(runs: TouchRuns, raw: np.ndarray) -> np.ndarray:
    """Raw non-negative scores (one a row of the runs) over their journey's total; an even
    split where the total is 0. A missing score (NaN) makes its journey's weights NaN, which
    :func:`~attribution.credit.allocate` refuses."""
    total = runs.spread(runs.total(raw))
    even = runs.spread(1.0 / runs.sizes)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = raw / total
    return np.where(total > 0, scaled, np.where(np.isnan(total), np.nan, even))


def last_touches(runs: TouchRuns) -> np.ndarray:
    """Whether each touch of the runs is its journey's last (the largest ``touch_index``)."""
    index = runs.touches.get_column("touch_index").to_numpy()
    return index == runs.spread(runs.max(index))


def flag(runs: TouchRuns, column: str) -> np.ndarray:
    """A boolean touch column of the runs (a missing value is False)."""
    return runs.touches.get_column(column).fill_null(False).to_numpy()


def journey_observations(journeys: Journeys) -> pl.LazyFrame:
    """Per journey, what data-driven models fit on: ``conversions``, ``trials`` (conversions
    plus nulls) and ``revenue_cents`` (minor units). A won deal is one conversion carrying its
    revenue, a lost deal or a deal-less account one null, a path-table row its own counts;
    open deals are neither (zeros)."""
    status = pl.col("status")
    conversions = (
        pl.when(status == "won")
        .then(pl.col("conversions").fill_null(1))
        .when(status == "path")
        .then(pl.col("conversions").fill_null(0))
        .otherwise(0)
    )
    nulls = (
        pl.when(status.is_in(["lost", "none"]))
        .then(pl.col("nulls").fill_null(1))
        .when(status == "path")
        .then(pl.col("nulls").fill_null(0))
        .otherwise(0)
    )
    revenue = (
        pl.when(status == "won")
        .then(pl.coalesce("revenue_cents", "amount_cents", pl.lit(0)))
        .when(status == "path")
        .then(pl.col("revenue_cents").fill_null(0))
        .otherwise(0)
    )
    return journeys.journeys.select(
        "journey_id",
        conversions.cast(pl.Int64).alias("conversions"),
        (conversions + nulls).cast(pl.Int64).alias("trials"),
        revenue.cast(pl.Int64).alias("revenue_cents"),
    )
