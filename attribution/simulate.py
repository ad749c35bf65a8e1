"""A deterministic simulator of B2B CRM / marketing exports with a known causal structure.

The simulator draws a population of accounts, exposes each account's buying group to
marketing channels, lets some channels *cause* others (a podcast listener later searches and
clicks a paid ad), and decides deal creation, win and deal size from the channels the
buying group was exposed to. It writes what a revenue team would export from its CRM and ad
platforms: ``touchpoints``, ``deals``, ``contacts`` and ``spend``.

Why it is built this way
------------------------
Every random number is drawn *before* any outcome is decided (:class:`Draws`), and the
outcomes are a deterministic function of those draws and the channel exposures
(:func:`realise`). Removing a channel therefore has an exact counterfactual: switch the
channel off, recompute the exposures it caused (in causal order) and the outcomes, holding
every other draw fixed. :func:`ground_truth` does that for each channel, so a model's channel
credit can be compared with the revenue the world really loses without the channel, with no
sampling error for a given seed. ``simulate(..., removed=("podcast",))`` produces the full
counterfactual export, touches and all.

Per-touch details (which contact, which UTM source, which touch type, whether the CRM
filled in ``account_id``) are drawn by hashing the touch's identity (account, channel, touch
number) rather than from a sequential stream, so a touch that exists in both the factual
and the counterfactual world looks the same in both.

Everything is vectorised over accounts and touches (numpy / polars); Python loops run only
over channels, cause pairs, months and the handful of deliberate bad rows.

>>> export = simulate(200, seed=1)
>>> sorted(export.tables())
['contacts', 'deals', 'spend', 'touchpoints']
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType

import networkx as nx
import numpy as np
import polars as pl
from scipy.special import expit, gammaincinv

from attribution.errors import ConfigError

__all__ = [
    "ANSWER_PHRASES",
    "CHANNELS",
    "CHANNEL_UTMS",
    "SCENARIOS",
    "DarkFunnel",
    "Draws",
    "Outcomes",
    "SimulatedExport",
    "World",
    "baseline_revenue",
    "channel_truth",
    "draw",
    "ground_truth",
    "plant_experiments",
    "random_world",
    "realise",
    "scenario",
    "shapley_truth",
    "hide_channels",
    "self_reported_answers",
    "simulate",
    "write_experiments",
    "with_dark_funnel",
    "write_export",
]

# -- the channels and what they look like in an export -----------------------------------

#: every channel the simulator knows, in a fixed order (the column order of every matrix)
CHANNELS: tuple[str, ...] = (
    "podcast",
    "newsletter",
    "community",
    "events",
    "webinar",
    "organic_social",
    "paid_social",
    "content",
    "organic_search",
    "paid_search",
    "review_sites",
    "retargeting",
    "email",
    "direct",
)

#: channel -> (utm_source choices, utm_medium); the library's default channel rules map these
CHANNEL_UTMS: dict[str, tuple[tuple[str, ...], str]] = {
    "podcast": (("spotify", "apple_podcasts"), "podcast"),
    "newsletter": (("newsletter",), "newsletter"),
    "community": (("slack", "discord"), "community"),
    "events": (("saastr", "dreamforce"), "event"),
    "webinar": (("zoom", "on24"), "webinar"),
    "organic_social": (("linkedin",), "social"),
    "paid_social": (("linkedin",), "paid_social"),
    "content": (("blog",), "content"),
    "organic_search": (("google",), "organic"),
    "paid_search": (("google", "bing"), "cpc"),
    "review_sites": (("g2", "capterra"), "referral"),
    "retargeting": (("adroll",), "retargeting"),
    "email": (("hubspot",), "email"),
    "direct": (("(direct)",), "(none)"),
}

#: the usual touch type of a touch on each channel
_TOUCH_TYPE: dict[str, str] = {
    "podcast": "podcast_listen",
    "newsletter": "email_click",
    "community": "page_view",
    "events": "event_attend",
    "webinar": "webinar_attend",
    "organic_social": "page_view",
    "paid_social": "ad_click",
    "content": "page_view",
    "organic_search": "page_view",
    "paid_search": "ad_click",
    "review_sites": "page_view",
    "retargeting": "ad_click",
    "email": "email_click",
    "direct": "page_view",
}
#: channels whose touches land on the website, where some become a form fill
_WEB_CHANNELS = frozenset(
    {
        "organic_social",
        "paid_social",
        "content",
        "organic_search",
        "paid_search",
        "review_sites",
        "retargeting",
        "direct",
    }
)
_FORM_FILL_RATE = 0.08

#: campaign names per channel (empty: the channel carries no campaign)
_CAMPAIGNS: dict[str, tuple[str, ...]] = {
    "podcast": ("revops-weekly", "saas-operators-show"),
    "newsletter": ("monday-digest", "product-update"),
    "community": ("revops-slack", "founders-discord"),
    "events": ("saastr-2025", "dreamforce-2025"),
    "webinar": ("attribution-101", "pipeline-review-live"),
    "organic_social": ("founder-posts", "customer-stories"),
    "paid_social": ("abm-tier1", "lookalike-q2"),
    "content": ("b2b-attribution-guide", "benchmark-report"),
    "organic_search": (),
    "paid_search": ("brand-terms", "competitor-terms", "category-terms"),
    "review_sites": ("g2-profile", "capterra-listing"),
    "retargeting": ("site-visitors-30d", "pricing-page"),
    "email": ("nurture-trial", "nurture-webinar"),
    "direct": (),
}

#: share of touchpoint rows whose ``account_id`` the CRM left empty
ACCOUNT_ID_BLANK_RATE = 0.6
_MAX_TOUCHES_PER_EXPOSURE = 40
_MAX_NOISE_TOUCHES = 30
_MINUTES_PER_DAY = 1440.0


# -- the world -----------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The causal structure of a simulated market: who is reached, what causes what, what pays.

    A channel is part of the world when it has a key in ``reach``; every other mapping may
    leave channels out (they count as 0). Probabilities are per account, effects are on the
    log-odds (``deal_effect``, ``win_effect``) or log-amount (``size_effect``) scale. The
    mappings are stored read-only; derive a variant with ``dataclasses.replace``.

    Attributes
    ----------
    name
        A label (the scenario's name).
    reach
        channel -> probability that an average account's buying group is exposed to the
        channel on its own (not caused by another channel). Channels present here, in
        :data:`CHANNELS` order, are the world's channels.
    stage
        channel -> typical position of the channel's first touch in the account's journey,
        0 = the journey's first day, 1 = its last day. Early (demand creation) channels low,
        late (demand capture) channels high.
    stage_spread
        Standard deviation of the position around ``stage`` (clipped to [0, 1]).
    touches_per_exposure
        channel -> mean number of touches one exposure produces (at least 1; the extra
        touches are Poisson). Channels left out produce 1 touch.
    touch_spread_days
        Mean days between the first and the last touch of one exposure (exponential).
    causes
        (cause, effect) -> probability that an account exposed to ``cause`` is, because of
        it, exposed to ``effect`` later (a podcast listener later searches and clicks a paid
        ad). Must be acyclic. An exposure that is only caused disappears when its cause is
        removed.
    cause_delay_days
        Mean days from the cause's first touch to the caused channel's first touch.
    engagement_shape
        Shape of the Gamma(mean 1) account engagement that scales every reach
        (``1 - (1 - reach) ** engagement``): small = a few accounts see everything, large =
        accounts alike; ``math.inf`` = no account-level correlation.
    deal_effect, win_effect, size_effect
        channel -> effect of the buying group's exposure to the channel on the log-odds that
        the account creates a deal, on the log-odds that the deal is won, and on the log of
        the deal's amount.
    base_deal_logit, base_win_logit
        Log-odds of deal creation and of winning for an account exposed to nothing.
    base_amount
        Median deal amount in USD for an account exposed to nothing.
    amount_sigma
        Standard deviation of the log amount's noise. Amounts are rounded to 50 USD and are
        at least 1,000 USD.
    last_touch_only
        When true, only the channel of the account's last causal touch has any effect (its
        deal, win and size effects apply; all other exposures are inert).
    buying_group_weights
        Relative weights of buying-group sizes 1..8 (eight numbers).
    journey_days
        (min, max) length in days of an account's marketing journey (uniform); every causal
        touch lies inside it and the deal, if any, is created 0-3 days after it ends.
    sales_cycle_days
        (min, max) days from deal creation to close (uniform). Deals that would close after
        the export's window are ``open``.
    noise_touches
        Mean number of extra touches per touched account that have no effect on anything
        (a stray page view, an organic search), spread from the journey's start to the
        (would-be) deal close. Only accounts with at least one causal exposure get them, so
        they disappear with an account's last causal exposure in a counterfactual.
    noise_channels
        channel -> relative weight of the channel among noise touches.
    cost_per_touch
        channel -> USD spent per touch (monthly ``spend`` rows); channels left out or at 0
        cost nothing and have no spend rows.
    intent_effect
        Unobserved intent: the account's engagement (the same Gamma draw that scales every
        reach, so engaged accounts see more channels) also raises the log-odds of a deal by
        ``intent_effect * (min(engagement, 4) - 1)``, whatever it was exposed to. No touch
        records it, so every model that reads touches confounds it with the channels engaged
        accounts see; the truths are unaffected (intent is not a channel). 0: none.
    """

    name: str
    reach: Mapping[str, float]
    stage: Mapping[str, float]
    deal_effect: Mapping[str, float] = field(default_factory=dict)
    win_effect: Mapping[str, float] = field(default_factory=dict)
    size_effect: Mapping[str, float] = field(default_factory=dict)
    causes: Mapping[tuple[str, str], float] = field(default_factory=dict)
    touches_per_exposure: Mapping[str, float] = field(default_factory=dict)
    stage_spread: float = 0.12
    touch_spread_days: float = 10.0
    cause_delay_days: float = 7.0
    engagement_shape: float = 2.0
    base_deal_logit: float = -3.0
    base_win_logit: float = -1.0
    base_amount: float = 30_000.0
    amount_sigma: float = 0.5
    last_touch_only: bool = False
    buying_group_weights: tuple[float, ...] = (0.12, 0.18, 0.2, 0.17, 0.13, 0.09, 0.06, 0.05)
    journey_days: tuple[int, int] = (21, 120)
    sales_cycle_days: tuple[int, int] = (20, 110)
    noise_touches: float = 1.0
    noise_channels: Mapping[str, float] = field(
        default_factory=lambda: {"direct": 3.0, "organic_search": 2.0, "content": 1.0}
    )
    cost_per_touch: Mapping[str, float] = field(default_factory=dict)
    intent_effect: float = 0.0

    def __post_init__(self) -> None:
        # freeze the mappings too: a World never changes once made
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Mapping):
                object.__setattr__(self, item.name, MappingProxyType(dict(value)))
        object.__setattr__(self, "buying_group_weights", tuple(self.buying_group_weights))
        named = {
            "reach": self.reach,
            "stage": self.stage,
            "deal_effect": self.deal_effect,
            "win_effect": self.win_effect,
            "size_effect": self.size_effect,
            "touches_per_exposure": self.touches_per_exposure,
            "noise_channels": self.noise_channels,
            "cost_per_touch": self.cost_per_touch,
        }
        for label, mapping in named.items():
            for channel in mapping:
                _check_channel(channel, f"World.{label}")
        for cause, effect in self.causes:
            _check_channel(cause, "World.causes")
            _check_channel(effect, "World.causes")
        problems = [
            f"reach[{c!r}] = {p} is not a probability"
            for c, p in self.reach.items()
            if not 0.0 <= p <= 1.0
        ]
        problems += [
            f"causes[{pair!r}] = {p} is not a probability"
            for pair, p in self.causes.items()
            if not 0.0 <= p <= 1.0
        ]
        problems += [
            f"causes[{pair!r}] names a channel missing from reach"
            for pair in self.causes
            if pair[0] not in self.reach or pair[1] not in self.reach
        ]
        problems += [f"stage has no entry for {c!r}" for c in self.reach if c not in self.stage]
        if len(self.buying_group_weights) != 8 or min(self.buying_group_weights) < 0:
            problems.append("buying_group_weights needs eight non-negative weights (sizes 1-8)")
        elif sum(self.buying_group_weights) <= 0:
            problems.append("buying_group_weights must not all be 0")
        for label, (low, high) in (
            ("journey_days", self.journey_days),
            ("sales_cycle_days", self.sales_cycle_days),
        ):
            if not 0 < low <= high:
                problems.append(f"{label} = {(low, high)} needs 0 < min <= max")
        if self.noise_touches < 0 or (self.noise_touches > 0 and not self.noise_channels):
            problems.append("noise_touches needs noise_touches >= 0 and some noise_channels")
        if self.engagement_shape <= 0:
            problems.append("engagement_shape must be > 0 (math.inf for none)")
        graph = nx.DiGraph(list(self.causes))
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            problems.append(f"causes contain a cycle: {' -> '.join(a for a, _ in cycle)}")
        if problems:
            raise ConfigError(f"world {self.name!r}: " + "; ".join(problems))

    @property
    def channels(self) -> tuple[str, ...]:
        """The world's channels in :data:`CHANNELS` order."""
        return tuple(c for c in CHANNELS if c in self.reach)

    def causal_order(self) -> tuple[str, ...]:
        """The channels ordered so that every cause comes before its effects."""
        graph = nx.DiGraph()
        graph.add_nodes_from(self.channels)
        graph.add_edges_from(self.causes)
        rank = {c: i for i, c in enumerate(CHANNELS)}
        return tuple(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))


