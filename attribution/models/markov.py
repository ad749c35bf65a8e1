"""Markov chain attribution by removal effect, solved exactly from the absorbing chain.

Definition (Anderl, Becker, von Wangenheim & Schumann, "Mapping the customer journey: Lessons
learned from graph-based online attribution modeling", IJRM 33(3), 2016; as implemented by
ChannelAttribution, Altomare & Loris): journeys are walks from ``(start)`` over channel states
to the absorbing ``(conversion)`` or ``(null)``; transition probabilities are observed
transition counts over exits. With ``P`` the probability of reaching ``(conversion)`` from
``(start)``, the *removal effect* of channel c is ``RE(c) = 1 - P_{-c} / P`` where ``P_{-c}``
is the same probability once every state containing c is removed (its traffic goes to
``(null)``). Shares are ``RE(c) / sum RE``; a channel's conversions credit is share × total
conversions. The same holds for conversion value: each exit to ``(conversion)`` carries the
mean value of the conversions leaving that state, ``V`` is the expected value per journey, and
``RE_value(c) = 1 - V_{-c} / V``; revenue credit is value share × total revenue.

Everything is solved exactly: ``P = e_start^T (I - Q)^{-1} r`` by one sparse LU solve per
removed channel (scipy), with Q the transient-to-transient transition matrix and r the exit
probabilities (or expected exit values) — no simulation, unlike ChannelAttribution's
``markov_model``, whose estimates converge to these numbers.

Two allocations of credit to journeys (both give weights summing to 1 per journey):

* ``allocation="global"`` (the standard definition, the default): every journey gets one
  channel-level row per channel (``touch_index`` null) carrying the global shares, so channel
  totals are exactly share × total conversions / revenue, as in ChannelAttribution. A journey
  is credited to channels it did not touch: the model explains the population, not the deal.
* ``allocation="per_deal"``: each journey's amount is split over *its own* touches in
  proportion to their channels' removal effects (touch-level rows). Channel totals then
  depend on which channels co-occur in converting journeys and differ from share × total.

Path transforms (:mod:`attribution.transforms`) apply before counting. With nothing to fit
(no journey with touches counts, e.g. only open deals) each journey is split evenly over its
touches; with no conversion at all the global shares are even over the fitted channels.
Bootstrap intervals resample journeys with replacement — the individual conversions and nulls,
as a multinomial draw over (distinct path, outcome) cells, each resampled conversion carrying
its path's mean value — and report the 2.5 % and 97.5 % percentiles of each channel's share.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import polars as pl

from attribution import progress
from attribution.errors import ConfigError, ModelError
from attribution.graph import (
    StateChain,
    TransitionCounts,
    chain_from_tallies,
    chain_graph,
    chain_tallies,
    chain_transitions,
    check_order,
    path_codes,
    state_chain,
)
from attribution.journeys import Journeys, channel_group_of
from attribution.models.base import AttributionModel, Fit, FitInput, normalise
from attribution.transforms import SOURCE_INDEX, apply_transforms, check_last_n, transform_touches

if TYPE_CHECKING:
    import networkx as nx

WEIGHT_BY = ("conversions", "revenue")  # money: keep name
ALLOCATIONS = ("global", "per_deal")
#: percentiles of the bootstrap interval
CI_PERCENTILES = (2.5, 97.5)

REMOVAL_EFFECT_SCHEMA = pl.Schema(
    {
        "channel": pl.String,
        "removal_effect": pl.Float64,
        "share": pl.Float64,
        "removal_effect_value": pl.Float64,
        "share_value": pl.Float64,
        "conversions_credit": pl.Float64,
        "revenue_credit_cents": pl.Float64,  # minor units
    }
)


@dataclasses.dataclass(frozen=True)
class MarkovFit(Fit):
    """A fitted Markov chain: transition matrix, conversion probability, removal effects.

    Attributes
    ----------
    chain
        The encoded distinct paths (:class:`attribution.graph.StateChain`).
    conversion_probability
        P: probability that a journey starting at ``(start)`` reaches ``(conversion)``.
    conversion_value
        V: expected conversion value per journey (minor units).
    total_conversions, total_revenue
        Conversions and conversion value (minor units) of the fitted journeys.
    removal_effect, removal_effect_value
        Per channel (in ``chain.channels`` order): ``1 - P_{-c}/P`` and ``1 - V_{-c}/V``.
    bootstrap_shares
        (bootstrap, n_channels) shares by ``weight_by`` in each resample, or None.
    model
        The model whose fit this is: its allocation and path transforms turn the fit into
        weights. None for a chain fitted on its own (:func:`fit_chain`), which has tables but
        no weights.
    """

    order: int
    weight_by: str
    chain: StateChain
    counts: TransitionCounts
    conversion_probability: float
    conversion_value: float
    total_conversions: int
    total_revenue: int
    removal_effect: np.ndarray
    removal_effect_value: np.ndarray
    bootstrap_shares: np.ndarray | None = None
    model: MarkovModel | None = None

    @property
    def channels(self) -> list[str]:
        return list(self.chain.channels)

    def shares(self, by: str | None = None) -> np.ndarray:
        """Removal-effect shares by conversions or revenue (default: the model's ``weight_by``)."""
        revenue = (by or self.weight_by) == "revenue"
        effect = self.removal_effect_value if revenue else self.removal_effect
        return _shares(effect)

    def transition_matrix(self) -> pl.DataFrame:
        """``from_state, to_state, count, probability, conversions, value`` (see graph.py)."""
        return chain_transitions(self.chain, self.counts)

    def graph(self) -> nx.DiGraph:
        """The fitted chain as a networkx path graph."""
        return chain_graph(self.chain, self.counts)

    def tables(self) -> dict[str, pl.DataFrame]:
        """``removal_effects`` and ``transitions`` (the transition matrix)."""
        return {"removal_effects": self.removal_effects(), "transitions": self.transition_matrix()}

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        """Weights per journey by the model's allocation (see the module docstring)."""
        model = self.model
        if model is None:
            raise ModelError("this Markov chain was fitted without a model: fit it with "
                             "MarkovModel(...).fit(journeys) to get weights")
        if model.allocation == "global":
            return _global_weights(journeys, self)
        raw = pl.LazyFrame(
            {"channel": self.channels, "raw": _effect(self, model.weight_by)},
            schema={"channel": pl.String, "raw": pl.Float64},
        )
        scored = (
            transform_touches(journeys.touches, **model._transforms())
            .join(raw, on="channel", how="left")
            .select("journey_id", pl.col(SOURCE_INDEX).alias("touch_index"), "raw")
        )
        touches = journeys.touches.select("journey_id", "touch_index", "channel")
        scored_touches = touches.join(
            scored, on=["journey_id", "touch_index"], how="left", maintain_order="left"
        ).with_columns(pl.col("raw").fill_null(0.0))
        return normalise(scored_touches).sort("journey_id", "touch_index")

    def channel_shares(self) -> pl.DataFrame | None:
        """The global allocation's shares (channels with a share above 0), the same in every
        journey with a touch; even over the fitted channels when nothing converted. None for
        ``allocation="per_deal"``, a fit without a model, or nothing fitted (then each journey
        is split evenly over its own touches)."""
        if self.model is None or self.model.allocation != "global" or not len(self.channels):
            return None
        share = self.shares()
        if share.sum() <= 0:
            share = np.full(len(share), 1.0 / len(share))  # no conversion at all: an even split
        return pl.DataFrame(
            {"channel": self.channels, "weight": share},
            schema={"channel": pl.String, "weight": pl.Float64},
        ).filter(pl.col("weight") > 0)

    def removal_effects(self) -> pl.DataFrame:
        """One row per channel, sorted by channel.

        Columns: ``channel, removal_effect, share, removal_effect_value, share_value,
        conversions_credit`` (share × total conversions), ``revenue_credit`` (share_value ×
        total revenue, minor units), and when bootstrapped ``ci_low, ci_high``: the 95 %
        bootstrap interval of the share the model weights by (``share`` for
        ``weight_by="conversions"``, ``share_value`` for ``"revenue"``).
        """
        share = self.shares("conversions")
        share_value = self.shares("revenue")  # money: keep name
        frame = pl.DataFrame(
            {
                "channel": self.channels,
                "removal_effect": self.removal_effect,
                "share": share,
                "removal_effect_value": self.removal_effect_value,
                "share_value": share_value,
                "conversions_credit": share * self.total_conversions,
                "revenue_credit_cents": share_value * self.total_revenue,
            },
            schema=REMOVAL_EFFECT_SCHEMA,
        )
        if self.bootstrap_shares is not None and len(self.channels):
            low, high = np.percentile(self.bootstrap_shares, CI_PERCENTILES, axis=0)
            frame = frame.with_columns(ci_low=pl.Series(low), ci_high=pl.Series(high))
        return frame


@dataclasses.dataclass(frozen=True)
class MarkovModel(AttributionModel):
    """Markov chain attribution by removal effect (Anderl et al. 2016), exact.

    Parameters
    ----------
    order
        Markov order, 1..4: a state is a window of the last ``order`` channels.
    weight_by
        ``"conversions"`` (removal effects on conversion probability) or ``"revenue"``
        (on expected conversion value).
    allocation
        ``"global"`` (channel-level weights with the global shares) or ``"per_deal"``
        (each journey's touches by their channels' removal effects). See the module docstring.
    include_open
        Count open deals as non-converting journeys when fitting (default: leave them out).
    collapse_repeats, first_touch_per_channel, frequency, last_n, drop_channels
        Path transforms, see :func:`attribution.transforms.apply_transforms`.
    bootstrap
        Number of bootstrap resamples for share intervals (0: none).
    seed
        Seed of the bootstrap.

    Examples
    --------
    >>> model = MarkovModel(order=2, bootstrap=100)
    >>> model.params()["order"]
    2
    """

    name: ClassVar[str] = "markov"
    label: ClassVar[str] = "Markov chain"
    summary: ClassVar[str] = "removal effect of each channel in a Markov chain of journeys (exact)"
    fit_input: ClassVar[FitInput | None] = FitInput.PATH_COUNTS
    fit_type: ClassVar[type[Fit] | None] = MarkovFit

    order: int = 1
    weight_by: str = "conversions"
    allocation: str = "global"
    include_open: bool = False
    collapse_repeats: bool = False
    first_touch_per_channel: bool = False
    frequency: bool = False
    last_n: int | None = None
    drop_channels: tuple[str, ...] = ()
    bootstrap: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_order(self.order)
        if self.weight_by not in WEIGHT_BY:
            raise ConfigError(
                f"weight_by must be one of {', '.join(WEIGHT_BY)}, not {self.weight_by!r}")
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(
                f"allocation must be one of {', '.join(ALLOCATIONS)}, not {self.allocation!r}"
            )
        for field in ("bootstrap", "seed"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{field} must be a whole number >= 0, not {value!r}")
        check_last_n(self.last_n)
        if isinstance(self.drop_channels, str):
            raise ConfigError(
                "drop_channels must be a list of channel names, not the string "
                f"{self.drop_channels!r}"
            )

    def _transforms(self) -> dict[str, Any]:
        return {
            "collapse_repeats": self.collapse_repeats,
            "first_touch_per_channel": self.first_touch_per_channel,
            "frequency": self.frequency,
            "last_n": self.last_n,
            "drop_channels": tuple(self.drop_channels),
        }

    def fit(self, journeys: Journeys) -> MarkovFit:
        """Count transitions over all journeys and solve the chain for removal effects."""
        self.check(journeys)
        transformed = apply_transforms(journeys, **self._transforms())
        paths = path_codes(transformed, include_open=self.include_open)
        chain = fit_chain(
            state_chain(paths, self.order),
            weight_by=self.weight_by,
            bootstrap=self.bootstrap,
            seed=self.seed,
        )
        return dataclasses.replace(chain, model=self)

    def fit_counts(self, paths: pl.DataFrame) -> MarkovFit:
        """The fit from summed path counts, with open deals counted as the model says."""
        from attribution.models.counts import path_journeys

        return self.fit(path_journeys(paths, include_open=self.include_open))

    def fits_from_tallies(self) -> bool:
        """The removal effects need only the transition counts per state; a bootstrap
        resamples paths, so it needs the paths."""
        return self.bootstrap == 0

    def tally(self, journeys: Journeys) -> dict[str, pl.DataFrame]:
        """``edges`` and ``exits`` (:func:`attribution.graph.chain_tallies`) of the journeys'
        order-``order`` chain, after the model's path transforms: a row per transition and
        per state, however many journeys."""
        self.check(journeys)
        transformed = apply_transforms(journeys, **self._transforms())
        chain = state_chain(path_codes(transformed, include_open=self.include_open), self.order)
        edges, exits = chain_tallies(chain)
        return {"edges": edges, "exits": exits}

    def fit_tallies(self, tallies: Mapping[str, pl.DataFrame]) -> MarkovFit:
        """The fit from summed :meth:`tally` tables: the chain :meth:`fit` solves, rebuilt from
        its transition counts (:func:`attribution.graph.chain_from_tallies`)."""
        if not self.fits_from_tallies():
            raise ModelError("a Markov bootstrap resamples paths: fit it from path counts")
        chain, counts = chain_from_tallies(self.order, tallies["edges"], tallies["exits"])
        probability, value, effect, effect_value = removal_effects(chain, counts)
        return MarkovFit(
            order=chain.order,
            weight_by=self.weight_by,
            chain=chain,
            counts=counts,
            conversion_probability=probability,
            conversion_value=value,
            total_conversions=int(counts.conversion.sum()),
            total_revenue=int(counts.value.sum()),
            removal_effect=effect,
            removal_effect_value=effect_value,
            model=self,
        )


def fit_chain(
    chain: StateChain, *, weight_by: str = "conversions", bootstrap: int = 0, seed: int = 0
) -> MarkovFit:
    """Solve a :class:`StateChain` for its removal effects (and bootstrap shares)."""
    counts = chain.counts()
    probability, value, effect, effect_value = removal_effects(chain, counts)
    boot = None
    if bootstrap:
        boot = _bootstrap(chain, weight_by=weight_by, bootstrap=bootstrap, seed=seed)
    return MarkovFit(
        order=chain.order,
        weight_by=weight_by,
        chain=chain,
        counts=counts,
        conversion_probability=probability,
        conversion_value=value,
        total_conversions=int(chain.conversions.sum()),
        total_revenue=int(chain.revenue.sum()),
        removal_effect=effect,
        removal_effect_value=effect_value,
        bootstrap_shares=boot,
    )


def removal_effects(
    chain: StateChain, counts: TransitionCounts
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """``(P, V, RE, RE_value)``: conversion probability and expected value from the start,
    and each channel's removal effects, solved exactly (one sparse LU per channel)."""
    import scipy.sparse as sp  # here: slow to import, and only a Markov fit needs it
    import scipy.sparse.linalg as spla

    n = chain.n_nodes
    out_total = (
        np.bincount(chain.edge_from, weights=counts.edge, minlength=n)
        + counts.conversion
        + counts.null
    )
    safe = np.where(out_total > 0, out_total, 1.0)
    probability = counts.edge / safe[chain.edge_from]
    transient = sp.csr_matrix((probability, (chain.edge_from, chain.edge_to)), shape=(n, n))
    system = (sp.identity(n, format="csr") - transient).tocsr()
    exits = np.column_stack([counts.conversion / safe, counts.value / safe])

    def factor(keep: np.ndarray, ordering: str) -> tuple[np.ndarray, Any]:
        index = np.flatnonzero(keep)
        return index, spla.splu(system[index][:, index].tocsc(), permc_spec=ordering)

    def solve(keep: np.ndarray) -> np.ndarray:
        index, lu = factor(keep, ordering)
        return np.atleast_2d(lu.solve(exits[index]))[0]  # row of the start node

    n_channels = len(chain.channels)
    if n == 1 or n_channels == 0:
        return 0.0, 0.0, np.zeros(n_channels), np.zeros(n_channels)
    # the factorisations dominate at higher orders, and their cost is the fill-in: states are
    # numbered in channel order, which often keeps the factors sparser than a fill-reducing
    # ordering does. Both are tried on the whole chain; its removals use the sparser one.
    everything = np.ones(n, dtype=bool)
    # SuperLU lets go of the GIL, so factorisations run side by side
    pool = ThreadPoolExecutor(max_workers=min(n_channels + 1, os.cpu_count() or 1))
    with pool:
        names = ("NATURAL", "COLAMD")
        candidates = dict(zip(names, pool.map(lambda name: factor(everything, name)[1], names),
                              strict=True))
        ordering = min(names, key=lambda name: candidates[name].L.nnz + candidates[name].U.nnz)
        base = np.atleast_2d(candidates[ordering].solve(exits))[0]
        removed = [~chain.contains[:, j] for j in range(n_channels)]
        without = np.array(list(pool.map(solve, removed)))
    effect = _relative_drop(base[0], without[:, 0])
    effect_value = _relative_drop(base[1], without[:, 1])
    return float(base[0]), float(base[1]), effect, effect_value


def _relative_drop(full: float, without: np.ndarray) -> np.ndarray:
    if full <= 0:
        return np.zeros(len(without))
    return np.clip(1.0 - without / full, 0.0, 1.0)


def _shares(effect: np.ndarray) -> np.ndarray:
    total = effect.sum()
    return effect / total if total > 0 else np.zeros(len(effect))


def _effect(fit: MarkovFit, weight_by: str) -> np.ndarray:
    return fit.removal_effect_value if weight_by == "revenue" else fit.removal_effect


def _bootstrap(chain: StateChain, *, weight_by: str, bootstrap: int, seed: int) -> np.ndarray:
    """Shares in ``bootstrap`` resamples of the individual journeys (multinomial over cells)."""
    rng = np.random.default_rng(seed)
    n_paths = len(chain.conversions)
    cells = np.concatenate([chain.conversions, chain.nulls]).astype(np.float64)
    total = int(cells.sum())
    mean_value = np.divide(
        chain.revenue, chain.conversions, out=np.zeros(n_paths), where=chain.conversions > 0
    )
    shares = np.zeros((bootstrap, len(chain.channels)))
    if total == 0:
        return shares
    probabilities = cells / total
    for replicate in range(bootstrap):  # a loop over resamples, not over journeys
        if replicate % 10 == 0:
            progress.report("markov bootstrap", replicate, bootstrap)
        drawn = rng.multinomial(total, probabilities)
        conversions, nulls = drawn[:n_paths], drawn[n_paths:]
        counts = chain.counts(conversions, nulls, conversions * mean_value)
        _, _, effect, effect_value = removal_effects(chain, counts)
        shares[replicate] = _shares(effect_value if weight_by == "revenue" else effect)
    progress.report("markov bootstrap", bootstrap, bootstrap)
    return shares


def _global_weights(journeys: Journeys, fit: MarkovFit) -> pl.LazyFrame:
    """Channel-level rows with the global shares, for every journey that carries money.

    Deal-less journeys (status ``none``) get no rows: they hold no money to credit, and at
    scale they are most journeys (journeys x channels rows would dominate a run).
    """
    touches = journeys.touches
    shares = fit.channel_shares()
    if shares is None:  # nothing to fit (only open deals, say): an even split of each journey
        raw = touches.select("journey_id", "touch_index", "channel", pl.lit(0.0).alias("raw"))
        return normalise(raw).sort("journey_id", "touch_index")
    # each channel's group comes with the weights: allocate then joins no lookup on its rows
    channel_weights = shares.lazy().join(channel_group_of(touches), on="channel", how="left",
                                          maintain_order="left")
    credited = journeys.journeys.filter(
        (pl.col("status") != "none") & (pl.col("n_touches") > 0)
    ).select("journey_id")
    return (
        credited.sort("journey_id")
        .join(channel_weights, how="cross", maintain_order="left_right")
        .select(
            "journey_id",
            pl.lit(None, dtype=pl.UInt32).alias("touch_index"),
            "channel",
            "weight",
            "channel_group",
        )
    )


__all__ = ["MarkovFit", "MarkovModel", "fit_chain", "removal_effects"]