def _check_channel(channel: str, where: str) -> None:
    if channel not in CHANNEL_UTMS:
        close = difflib.get_close_matches(channel, CHANNELS, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{where}: unknown channel {channel!r}{guess}; valid channels: {', '.join(CHANNELS)}"
        )


_ALL_STAGES = {
    "podcast": 0.1,
    "newsletter": 0.2,
    "community": 0.22,
    "events": 0.3,
    "webinar": 0.35,
    "organic_social": 0.25,
    "paid_social": 0.4,
    "content": 0.45,
    "organic_search": 0.55,
    "paid_search": 0.75,
    "review_sites": 0.8,
    "retargeting": 0.85,
    "email": 0.6,
    "direct": 0.92,
}
_COSTS = {
    "podcast": 45.0,
    "newsletter": 18.0,
    "events": 400.0,
    "webinar": 60.0,
    "paid_social": 35.0,
    "content": 12.0,
    "paid_search": 28.0,
    "review_sites": 55.0,
    "retargeting": 9.0,
    "email": 2.0,
}


def _baseline() -> World:
    return World(
        name="baseline",
        reach={
            "podcast": 0.12,
            "newsletter": 0.15,
            "community": 0.1,
            "events": 0.06,
            "webinar": 0.1,
            "organic_social": 0.2,
            "paid_social": 0.18,
            "content": 0.3,
            "organic_search": 0.3,
            "paid_search": 0.25,
            "review_sites": 0.12,
            "retargeting": 0.2,
            "email": 0.25,
            "direct": 0.35,
        },
        stage=_ALL_STAGES,
        touches_per_exposure={
            "podcast": 2.5,
            "newsletter": 2.5,
            "community": 2.0,
            "events": 1.2,
            "webinar": 1.3,
            "organic_social": 2.0,
            "paid_social": 1.8,
            "content": 2.2,
            "organic_search": 1.8,
            "paid_search": 2.0,
            "review_sites": 1.5,
            "retargeting": 2.5,
            "email": 2.5,
            "direct": 2.0,
        },
        causes={
            ("podcast", "paid_search"): 0.3,
            ("events", "direct"): 0.4,
            ("webinar", "email"): 0.5,
            ("content", "retargeting"): 0.3,
            ("paid_social", "retargeting"): 0.3,
        },
        deal_effect={
            "podcast": 0.3,
            "newsletter": 0.2,
            "community": 0.3,
            "events": 0.8,
            "webinar": 0.5,
            "organic_social": 0.1,
            "paid_social": 0.2,
            "content": 0.2,
            "organic_search": 0.3,
            "paid_search": 0.6,
            "review_sites": 0.7,
            "retargeting": 0.1,
            "email": 0.2,
            "direct": 0.6,
        },
        win_effect={"events": 0.4, "review_sites": 0.4, "webinar": 0.2, "community": 0.2},
        size_effect={"events": 0.3, "podcast": 0.1, "paid_social": 0.1},
        base_deal_logit=-2.4,
        base_win_logit=-1.0,
        noise_touches=1.5,
        cost_per_touch=_COSTS,
    )


def _brand_drives_search() -> World:
    brand = ("podcast", "newsletter", "community")
    reach = {c: 0.18 for c in brand}
    reach |= {"content": 0.2, "organic_search": 0.15, "paid_search": 0.08, "direct": 0.1}
    reach |= {"review_sites": 0.05, "retargeting": 0.1}
    causes: dict[tuple[str, str], float] = {}
    for channel in brand:
        causes |= {(channel, "paid_search"): 0.55, (channel, "direct"): 0.45}
        causes[(channel, "review_sites")] = 0.2
    causes[("paid_search", "retargeting")] = 0.4
    return World(
        name="brand_drives_search",
        reach=reach,
        stage=_ALL_STAGES,
        touches_per_exposure={"podcast": 3.0, "newsletter": 3.0, "community": 2.5}
        | {"paid_search": 2.0, "direct": 2.0, "retargeting": 2.5, "content": 1.8},
        causes=causes,
        # brand channels pay only through the search and direct visits they cause
        deal_effect={"paid_search": 1.3, "direct": 1.1, "review_sites": 0.8, "content": 0.2},
        win_effect={"review_sites": 0.5, "direct": 0.2},
        base_deal_logit=-3.0,
        base_win_logit=-0.9,
        cost_per_touch={c: _COSTS[c] for c in reach if c in _COSTS},
    )


def _last_touch_world() -> World:
    reach = {
        c: 0.2
        for c in ("podcast", "webinar", "content", "paid_search", "review_sites", "email", "direct")
    }
    return World(
        name="last_touch_world",
        reach=reach,
        stage=_ALL_STAGES,
        touches_per_exposure={c: 1.8 for c in reach},
        deal_effect={"paid_search": 1.6, "direct": 2.0, "review_sites": 1.2, "email": 0.6}
        | {"podcast": 0.3, "webinar": 0.4, "content": 0.3},
        win_effect={"direct": 0.5, "review_sites": 0.4},
        size_effect={"direct": 0.2},
        base_deal_logit=-3.0,
        base_win_logit=-1.0,
        last_touch_only=True,
        noise_touches=0.0,
        cost_per_touch={c: _COSTS[c] for c in reach if c in _COSTS},
    )


def _no_marketing() -> World:
    reach = {c: 0.03 for c in ("podcast", "webinar", "content", "paid_search", "direct", "email")}
    return World(
        name="no_marketing",
        reach=reach,
        stage=_ALL_STAGES,
        deal_effect={"paid_search": 0.4, "direct": 0.4, "webinar": 0.3},
        base_deal_logit=-1.6,
        base_win_logit=-0.8,
        noise_touches=0.5,
        cost_per_touch={c: _COSTS[c] for c in reach if c in _COSTS},
    )


#: the named scenarios, in the order ``scenario`` lists them
SCENARIOS = {
    "baseline": _baseline,
    "brand_drives_search": _brand_drives_search,
    "last_touch_world": _last_touch_world,
    "no_marketing": _no_marketing,
}


def scenario(name: str) -> World:
    """Return the named scenario's :class:`World`.

    ``baseline``: every channel with moderate direct effects and a few causal links.
    ``brand_drives_search``: podcast, newsletter and community have no direct effect but
    cause later paid-search, direct and review-site visits, which do.
    ``last_touch_world``: only the channel of each account's last touch matters.
    ``no_marketing``: little reach and a high base rate, so most deals have no touch.

    >>> scenario("brand_drives_search").causes[("podcast", "paid_search")]
    0.55
    """
    if name not in SCENARIOS:
        close = difflib.get_close_matches(name, SCENARIOS, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown scenario {name!r}{guess}; valid scenarios: {', '.join(SCENARIOS)}"
        )
    return SCENARIOS[name]()


def random_world(seed: int) -> World:
    """A random but plausible world: random reach, stages, effects and causal links.

    Causal links only run from an earlier-stage channel to a later-stage one.

    >>> random_world(3) == random_world(3)
    True
    """
    rng = np.random.default_rng([seed, 0x5EED])
    n_channels = int(rng.integers(5, len(CHANNELS) + 1))
    picked = sorted(rng.choice(len(CHANNELS), size=n_channels, replace=False).tolist())
    channels = [CHANNELS[i] for i in picked]
    stage = {c: float(np.clip(_ALL_STAGES[c] + rng.normal(0, 0.08), 0, 1)) for c in channels}
    reach = {c: float(rng.uniform(0.03, 0.3)) for c in channels}
    causes: dict[tuple[str, str], float] = {}
    for _ in range(int(rng.integers(0, 6))):
        cause, effect = (str(c) for c in rng.choice(channels, size=2, replace=False))
        if stage[cause] > stage[effect]:
            cause, effect = effect, cause
        causes[(cause, effect)] = float(rng.uniform(0.1, 0.6))
    return World(
        name=f"random_{seed}",
        reach=reach,
        stage=stage,
        causes=causes,
        touches_per_exposure={c: float(rng.uniform(1.0, 3.0)) for c in channels},
        deal_effect={c: float(rng.normal(0.3, 0.4)) for c in channels},
        win_effect={c: float(rng.normal(0.0, 0.25)) for c in channels},
        size_effect={c: float(rng.normal(0.0, 0.15)) for c in channels},
        base_deal_logit=float(rng.uniform(-3.5, -2.0)),
        base_win_logit=float(rng.uniform(-1.5, 0.0)),
        base_amount=float(rng.choice([12_000.0, 30_000.0, 80_000.0])),
        last_touch_only=bool(rng.random() < 0.2),
        noise_touches=float(rng.uniform(0.0, 2.0)),
        cost_per_touch={c: _COSTS[c] for c in channels if c in _COSTS},
    )


# -- the draws and the deterministic outcome function ----------------------------------------


@dataclass(frozen=True, eq=False)
class Draws:
    """Every random number the world uses, drawn up front (one row per account).

    Matrices have one row per channel of :data:`CHANNELS` (all of them, whatever the
    world) and one column per account, so the same seed gives the same draws for any world with
    the same account count.
    Per-touch details are not here: they are hashed from ``seed`` and the touch's identity.
    """

    seed: int
    n_accounts: int
    total_minutes: float  # the export window's length
    engagement_u: np.ndarray  # (n,) uniform, turned into a Gamma engagement by the world
    group_u: np.ndarray  # (n,) uniform -> buying-group size
    journey_u: np.ndarray  # (n,) uniform -> journey length
    start_u: np.ndarray  # (n,) uniform -> journey start
    created_u: np.ndarray  # (n,) uniform -> days from journey end to deal creation
    cycle_u: np.ndarray  # (n,) uniform -> sales cycle
    organic_u: np.ndarray  # (C, n) uniform: exposed on its own when below the reach
    stage_z: np.ndarray  # (C, n) standard normal: position around the channel's stage
    spread_e: np.ndarray  # (C, n) standard exponential: first-to-last touch of an exposure
    extra_u: np.ndarray  # (C, n) uniform -> extra touches of an exposure (Poisson)
    delay_e: np.ndarray  # (C, n) standard exponential: delay of a caused exposure
    deal_u: np.ndarray  # (n,) uniform: a deal is created when below its probability
    win_u: np.ndarray  # (n,) uniform: the deal is won when below its probability
    amount_z: np.ndarray  # (n,) standard normal: log-amount noise
    noise_u: np.ndarray  # (n,) uniform -> number of noise touches (Poisson)
    #: (n,) the original account of each column (``None``: column i is account i); set by
    #: :meth:`take`, so hashed draws (cause firings) follow the account, not the column
    account_index: np.ndarray | None = None

    def cause_uniform(self, cause: str, effect: str) -> np.ndarray:
        """The (n,) uniforms deciding whether ``cause`` causes ``effect`` at each account."""
        pair = CHANNELS.index(cause) * len(CHANNELS) + CHANNELS.index(effect)
        keys = np.arange(self.n_accounts) if self.account_index is None else self.account_index
        return _hash_uniform(self.seed, _STREAM_CAUSE + pair, keys)

    def take(self, accounts: np.ndarray) -> Draws:
        """The draws of ``accounts`` (indices, repeats allowed), one column each, in that order.

        A column repeated with different :func:`realise` ``present`` masks plays the same
        account in several counterfactual worlds at once.
        """
        accounts = np.asarray(accounts, dtype=np.int64)
        original = accounts if self.account_index is None else self.account_index[accounts]
        columns = {
            item.name: getattr(self, item.name)[..., accounts]
            for item in dataclasses.fields(self)
            if item.name.endswith(("_u", "_z", "_e"))
        }
        return Draws(
            seed=self.seed,
            n_accounts=int(accounts.size),
            total_minutes=self.total_minutes,
            account_index=original,
            **columns,
        )


def draw(n_accounts: int, *, seed: int = 0, days: int = 365) -> Draws:
    """Draw every per-account random number of a simulation (see :class:`Draws`)."""
    if n_accounts < 0:
        raise ConfigError(f"n_accounts must be >= 0, not {n_accounts}")
    if days < 7:
        raise ConfigError(f"days must be at least 7, not {days}")
    rng = np.random.default_rng(seed)
    n, width = n_accounts, len(CHANNELS)
    return Draws(
        seed=seed,
        n_accounts=n,
        total_minutes=days * _MINUTES_PER_DAY,
        engagement_u=rng.random(n),
        group_u=rng.random(n),
        journey_u=rng.random(n),
        start_u=rng.random(n),
        created_u=rng.random(n),
        cycle_u=rng.random(n),
        organic_u=rng.random((width, n)),
        stage_z=rng.standard_normal((width, n)),
        spread_e=rng.standard_exponential((width, n)),
        extra_u=rng.random((width, n)),
        delay_e=rng.standard_exponential((width, n)),
        deal_u=rng.random(n),
        win_u=rng.random(n),
        amount_z=rng.standard_normal(n),
        noise_u=rng.random(n),
    )


@dataclass(frozen=True, eq=False)
class Outcomes:
    """What the world does with its draws (see :func:`realise`); times in minutes."""

    exposed: np.ndarray  # (C, n) bool: the buying group saw the channel
    first_touch: np.ndarray  # (C, n) minutes of the exposure's first touch (inf if none)
    last_touch: np.ndarray  # (C, n) minutes of the exposure's last touch (-inf if none)
    n_touches: np.ndarray  # (C, n) touches of each exposure (0 if not exposed)
    group_size: np.ndarray  # (n,) 1..8
    journey_start: np.ndarray  # (n,) minutes
    journey_end: np.ndarray  # (n,) minutes
    created: np.ndarray  # (n,) minutes the deal is (or would be) created
    closed: np.ndarray  # (n,) minutes it closes (may lie after the window: then open)
    has_deal: np.ndarray  # (n,) bool
    won: np.ndarray  # (n,) bool (meaningful where has_deal and closed inside the window)
    amount_cents: np.ndarray  # (n,) int64
    total_minutes: float

    @property
    def is_closed(self) -> np.ndarray:
        return self.has_deal & (self.closed < self.total_minutes)

    @property
    def revenue_cents(self) -> int:
        """Won revenue inside the window, in cents."""
        return int(self.amount_cents[self.is_closed & self.won].sum())


def _effect(world: World, kind: str) -> np.ndarray:
    """The world's ``kind`` effects as a vector over :data:`CHANNELS` (0 where absent)."""
    mapping: Mapping[str, float] = getattr(world, kind)
    return np.array([float(mapping.get(c, 0.0)) if c in world.reach else 0.0 for c in CHANNELS])


def realise(
    world: World,
    draws: Draws,
    removed: Collection[str] = (),
    *,
    present: np.ndarray | None = None,
) -> Outcomes:
    """Turn draws into exposures and outcomes, with the ``removed`` channels switched off.

    Exposures are computed in causal order: a channel is exposed when its own draw is below
    its (engagement-scaled) reach, or when an exposed cause fires (its uniform below the
    cause probability); a caused exposure starts ``cause_delay_days`` (exponential) after the
    earliest firing cause's first touch. Removing a channel removes its exposures and every
    exposure that only it caused; every draw stays as it was.

    ``present``, a ``(len(CHANNELS), n_accounts)`` boolean mask, switches channels off per
    account (where it is false) on top of ``removed``: with :meth:`Draws.take` it evaluates
    many coalitions of channels in one vectorised call.

    >>> world, draws = scenario("brand_drives_search"), draw(1000, seed=4)
    >>> realise(world, draws).exposed.shape
    (14, 1000)
    """
    removed = tuple(removed)
    for channel in removed:
        _check_channel(channel, "removed")
    if present is not None:
        present = np.asarray(present, dtype=bool)
        if present.shape != (len(CHANNELS), draws.n_accounts):
            raise ConfigError(
                f"present must have shape {(len(CHANNELS), draws.n_accounts)}, not {present.shape}"
            )
    return _realise(world, draws, _accounts(world, draws), removed, present=present)


@dataclass(frozen=True, eq=False)
class _Accounts:
    """Per-account quantities that no channel removal changes (minutes)."""

    start: np.ndarray
    end: np.ndarray
    created: np.ndarray
    closed: np.ndarray
    group_size: np.ndarray
    engagement: np.ndarray


def _accounts(world: World, draws: Draws) -> _Accounts:
    total, day = draws.total_minutes, _MINUTES_PER_DAY
    # journeys fit inside the window; the deal comes 0-3 days after the journey ends
    shortest, longest = world.journey_days
    longest_fit = max(1.0, min(float(longest), 0.8 * total / day - 3.0))
    shortest_fit = min(float(shortest), longest_fit)
    length = (shortest_fit + draws.journey_u * (longest_fit - shortest_fit)) * day
    start = np.floor(draws.start_u * (total - 3 * day - length))
    end = start + length
    created = end + np.floor(draws.created_u * 3 * day)
    cycle_low, cycle_high = world.sales_cycle_days
    closed = created + np.floor((cycle_low + draws.cycle_u * (cycle_high - cycle_low)) * day)
    weights = np.asarray(world.buying_group_weights, dtype=float)
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0
    group_size = np.minimum(np.searchsorted(cumulative, draws.group_u, side="right") + 1, 8)
    if math.isinf(world.engagement_shape):
        engagement = np.ones(draws.n_accounts)
    else:
        shape = world.engagement_shape
        engagement = gammaincinv(shape, draws.engagement_u) / shape
    return _Accounts(start, end, created, closed, group_size.astype(np.int64), engagement)


def _realise(
    world: World,
    draws: Draws,
    accounts: _Accounts,
    removed: tuple[str, ...],
    reuse: tuple[Outcomes, Collection[str]] | None = None,
    present: np.ndarray | None = None,
) -> Outcomes:
    """:func:`realise` on prepared accounts; ``reuse=(outcomes, channels)`` copies every
    channel from ``outcomes`` except ``channels`` (those a removal can change); ``present``
    switches channels off per account where false."""
    n, width, day = draws.n_accounts, len(CHANNELS), _MINUTES_PER_DAY
    start, end = accounts.start, accounts.end
    if reuse is None:
        exposed = np.zeros((width, n), dtype=bool)
        first = np.full((width, n), np.inf)
        last = np.full((width, n), -np.inf)
        n_touches = np.zeros((width, n), dtype=np.int64)
        redo = set(world.channels)
    else:
        exposed, first, last, n_touches = (
            reuse[0].exposed.copy(),
            reuse[0].first_touch.copy(),
            reuse[0].last_touch.copy(),
            reuse[0].n_touches.copy(),
        )
        redo = set(reuse[1])
    parents: dict[str, list[str]] = {}
    for cause, effect in world.causes:
        parents.setdefault(effect, []).append(cause)
    removed_set = set(removed)
    span = np.maximum(end - start - 1.0, 0.0)
    for channel in world.causal_order():
        if channel not in redo:
            continue
        row = CHANNELS.index(channel)
        if channel in removed_set:
            exposed[row], first[row], last[row], n_touches[row] = False, np.inf, -np.inf, 0
            continue
        reach = float(world.reach[channel])
        own_reach = 1.0 - np.power(1.0 - reach, accounts.engagement) if reach < 1.0 else 1.0
        organic = draws.organic_u[row] < own_reach
        position = np.clip(world.stage[channel] + world.stage_spread * draws.stage_z[row], 0, 1)
        organic_time = np.where(organic, start + np.floor(position * span), np.inf)
        cause_time = np.full(n, np.inf)
        for cause in sorted(parents.get(channel, ()), key=CHANNELS.index):
            if cause in removed_set:
                continue
            cause_row = CHANNELS.index(cause)
            fires = exposed[cause_row] & (
                draws.cause_uniform(cause, channel) < world.causes[(cause, channel)]
            )
            cause_time = np.where(fires, np.minimum(cause_time, first[cause_row]), cause_time)
        delay = np.floor(world.cause_delay_days * day * draws.delay_e[row])
        caused_time = np.where(
            np.isfinite(cause_time), np.minimum(cause_time + delay, end - 1.0), np.inf
        )
        first_time = np.minimum(organic_time, caused_time)
        if present is not None:
            first_time = np.where(present[row], first_time, np.inf)
        is_exposed = np.isfinite(first_time)
        mean_touches = float(world.touches_per_exposure.get(channel, 1.0))
        extra = _poisson_quantile(draws.extra_u[row], max(mean_touches - 1.0, 0.0))
        count = np.where(is_exposed, 1 + extra, 0)
        gap = np.floor(world.touch_spread_days * day * draws.spread_e[row])
        last_time = np.where(count > 1, np.minimum(first_time + gap, end - 1.0), first_time)
        exposed[row] = is_exposed
        first[row] = first_time
        last[row] = np.where(is_exposed, last_time, -np.inf)
        n_touches[row] = count

    if world.last_touch_only:
        touched = exposed.any(axis=0)
        last_channel = np.argmax(last, axis=0)  # ties: the first channel in CHANNELS order
        effective = np.zeros((width, n))
        effective[last_channel[touched], np.flatnonzero(touched)] = 1.0
    else:
        effective = exposed.astype(float)
    deal_logit = world.base_deal_logit + _effect(world, "deal_effect") @ effective
    if world.intent_effect:
        # capped: a Gamma tail of engagement would otherwise make a few accounts certain buyers
        deal_logit = deal_logit + world.intent_effect * (np.minimum(accounts.engagement, 4.0) - 1.0)
    win_logit = world.base_win_logit + _effect(world, "win_effect") @ effective
    log_size = world.amount_sigma * draws.amount_z + _effect(world, "size_effect") @ effective
    amount_usd = np.maximum(np.round(world.base_amount * np.exp(log_size) / 50.0) * 50.0, 1000.0)
    return Outcomes(
        exposed=exposed,
        first_touch=first,
        last_touch=last,
        n_touches=n_touches,
        group_size=accounts.group_size,
        journey_start=start,
        journey_end=end,
        created=accounts.created,
        closed=accounts.closed,
        has_deal=draws.deal_u < expit(deal_logit),
        won=draws.win_u < expit(win_logit),
        amount_cents=(amount_usd * 100).astype(np.int64),
        total_minutes=draws.total_minutes,
    )


def _poisson_quantile(u: np.ndarray, mean: float) -> np.ndarray:
    """Poisson(mean) by inversion of the uniforms ``u`` (vectorised, capped)."""
    if mean <= 0:
        return np.zeros(u.shape, dtype=np.int64)
    cap = _MAX_TOUCHES_PER_EXPOSURE
    ks = np.arange(cap)
    pmf = np.exp(ks * math.log(mean) - mean - np.array([math.lgamma(k + 1) for k in ks]))
    cdf = np.cumsum(pmf)
    return np.minimum(np.searchsorted(cdf, u, side="right"), cap - 1).astype(np.int64)


# -- counter-based hashing for per-touch details ---------------------------------------------

_MASK = (1 << 64) - 1
_STREAM_CAUSE = 1_000
_STREAM_POSITION = 1
_STREAM_CONTACT = 2
_STREAM_SOURCE = 3
_STREAM_CAMPAIGN = 4
_STREAM_FORM = 5
_STREAM_BLANK = 6
_STREAM_NOISE_CHANNEL = 7
_STREAM_NOISE_TIME = 8
_STREAM_LEAD = 9
_STREAM_SPEND = 10
_STREAM_SECOND = 11


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash_uniform(seed: int, stream: int, keys: np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1) that depend only on (seed, stream, key): stable per touch identity."""
    salt = _splitmix(np.array([seed & _MASK, stream], dtype=np.uint64))
    salt = _splitmix(salt[:1] ^ (salt[1:] * np.uint64(0x9E3779B97F4A7C15)))
    mixed = _splitmix(keys.astype(np.uint64) ^ salt[0])
    # 52 random mantissa bits under the exponent of 1.0 give a double in [1, 2)
    unit = (mixed >> np.uint64(12)) | np.uint64(0x3FF0000000000000)
    return unit.view(np.float64) - 1.0


# -- the export -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SimulatedExport:
    """What :func:`simulate` returns: the four export tables plus what ground truth needs.

    The tables hold strings exactly as they are written out (ISO-8601 UTC timestamps,
    amounts as decimal strings with two decimals, empty cells as null), so deliberate bad
    rows (``messy=True``) can sit among the good ones.

    Attributes
    ----------
    touchpoints, deals, contacts, spend
        The export tables (see the module's column lists).
    world, draws, removed, start
        The world, its pre-drawn random numbers, the channels switched off, and the window's
        first day: :func:`ground_truth` recomputes outcomes from them.
    defects
        One row per deliberate bad row (``input, row, key, defect, column, value``); ``row``
        is the 1-based data row in the written file. Empty unless ``messy``.
    """

    touchpoints: pl.DataFrame
    deals: pl.DataFrame
    contacts: pl.DataFrame
    spend: pl.DataFrame
    world: World
    draws: Draws
    removed: tuple[str, ...]
    start: date
    defects: pl.DataFrame

    def tables(self) -> dict[str, pl.DataFrame]:
        """The four export tables by name."""
        return {
            "touchpoints": self.touchpoints,
            "deals": self.deals,
            "contacts": self.contacts,
            "spend": self.spend,
        }

    def outcomes(self, removed: Collection[str] = ()) -> Outcomes:
        """The world's outcomes with ``removed`` (and this export's removed channels) off."""
        return realise(self.world, self.draws, tuple(self.removed) + tuple(removed))


TOUCHPOINT_OUTPUT = (
    "touchpoint_id",
    "timestamp",
    "contact_id",
    "account_id",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "touch_type",
)
# money: keep names from here (a file's column)
DEAL_OUTPUT = ("deal_id", "account_id", "created_at", "closed_at", "status", "amount", "currency")
# money: keep names to here
CONTACT_OUTPUT = ("contact_id", "account_id", "lead_created_at")
SPEND_OUTPUT = ("channel", "period_start", "period_end", "amount", "currency")  # money: keep name
DEFECT_SCHEMA = pl.Schema(
    {
        "input": pl.String,
        "row": pl.Int64,
        "key": pl.String,
        "defect": pl.String,
        "column": pl.String,
        "value": pl.String,
    }
)


def simulate(
    n_accounts: int,
    *,
    seed: int = 0,
    world: World | None = None,
    start: date = date(2025, 1, 1),
    days: int = 365,
    messy: bool = False,
    removed: Collection[str] = (),
) -> SimulatedExport:
    """Simulate a B2B export of ``n_accounts`` accounts over ``days`` days from ``start``.

    Parameters
    ----------
    n_accounts
        Accounts in the market. Accounts with neither a touch nor a deal appear nowhere.
    seed
        Same seed and arguments give byte-identical written files.
    world
        The causal structure; ``scenario("baseline")`` when omitted.
    start, days
        The export window: every timestamp lies in ``[start, start + days)``.
    messy
        Add a handful of deliberate bad rows (listed in ``defects`` and the demo README).
    removed
        Channels switched off: the counterfactual export, every other draw held fixed.

    Returns
    -------
    SimulatedExport

    Examples
    --------
    >>> export = simulate(300, seed=7, world=scenario("brand_drives_search"))
    >>> export.deals.columns
    ['deal_id', 'account_id', 'created_at', 'closed_at', 'status', 'amount', 'currency']
    """
    world = world if world is not None else scenario("baseline")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, not {seed}")
    draws = draw(n_accounts, seed=seed, days=days)
    removed = tuple(removed)
    outcomes = realise(world, draws, removed)
    origin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    epoch_seconds = int(origin.timestamp())
    digits = max(6, len(str(n_accounts)))

    touches = _touch_frame(world, draws, outcomes, removed)
    contacts = _contact_output(draws, outcomes, touches, epoch_seconds, digits)
    touchpoints = _touchpoint_output(touches, epoch_seconds, digits)
    deals = _deal_output(outcomes, epoch_seconds, digits)
    spend = _spend_output(world, touches, seed, start, days)
    defects = pl.DataFrame(schema=DEFECT_SCHEMA)
    if messy:
        touchpoints, deals, defects = _add_defects(touchpoints, deals, contacts, seed, start)
    return SimulatedExport(
        touchpoints=touchpoints,
        deals=deals,
        contacts=contacts,
        spend=spend,
        world=world,
        draws=draws,
        removed=removed,
        start=start,
        defects=defects,
    )


_FORM_FILL = len(CHANNELS)  # the touch-type index of a form fill
_TOUCH_TYPES = tuple(_TOUCH_TYPE[c] for c in CHANNELS) + ("form_fill",)


def _touch_frame(
    world: World, draws: Draws, outcomes: Outcomes, removed: tuple[str, ...]
) -> pl.DataFrame:
    """One row per touch, causal and noise, in time order.

    Columns: ``account``, ``contact`` (global contact index), ``channel`` (index into
    :data:`CHANNELS`), ``key`` (the touch's identity, hashed for its details), ``second``
    (since the window's start), ``source`` / ``campaign`` (index of the choice within the
    channel), ``form_fill`` and ``blank_account``.
    """
    n, width = draws.n_accounts, len(CHANNELS)
    seed = draws.seed
    # causal touches: expand each exposure into its touches
    counts = outcomes.n_touches.ravel()
    cells = np.flatnonzero(counts)
    per_cell = counts[cells]
    cell = np.repeat(cells, per_cell)
    offsets = np.cumsum(per_cell) - per_cell
    k = np.arange(cell.size, dtype=np.int64) - np.repeat(offsets, per_cell)
    account = cell % n
    channel = cell // n
    key = cell * _MAX_TOUCHES_PER_EXPOSURE + k
    first = outcomes.first_touch.ravel()[cell]
    last = outcomes.last_touch.ravel()[cell]
    n_of = np.repeat(per_cell, per_cell)
    position = np.where(
        k == 0, 0.0, np.where(k == n_of - 1, 1.0, _hash_uniform(seed, _STREAM_POSITION, key))
    )
    minute = first + np.floor(position * (last - first))

    # noise touches: no effect on anything, from the journey's start to the deal's close;
    # only accounts with a causal exposure have them (they go when a removal leaves none)
    touched = outcomes.exposed.any(axis=0)
    noise_count = np.where(
        touched,
        np.minimum(_poisson_quantile(draws.noise_u, world.noise_touches), _MAX_NOISE_TOUCHES - 1),
        0,
    )
    noise_account = np.repeat(np.arange(n, dtype=np.int64), noise_count)
    noise_offsets = np.cumsum(noise_count) - noise_count
    noise_j = np.arange(noise_account.size, dtype=np.int64) - np.repeat(noise_offsets, noise_count)
    noise_key = n * width * _MAX_TOUCHES_PER_EXPOSURE + noise_account * _MAX_NOISE_TOUCHES + noise_j
    noise_names = [c for c in CHANNELS if world.noise_channels.get(c, 0.0) > 0]
    if noise_names and noise_key.size:
        weights = np.array([world.noise_channels[c] for c in noise_names], dtype=float)
        cumulative = np.cumsum(weights / weights.sum())
        cumulative[-1] = 1.0
        pick = np.searchsorted(
            cumulative, _hash_uniform(seed, _STREAM_NOISE_CHANNEL, noise_key), side="right"
        )
        noise_channel = np.array([CHANNELS.index(c) for c in noise_names])[pick]
    else:
        noise_channel = np.zeros(noise_key.size, dtype=np.int64)
    # (the would-be close, whether or not a deal exists: noise never depends on outcomes)
    activity_end = np.minimum(outcomes.closed, outcomes.total_minutes - 1.0)
    noise_start = outcomes.journey_start[noise_account]
    noise_minute = noise_start + np.floor(
        _hash_uniform(seed, _STREAM_NOISE_TIME, noise_key)
        * (activity_end[noise_account] - noise_start)
    )
    keep = ~np.isin(noise_channel, [CHANNELS.index(c) for c in removed])

    account = np.concatenate([account, noise_account[keep]])
    channel = np.concatenate([channel, noise_channel[keep]])
    key = np.concatenate([key, noise_key[keep]])
    minute = np.concatenate([minute, noise_minute[keep]])
    second = (minute * 60).astype(np.int64) + np.floor(
        _hash_uniform(seed, _STREAM_SECOND, key) * 60
    ).astype(np.int64)
    group_offset = np.cumsum(outcomes.group_size) - outcomes.group_size
    contact = group_offset[account] + np.floor(
        _hash_uniform(seed, _STREAM_CONTACT, key) * outcomes.group_size[account]
    ).astype(np.int64)
    n_sources = np.array([len(CHANNEL_UTMS[c][0]) for c in CHANNELS])[channel]
    n_campaigns = np.array([max(len(_CAMPAIGNS[c]), 1) for c in CHANNELS])[channel]
    web = np.array([c in _WEB_CHANNELS for c in CHANNELS])[channel]
    return pl.DataFrame(
        {
            "account": account.astype(np.int64),
            "contact": contact.astype(np.int64),
            "channel": channel.astype(np.int64),
            "key": key.astype(np.int64),
            "second": second,
            "source": np.floor(_hash_uniform(seed, _STREAM_SOURCE, key) * n_sources).astype(
                np.int64
            ),
            "campaign": np.floor(_hash_uniform(seed, _STREAM_CAMPAIGN, key) * n_campaigns).astype(
                np.int64
            ),
            "form_fill": web & (_hash_uniform(seed, _STREAM_FORM, key) < _FORM_FILL_RATE),
            "blank_account": _hash_uniform(seed, _STREAM_BLANK, key) < ACCOUNT_ID_BLANK_RATE,
        }
    ).sort("second", "key")


def _ids(prefix: str, numbers: pl.Expr, digits: int) -> pl.Expr:
    return pl.lit(prefix) + numbers.cast(pl.String).str.zfill(digits)


def _iso(seconds: pl.Expr, epoch_seconds: int) -> pl.Expr:
    return (
        pl.from_epoch(seconds + epoch_seconds, time_unit="s")
        .dt.replace_time_zone("UTC")
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def _lookup(names: Iterable[str | None], index: pl.Expr) -> pl.Expr:
    """The ``index``-th of a small list of names, as a string column."""
    return pl.lit(pl.Series(list(names), dtype=pl.String)).get(index)


def _cents_text(cents: pl.Expr) -> pl.Expr:
    """Non-negative integer cents as a decimal string with two decimals (``48250.00``)."""
    return (cents // 100).cast(pl.String) + "." + (cents % 100).cast(pl.String).str.zfill(2)


def _touchpoint_output(touches: pl.DataFrame, epoch_seconds: int, digits: int) -> pl.DataFrame:
    """The ``touchpoints`` table, numbered in time order."""
    max_sources = max(len(s) for s, _ in CHANNEL_UTMS.values())
    max_campaigns = max(len(c) for c in _CAMPAIGNS.values())
    sources: list[str | None] = []
    campaigns: list[str | None] = []
    for name in CHANNELS:
        choices = CHANNEL_UTMS[name][0]
        sources += list(choices) + [None] * (max_sources - len(choices))
        named: list[str | None] = list(_CAMPAIGNS[name]) or [None]
        campaigns += named + [None] * (max_campaigns - len(named))
    id_digits = max(digits + 2, len(str(touches.height)))
    return touches.with_row_index("row", offset=1).select(
        _ids("T", pl.col("row"), id_digits).alias("touchpoint_id"),
        _iso(pl.col("second"), epoch_seconds).alias("timestamp"),
        _ids("C", pl.col("contact") + 1, digits + 1).alias("contact_id"),
        pl.when(pl.col("blank_account"))
        .then(pl.lit(None, dtype=pl.String))
        .otherwise(_ids("A", pl.col("account") + 1, digits))
        .alias("account_id"),
        _lookup(sources, pl.col("channel") * max_sources + pl.col("source")).alias("utm_source"),
        _lookup([CHANNEL_UTMS[c][1] for c in CHANNELS], pl.col("channel")).alias("utm_medium"),
        _lookup(campaigns, pl.col("channel") * max_campaigns + pl.col("campaign")).alias(
            "utm_campaign"
        ),
        _lookup(
            _TOUCH_TYPES, pl.when(pl.col("form_fill")).then(_FORM_FILL).otherwise(pl.col("channel"))
        ).alias("touch_type"),
    )


def _contact_output(
    draws: Draws, outcomes: Outcomes, touches: pl.DataFrame, epoch_seconds: int, digits: int
) -> pl.DataFrame:
    """The ``contacts`` table: the buying group of every account with a touch or a deal.

    ``lead_created_at`` is the contact's first form fill; else a few days (exponential, mean
    3) after its first touch; for an untouched contact of an account with a deal, up to two
    weeks before the deal (a sales-sourced lead); otherwise empty.
    """
    visible = outcomes.exposed.any(axis=0) | outcomes.has_deal
    accounts = np.flatnonzero(visible)
    sizes = outcomes.group_size[accounts]
    account = np.repeat(accounts, sizes)
    offsets = np.cumsum(outcomes.group_size) - outcomes.group_size
    member = np.arange(account.size, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    contact = offsets[account] + member
    lead_u = _hash_uniform(draws.seed, _STREAM_LEAD, contact)
    last_second = int(draws.total_minutes * 60) - 1
    sales_sourced = np.where(
        outcomes.has_deal[account],
        np.maximum(outcomes.created[account] - np.floor(lead_u * 14 * _MINUTES_PER_DAY), 0) * 60,
        np.nan,
    )
    first_seen = touches.group_by("contact").agg(
        pl.col("second").min().alias("first_touch"),
        pl.col("second").filter(pl.col("form_fill")).min().alias("first_form"),
    )
    return (
        pl.DataFrame(
            {
                "contact": contact.astype(np.int64),
                "account": account.astype(np.int64),
                "delay": np.floor(-np.log1p(-lead_u) * 3 * _MINUTES_PER_DAY * 60).astype(np.int64),
                "sales_sourced": sales_sourced,
            }
        )
        .join(first_seen, on="contact", how="left", maintain_order="left")
        .select(
            _ids("C", pl.col("contact") + 1, digits + 1).alias("contact_id"),
            _ids("A", pl.col("account") + 1, digits).alias("account_id"),
            _iso(
                pl.coalesce(
                    pl.col("first_form"),
                    pl.when(pl.col("first_touch").is_not_null()).then(
                        pl.min_horizontal(pl.col("first_touch") + pl.col("delay"), last_second)
                    ),
                    pl.col("sales_sourced").fill_nan(None).cast(pl.Int64),
                ),
                epoch_seconds,
            ).alias("lead_created_at"),
        )
    )


def _deal_output(outcomes: Outcomes, epoch_seconds: int, digits: int) -> pl.DataFrame:
    """The ``deals`` table: one deal per account that created one, numbered by creation."""
    accounts = np.flatnonzero(outcomes.has_deal)
    closed = outcomes.is_closed[accounts]
    frame = pl.DataFrame(
        {
            "account": accounts.astype(np.int64),
            "created": (outcomes.created[accounts] * 60).astype(np.int64),
            "closed": np.where(closed, outcomes.closed[accounts] * 60, 0).astype(np.int64),
            "is_closed": closed,
            "won": outcomes.won[accounts],
            "cents": outcomes.amount_cents[accounts],
        }
    ).sort("created", "account")
    return frame.with_row_index("row", offset=1).select(
        _ids("D", pl.col("row"), digits).alias("deal_id"),
        _ids("A", pl.col("account") + 1, digits).alias("account_id"),
        _iso(pl.col("created"), epoch_seconds).alias("created_at"),
        pl.when(pl.col("is_closed"))
        .then(_iso(pl.col("closed"), epoch_seconds))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("closed_at"),
        pl.when(~pl.col("is_closed"))
        .then(pl.lit("open"))
        .when(pl.col("won"))
        .then(pl.lit("won"))
        .otherwise(pl.lit("lost"))
        .alias("status"),
        _cents_text(pl.col("cents")).alias("amount"),  # money: keep name
        pl.lit("USD").alias("currency"),
    )


def _months(start: date, days: int) -> list[tuple[date, date]]:
    """Whole calendar months overlapping ``[start, start + days)``: (first day, last day)."""
    last_day = start + timedelta(days=days - 1)
    months = []
    year, month = start.year, start.month
    while date(year, month, 1) <= last_day:
        following = date(year + month // 12, month % 12 + 1, 1)
        months.append((date(year, month, 1), following - timedelta(days=1)))
        year, month = following.year, following.month
    return months


def _spend_output(
    world: World, touches: pl.DataFrame, seed: int, start: date, days: int
) -> pl.DataFrame:
    """Monthly spend per paid channel: touches in the month x cost per touch x (0.85-1.15)."""
    paid = [c for c in world.channels if world.cost_per_touch.get(c, 0.0) > 0]
    months = _months(start, days)
    origin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    month_starts = np.array(
        [
            (datetime(m.year, m.month, m.day, tzinfo=UTC) - origin).total_seconds()
            for m, _ in months[1:]
        ],
        dtype=np.int64,
    )
    month = np.searchsorted(month_starts, touches["second"].to_numpy(), side="right")
    counts = (
        pl.DataFrame({"channel": touches["channel"], "month": month})
        .group_by("channel", "month")
        .len()
    )
    count_of = {(c, m): v for c, m, v in counts.iter_rows()}
    rows = []
    for channel in paid:
        index = CHANNELS.index(channel)
        cost_cents = world.cost_per_touch[channel] * 100
        jitter = _hash_uniform(seed, _STREAM_SPEND, index * 10_000 + np.arange(len(months)))
        for m, (first_day, last_day) in enumerate(months):
            cents = round(count_of.get((index, m), 0) * cost_cents * (0.85 + 0.3 * jitter[m]))
            rows.append((channel, first_day.isoformat(), last_day.isoformat(), cents))
    frame = pl.DataFrame(
        rows,
        schema={
            "channel": pl.String,
            "period_start": pl.String,
            "period_end": pl.String,
            "cents": pl.Int64,
        },
        orient="row",
    )
    return frame.select(
        "channel",
        "period_start",
        "period_end",
        _cents_text(pl.col("cents")).alias("amount"),  # money: keep name
        pl.lit("USD").alias("currency"),
    )


# -- deliberate bad rows ------------------------------------------------------------------------


def _shift_iso(text: str, minutes: int = 0, offset_hours: int | None = 0) -> str:
    """Re-write an ISO UTC timestamp: moved by ``minutes``, shown at ``offset_hours`` (None:
    no zone at all)."""
    instant = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    instant += timedelta(minutes=minutes)
    if offset_hours is None:
        return instant.strftime("%Y-%m-%dT%H:%M:%S")
    if offset_hours == 0:
        return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    local = instant.astimezone(timezone(timedelta(hours=offset_hours)))
    return local.isoformat()


def _insert_rows(
    frame: pl.DataFrame, extra: list[tuple[int, dict[str, str | None], str]]
) -> pl.DataFrame:
    """Insert ``(before_row, row, tag)`` rows; existing rows get a null ``_tag`` unless set."""
    if "_tag" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("_tag"))
    order = frame.with_columns(pl.int_range(pl.len()).cast(pl.Float64).alias("_order"))
    added = pl.DataFrame(
        [
            row | {"_tag": tag, "_order": before - 0.5 + i * 1e-3}
            for i, (before, row, tag) in enumerate(extra)
        ],
        schema=order.schema,
        orient="row",
    )
    return pl.concat([order, added]).sort("_order").drop("_order")


def _add_defects(
    touchpoints: pl.DataFrame,
    deals: pl.DataFrame,
    contacts: pl.DataFrame,
    seed: int,
    start: date,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Add the deliberate bad rows that ``messy=True`` promises (see fixtures/demo/README.md).

    Extra rows are *added* (the clean rows all stay), except the zone-format defects, which
    re-write existing good rows to the same instant in another notation.
    """
    if touchpoints.height < 10 or deals.height < 2 or contacts.height < 1:
        raise ConfigError(
            "messy=True needs at least 10 touchpoints, 2 deals and a contact; "
            f"got {touchpoints.height}, {deals.height} and {contacts.height}: add accounts"
        )
    rng = np.random.default_rng([seed, 0xBAD])
    n_touch, n_deal = touchpoints.height, deals.height
    touch_digits = len(touchpoints["touchpoint_id"][0]) - 1
    deal_digits = len(deals["deal_id"][0]) - 1
    contact_digits = len(contacts["contact_id"][0]) - 1
    picks = rng.choice(n_touch, size=8, replace=False).tolist()
    rows = touchpoints.to_dicts()

    def new_touch_id(i: int) -> str:
        return "T" + str(n_touch + i).zfill(touch_digits)

    # zone notations: same instant, other spelling (should be accepted and converted)
    tags: list[str | None] = [None] * n_touch
    timestamps = touchpoints["timestamp"].to_list()
    for i in picks[:2]:
        timestamps[i] = _shift_iso(timestamps[i], offset_hours=2)
        tags[i] = "offset_timestamp"
    for i in picks[2:4]:
        timestamps[i] = _shift_iso(timestamps[i], offset_hours=None)
        tags[i] = "naive_timestamp"
    touchpoints = touchpoints.with_columns(
        pl.Series("timestamp", timestamps, dtype=pl.String),
        pl.Series("_tag", tags, dtype=pl.String),
    )
    ad_clicks = np.flatnonzero((touchpoints["touch_type"] == "ad_click").to_numpy())
    clicked = int(ad_clicks[rng.integers(ad_clicks.size)]) if ad_clicks.size else picks[4]
    extra_touches: list[tuple[int, dict[str, str | None], str]] = [
        (
            int(rng.integers(n_touch)),
            rows[picks[4]]
            | {"touchpoint_id": new_touch_id(1), "timestamp": f"{start.year}-02-30T09:15:00Z"},
            "unparseable_timestamp",
        ),
        (
            int(rng.integers(n_touch)),
            rows[picks[5]]
            | {
                "touchpoint_id": new_touch_id(2),
                "contact_id": "C" + "9" * contact_digits,
                "account_id": None,
            },
            "unknown_contact",
        ),
        (
            int(rng.integers(n_touch)),
            rows[picks[6]]
            | {
                "touchpoint_id": new_touch_id(3),
                "utm_source": "tiktok",
                "utm_medium": "influencer",
                "utm_campaign": "creator-collab",
                "touch_type": "ad_click",
            },
            "unmapped_utm",
        ),
        (
            clicked + 1,
            rows[clicked]
            | {
                "touchpoint_id": new_touch_id(4),
                "timestamp": _shift_iso(rows[clicked]["timestamp"], minutes=2),
            },
            "repeated_click",
        ),
    ]
    touchpoints = _insert_rows(touchpoints, extra_touches)

    deal_rows = deals.to_dicts()
    dealt = set(deals["account_id"].to_list())
    free = [a for a in dict.fromkeys(contacts["account_id"].to_list()) if a not in dealt]
    free = free or list(dict.fromkeys(contacts["account_id"].to_list()))
    first_free, second_free = free[0], free[min(1, len(free) - 1)]
    duplicated = int(rng.integers(n_deal))
    template = deal_rows[int(rng.integers(n_deal))]
    extra_deals: list[tuple[int, dict[str, str | None], str]] = [
        (
            int(rng.integers(n_deal)),
            template
            | {
                "deal_id": "D" + str(n_deal + 1).zfill(deal_digits),
                "account_id": first_free,
                "status": "lost",
                "amount": "-12500.00",  # money: keep name
            },
            "negative_amount",
        ),
        (
            int(rng.integers(duplicated + 1, n_deal + 1)),
            # money: keep names from here (a file's column)
            deal_rows[duplicated] | {"status": "open", "closed_at": None, "amount": "9999.00"},
            # money: keep names to here
            "duplicate_deal_id",
        ),
        (
            int(rng.integers(n_deal)),
            template
            | {
                "deal_id": "D" + str(n_deal + 2).zfill(deal_digits),
                "account_id": second_free,
                "status": "pending",
                "closed_at": None,
            },
            "unknown_status",
        ),
    ]
    deals = _insert_rows(deals, extra_deals)

    column_of = {
        "offset_timestamp": "timestamp",
        "naive_timestamp": "timestamp",
        "unparseable_timestamp": "timestamp",
        "unknown_contact": "contact_id",
        "unmapped_utm": "utm_source",
        "repeated_click": "timestamp",
        "negative_amount": "amount",
        "duplicate_deal_id": "deal_id",
        "unknown_status": "status",
    }
    found = []
    for name, frame, key in (
        ("touchpoints", touchpoints, "touchpoint_id"),
        ("deals", deals, "deal_id"),
    ):
        tagged = frame.with_row_index("row", offset=1).filter(pl.col("_tag").is_not_null())
        for row in tagged.iter_rows(named=True):
            column = column_of[row["_tag"]]
            found.append((name, row["row"], row[key], row["_tag"], column, row[column]))
    defects = pl.DataFrame(found, schema=DEFECT_SCHEMA, orient="row").sort("input", "row")
    return touchpoints.drop("_tag"), deals.drop("_tag"), defects


# -- writing -----------------------------------------------------------------------------------

#: file format -> extension
FORMATS = {"csv": "csv", "parquet": "parquet", "ndjson": "ndjson"}


def write_export(
    export: SimulatedExport, directory: str | Path, format: str = "csv"
) -> dict[str, Path]:
    """Write ``touchpoints``, ``deals``, ``contacts`` and ``spend`` files into ``directory``.

    Every column is written as text (empty / null where a value is missing), so a file in any
    format carries exactly what the CSV does. Same export, same bytes.

    >>> import tempfile
    >>> paths = write_export(simulate(50), tempfile.mkdtemp(), format="parquet")
    >>> sorted(p.name for p in paths.values())
    ['contacts.parquet', 'deals.parquet', 'spend.parquet', 'touchpoints.parquet']
    """
    if format not in FORMATS:
        close = difflib.get_close_matches(format, FORMATS, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown export format {format!r}{guess}; valid: {', '.join(FORMATS)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table in export.tables().items():
        path = directory / f"{name}.{FORMATS[format]}"
        if format == "csv":
            table.write_csv(path)
        elif format == "parquet":
            table.write_parquet(path, statistics=False)
        else:
            table.write_ndjson(path)
        paths[name] = path
    return paths


# -- planted experiments -------------------------------------------------------------------------

#: a planted experiment next to its exact truth (money in cents)
PLANTED_SCHEMA = pl.Schema(
    {
        "channel": pl.String,
        "start": pl.Date,
        "end": pl.Date,  # inclusive
        "metric": pl.String,
        "lift": pl.Int64,  # what the "experiment" measured: the truth plus noise
        "lower": pl.Int64,
        "upper": pl.Int64,
        "segment": pl.String,
        "truth": pl.Int64,  # won revenue of deals closed in [start, end] the channel caused
    }
)


def plant_experiments(
    export: SimulatedExport,
    channels: Sequence[str],
    *,
    periods: int = 2,
    noise: float = 0.1,
    seed: int = 0,
) -> pl.DataFrame:
    """Holdout experiments with known truth: for each of ``channels`` and each of ``periods``
    equal parts of the export's window, the exact won revenue of deals closed in the period
    that the channel caused (its removal effect, every other draw fixed, as
    :func:`channel_truth`), and a noisy measurement of it.

    The measurement is ``truth + sd * z`` (``z`` standard normal from ``seed``) with
    ``sd = noise * max(|truth|, 5% of the period's won revenue)`` (so a channel with no effect
    still gets an honest interval), and the bounds are a 95% interval around it (1.96 sd).

    Returns :data:`PLANTED_SCHEMA`, channel by channel, periods in order; write it with
    :func:`write_experiments`.

    >>> export = simulate(300, seed=2, world=scenario("brand_drives_search"))
    >>> plant_experiments(export, ["paid_search"]).height
    2
    """
    if periods < 1:
        raise ConfigError(f"experiment periods must be >= 1, not {periods}")
    if noise < 0:
        raise ConfigError(f"experiment noise must be >= 0, not {noise}")
    unknown = [c for c in channels if c not in export.world.channels]
    if unknown:
        raise ConfigError(f"cannot plant an experiment on {unknown[0]!r}: not a channel of "
                          f"world {export.world.name!r} ({', '.join(export.world.channels)})")
    days = int(export.draws.total_minutes // _MINUTES_PER_DAY)
    edges = [round(i * days / periods) for i in range(periods + 1)]
    factual = export.outcomes()

    def won_by_period(outcomes: Outcomes) -> np.ndarray:
        won = outcomes.is_closed & outcomes.won
        day = np.floor(outcomes.closed[won] / _MINUTES_PER_DAY).astype(np.int64)
        part = np.searchsorted(np.asarray(edges[1:]), day, side="right")
        return np.bincount(part, weights=outcomes.amount_cents[won].astype(float),
                           minlength=periods)[:periods].astype(np.int64)

    revenue = won_by_period(factual)
    rng = np.random.default_rng(seed)
    rows = []
    for channel in channels:
        truth = revenue - won_by_period(export.outcomes((channel,)))
        for i in range(periods):
            sd = noise * max(abs(int(truth[i])), 0.05 * int(revenue[i]))
            measured = int(round(int(truth[i]) + sd * rng.standard_normal()))
            half = 1.96 * sd
            rows.append({
                "channel": channel,
                "start": export.start + timedelta(days=edges[i]),
                "end": export.start + timedelta(days=edges[i + 1] - 1),
                "metric": "revenue",
                "lift": measured,
                "lower": int(math.floor(measured - half)),
                "upper": int(math.ceil(measured + half)),
                "segment": None,
                "truth": int(truth[i]),
            })
    return pl.DataFrame(rows, schema=PLANTED_SCHEMA, orient="row")


def write_experiments(planted: pl.DataFrame, directory: str | Path) -> dict[str, Path]:
    """Write planted experiments as the user would have them (``experiments.csv``: channel,
    start, end, metric, lift, lower, upper, segment; money in major units) and, beside them,
    what no user has (``experiments_truth.csv``: the same rows with ``truth``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def major(column: str) -> pl.Expr:
        cents = pl.col(column)
        sign = pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
        return (sign + _cents_text(cents.abs())).alias(column)

    money = ["lift", "lower", "upper"]
    shown = planted.select("channel", "start", "end", "metric", *[major(c) for c in money],
                           "segment")
    paths = {"experiments": directory / "experiments.csv",
             "experiments_truth": directory / "experiments_truth.csv"}
    shown.write_csv(paths["experiments"])
    shown.with_columns(planted.select(major("truth")).to_series()).write_csv(
        paths["experiments_truth"])
    return paths


# -- ground truth ------------------------------------------------------------------------------


def baseline_revenue(export: SimulatedExport) -> int:
    """The world's won revenue inside the window, in cents (the clean ``won`` deals' sum)."""
    return export.outcomes().revenue_cents


def channel_truth(export: SimulatedExport, channel: str) -> int:
    """Revenue (cents) the world loses when ``channel`` is removed, every other draw fixed.

    Removing the channel also removes the exposures it alone caused (their touches and their
    effects). The answer is exact for the export's seed: no sampling error. It can be
    negative for a channel with a negative effect.
    """
    return baseline_revenue(export) - export.outcomes((channel,)).revenue_cents


TRUTH_SCHEMA = pl.Schema({"channel": pl.String, "revenue_removed_cents": pl.Int64,
                          "share": pl.Float64})


def ground_truth(export: SimulatedExport, channels: Iterable[str] | None = None) -> pl.DataFrame:
    """The revenue each channel is truly responsible for: its exact removal effect.

    Parameters
    ----------
    export
        A :class:`SimulatedExport` (it carries its world and draws).
    channels
        Channels to evaluate; every channel of the world (not already removed) by default.

    Returns
    -------
    polars.DataFrame
        ``channel`` (in :data:`CHANNELS` order), ``revenue_removed`` (Int64 cents: won revenue
        lost when the channel and the touches it caused are removed, every other draw held
        fixed) and ``share`` (``revenue_removed`` over the sum of ``revenue_removed``, the
        normalisation Markov removal effects use; 0 when that sum is 0). Channel interactions
        mean removal effects need not add up to the total revenue.

    Examples
    --------
    >>> truth = ground_truth(simulate(500, seed=2, world=scenario("brand_drives_search")))
    >>> truth.columns
    ['channel', 'revenue_removed', 'share']
    """
    world, draws = export.world, export.draws
    names = [c for c in world.channels if c not in export.removed]
    if channels is not None:
        wanted = list(channels)
        for channel in wanted:
            _check_channel(channel, "ground_truth")
        names = [c for c in CHANNELS if c in wanted]
    accounts = _accounts(world, draws)
    baseline = _realise(world, draws, accounts, export.removed)
    graph = nx.DiGraph(list(world.causes))
    removed = []
    for channel in names:
        # only the channel and what it (transitively) causes can change
        affected = {channel} | (nx.descendants(graph, channel) if channel in graph else set())
        without = _realise(
            world, draws, accounts, export.removed + (channel,), reuse=(baseline, affected)
        )
        removed.append(baseline.revenue_cents - without.revenue_cents)
    total = sum(removed)
    return pl.DataFrame(
        {
            "channel": names,
            "revenue_removed_cents": removed,
            "share": [r / total if total else 0.0 for r in removed],
        },
        schema=TRUTH_SCHEMA,
    )


SHAPLEY_TRUTH_SCHEMA = pl.Schema(
    {"channel": pl.String, "shapley_revenue_cents": pl.Float64, "share": pl.Float64}
)

#: most (account, coalition) columns realised at once by :func:`shapley_truth`
_COALITION_COLUMNS = 1 << 18


def shapley_truth(export: SimulatedExport) -> pl.DataFrame:
    """The exact Shapley value of each channel in the world's true revenue function.

    The game: ``v(S)`` = won revenue (cents, inside the window) when only the channels in
    ``S`` are switched on, every draw held fixed (a channel switched off takes the exposures
    it alone caused with it, as in :func:`ground_truth`). ``phi_c`` is the average of
    ``v(S + c) - v(S)`` over every order in which channels can join. No sampling: the values
    are exact for the export's seed (up to floating-point summation).

    How it stays fast for all 14 channels: revenue is a sum over accounts, so by linearity
    ``phi = sum over accounts of phi(v_a)``. Exposure is monotone in ``S`` (switching a channel
    on never removes an exposure), so a channel an account never saw with every channel on is a
    null player in that account's game and ``v_a(S) = v_a(S & E_a)`` with ``E_a`` the
    account's exposed channels. Each account's game is therefore played over its own ``E_a``
    only: ``2**|E_a|`` coalitions, all realised in vectorised :func:`realise` calls (one
    column per account and coalition, via :meth:`Draws.take` and ``present``), instead of
    ``2**n`` calls over every account. Accounts whose deal would close after the window, or
    that saw no channel, contribute nothing.

    Returns
    -------
    polars.DataFrame
        ``channel`` (the world's channels not already removed, in :data:`CHANNELS` order),
        ``shapley_revenue`` (Float64 cents; they add up to ``v(all) - v(none)``, the revenue
        marketing causes) and ``share`` (over the sum of absolute values; 0 if all are 0).

    Examples
    --------
    >>> truth = shapley_truth(simulate(300, seed=2, world=scenario("brand_drives_search")))
    >>> truth.columns
    ['channel', 'shapley_revenue', 'share']
    """
    world, draws = export.world, export.draws
    players = [c for c in world.channels if c not in export.removed]
    rows = np.array([CHANNELS.index(c) for c in players], dtype=np.int64)
    values = np.zeros(len(CHANNELS))
    full = realise(world, draws, export.removed)
    exposed = np.zeros_like(full.exposed)
    exposed[rows] = full.exposed[rows]
    sizes = exposed.sum(axis=0)
    candidates = (full.closed < full.total_minutes) & (sizes > 0)
    for size in np.unique(sizes[candidates]).tolist():
        accounts = np.flatnonzero(candidates & (sizes == size))
        coalitions = 1 << size
        bits = ((np.arange(coalitions)[:, None] >> np.arange(size)) & 1).astype(bool)
        popcount = bits.sum(axis=1)
        coefficient = np.array(
            [1.0 / (size * math.comb(size - 1, k)) for k in range(size)] + [0.0]
        )[popcount]
        per_chunk = max(1, _COALITION_COLUMNS // coalitions)
        for begin in range(0, accounts.size, per_chunk):
            chunk = accounts[begin : begin + per_chunk]
            # (m, size): the channel row of each account's exposed channels, in CHANNELS order
            local = np.nonzero(exposed[:, chunk].T)[1].reshape(chunk.size, size)
            columns = chunk.size * coalitions
            present = np.zeros((len(CHANNELS), columns), dtype=bool)
            column = np.arange(columns).reshape(chunk.size, coalitions)
            for bit in range(size):
                on = column[:, bits[:, bit]]
                present[np.repeat(local[:, bit], on.shape[1]), on.ravel()] = True
            outcome = realise(
                world, draws.take(np.repeat(chunk, coalitions)), export.removed, present=present
            )
            revenue = np.where(outcome.is_closed & outcome.won, outcome.amount_cents, 0).reshape(
                chunk.size, coalitions
            )
            for bit in range(size):
                with_bit = np.flatnonzero(bits[:, bit])
                without = with_bit ^ (1 << bit)
                marginal = (revenue[:, with_bit] - revenue[:, without]) @ coefficient[without]
                np.add.at(values, local[:, bit], marginal)
    shapley = values[rows]
    total = float(np.abs(shapley).sum())
    return pl.DataFrame(
        {
            "channel": players,
            "shapley_revenue_cents": shapley.tolist(),
            "share": (shapley / total if total else np.zeros(len(players))).tolist(),
        },
        schema=SHAPLEY_TRUTH_SCHEMA,
    )


# -- the dark funnel: channels an export misses, and what buyers say brought them ----------------
# Kept apart from the rest of the simulator: a post-processing of a simulated export that
# needs nothing but the export's world, draws and outcomes (:func:`with_dark_funnel`).

#: what buyers type into "How did you hear about us?" for each channel (as typed: case,
#: punctuation and vague answers included); the default ``[self_reported]`` rules map most of
#: them, some to a neighbouring channel ("Google" is organic search, whichever kind it was)
ANSWER_PHRASES: dict[str, tuple[str, ...]] = {
    "podcast": ("Heard it on a podcast", "Podcast", "spotify", "A podcast episode"),
    "newsletter": ("Your newsletter", "newsletter"),
    "community": ("Slack community", "reddit", "a community thread"),
    "events": ("Saw you at a conference", "Event"),
    "webinar": ("Webinar",),
    "organic_social": ("LinkedIn", "linkedin post"),
    "paid_social": ("LinkedIn", "LinkedIn ad"),
    "content": ("Your blog", "an article"),
    "organic_search": ("Google", "searched online"),
    "paid_search": ("Google", "Google ad"),
    "review_sites": ("G2", "Capterra"),
    "retargeting": ("Saw an ad somewhere",),
    "email": ("An email",),
    "direct": ("Already knew you",),
}
#: answers of buyers who do not remember (no rule maps them: listed, never guessed)
UNSURE_ANSWERS = ("Don't remember", "Other", "n/a")

_STREAM_ANSWER_BLANK = 101
_STREAM_ANSWER_RECENT = 102
_STREAM_ANSWER_PHRASE = 103
_STREAM_ANSWER_UNSURE = 104


@dataclass(frozen=True)
class DarkFunnel:
    """How an export misses channels, and how buyers answer "How did you hear about us?".

    Attributes
    ----------
    dark
        Channels whose touches happen in the world (and drive its outcomes: the truth counts
        them) but are not in the exported touchpoints (a podcast listen leaves no click).
    blank
        Share of contacts who leave the answer blank.
    last_remembered
        Share of the contacts who answer that name the last channel their buying group saw
        (recency) instead of the first one (the true origin).
    unsure
        Share of the contacts who answer that say they do not remember.
    """

    dark: tuple[str, ...] = ("podcast",)
    blank: float = 0.35
    last_remembered: float = 0.3
    unsure: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "dark", tuple(self.dark))
        for channel in self.dark:
            _check_channel(channel, "DarkFunnel.dark")
        for name in ("blank", "last_remembered", "unsure"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"DarkFunnel.{name} = {value} is not a share from 0 to 1")


def self_reported_answers(export: SimulatedExport, funnel: DarkFunnel) -> pl.Series:
    """Each contact's answer (the ``self_reported`` column, in the contacts' order): blank,
    unsure, the buying group's first channel (its true origin, dark channels included) or the
    last channel it saw, as a phrase of :data:`ANSWER_PHRASES`; drawn by hashing the contact,
    so the same export gives the same answers."""
    outcomes = export.outcomes()
    seed = export.draws.seed
    contact = (export.contacts.get_column("contact_id").str.slice(1).cast(pl.Int64) - 1
               ).to_numpy()
    account = (export.contacts.get_column("account_id").str.slice(1).cast(pl.Int64) - 1
               ).to_numpy()
    exposed = outcomes.exposed[:, account]
    first = np.where(exposed, outcomes.first_touch[:, account], np.inf)
    last = np.where(exposed, outcomes.last_touch[:, account], -np.inf)
    origin = np.argmin(first, axis=0)
    recent = np.argmax(last, axis=0)
    seen = np.asarray(exposed.any(axis=0), dtype=bool)
    blank = np.asarray(_hash_uniform(seed, _STREAM_ANSWER_BLANK, contact) < funnel.blank)
    unsure = np.asarray(_hash_uniform(seed, _STREAM_ANSWER_UNSURE, contact) < funnel.unsure)
    use_recent = np.asarray(
        _hash_uniform(seed, _STREAM_ANSWER_RECENT, contact) < funnel.last_remembered)
    channel = np.where(use_recent, recent, origin)
    pick = _hash_uniform(seed, _STREAM_ANSWER_PHRASE, contact)
    # one table of every phrase (the channels' in CHANNELS order, then the unsure ones): each
    # answer is a row of it, looked up by index
    counts = np.array([len(ANSWER_PHRASES[c]) for c in CHANNELS])
    offsets = np.cumsum(counts) - counts
    table = [p for c in CHANNELS for p in ANSWER_PHRASES[c]] + list(UNSURE_ANSWERS)
    said = offsets[channel] + np.floor(pick * counts[channel]).astype(np.int64)
    vague = counts.sum() + np.floor(pick * len(UNSURE_ANSWERS)).astype(np.int64)
    row = np.where(unsure | ~seen, vague, said)
    answers = pl.Series("self_reported", table, dtype=pl.String).gather(row)
    return pl.select(pl.when(pl.lit(pl.Series(~blank))).then(pl.lit(answers))
                     .alias("self_reported")).to_series()


def hide_channels(touchpoints: pl.DataFrame, channels: Iterable[str]) -> pl.DataFrame:
    """The exported touchpoints without the touches of ``channels`` (their utm source and
    medium, as :data:`CHANNEL_UTMS` writes them): touches that happened but were not
    tracked."""
    hidden = pl.lit(False)
    for channel in channels:
        _check_channel(channel, "hide_channels")
        sources, medium = CHANNEL_UTMS[channel]
        hidden = hidden | (pl.col("utm_source").is_in(list(sources))
                           & (pl.col("utm_medium") == medium))
    return touchpoints.filter(~hidden.fill_null(False))


def with_dark_funnel(export: SimulatedExport, funnel: DarkFunnel) -> SimulatedExport:
    """``export`` with ``funnel.dark``'s touches left out of the touchpoints and each contact's
    answer to "How did you hear about us?" in a ``self_reported`` column. The world, its draws
    and so its truth are unchanged: the dark channels still drive what they drove.

    >>> export = with_dark_funnel(simulate(300, seed=3), DarkFunnel(dark=("podcast",)))
    >>> export.contacts.columns
    ['contact_id', 'account_id', 'lead_created_at', 'self_reported']
    >>> export.touchpoints.filter(pl.col("utm_medium") == "podcast").height
    0
    """
    return dataclasses.replace(
        export,
        touchpoints=hide_channels(export.touchpoints, funnel.dark),
        contacts=export.contacts.with_columns(self_reported_answers(export, funnel)),
    )
