"""Position-based models: U-shaped, W-shaped and full-path.

Each gives fixed shares to anchor touches and spreads the rest evenly over the other touches
(the definitions popularised by Bizible/Adobe Marketo Measure):

* U-shaped (position-based): 40% first touch, 40% last touch, 20% over the touches between;
* W-shaped: 30% each to the first, lead-creation and opportunity-creation touches, 10% over
  the touches *between* them (Marketo Measure's definition: "the remaining 10% is attributed
  proportionally to any intermediary touchpoints that occur between the three milestone
  touchpoints"; its W-shaped journey ends at opportunity creation, so later touches, the
  closed-won one included, earn nothing). ``spread="all"`` spreads the 10% over every other
  touch instead, those after opportunity creation too;
* full-path (Z-shaped): 22.5% each to first, lead-creation, opportunity-creation and
  closed-won touches, 10% over the rest.

When anchors coincide (one touch is both first and lead creation) that touch earns both
shares. The share of an anchor a journey lacks (no closed-won touch on an open deal) joins the
spread; when there is no other touch to spread over, the anchors' shares are scaled up to sum
to 1 (so a two-touch journey is 50/50 under U-shaped, a one-touch journey 100%).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl

from attribution.errors import ConfigError
from attribution.journeys import Journeys
from attribution.models.base import (
    NEEDS_MILESTONES,
    AttributionModel,
    flag,
    last_touches,
    run_normalised,
    run_weights,
)

#: the anchor that is the journey's last touch (its other anchors are touch columns)
LAST = "(last touch)"


#: where a model's remainder goes: the touches between its anchors, or every other touch
SPREADS = ("between", "all")


def _anchored(journeys: Journeys, anchors: list[tuple[str, float]], *,
              between: bool = False) -> pl.LazyFrame:
    """Weights from (anchor, share) pairs, the remainder spread over non-anchor touches (only
    those before the journey's last anchor when ``between``). An anchor is a boolean touch
    column, or :data:`LAST`."""
    runs = journeys.runs
    flags = [last_touches(runs) if name == LAST else flag(runs, name) for name, _ in anchors]
    shares = [share for _, share in anchors]
    score = np.zeros(runs.touches.height)  # the anchors' shares each touch earns
    missing = np.zeros(runs.starts.size)  # the shares of the anchors a journey lacks
    for flagged, share in zip(flags, shares, strict=True):
        score += flagged * share
        missing += ~runs.any(flagged) * share
    is_anchor = np.logical_or.reduce(flags)
    spreads_to = ~is_anchor
    if between:  # the touches before the journey's last anchor (the first anchor is its
        # first touch): touch_index below the largest anchored touch_index of its journey
        index = runs.touches.get_column("touch_index").to_numpy().astype(np.int64)
        last_anchor = runs.spread(runs.max(np.where(is_anchor, index, -1)))
        spreads_to &= index < last_anchor
    spread = runs.spread(1.0 - sum(shares) + missing)
    middle = runs.spread(runs.total(spreads_to.astype(np.int64)))
    each = np.divide(spread, middle, out=np.zeros_like(spread), where=middle > 0)
    weight = np.where(is_anchor, score, np.where(spreads_to, each, 0.0))
    return run_weights(runs, run_normalised(runs, weight))


#: the models whose anchors include the lead-creation touch
LEAD_MODELS = ("w_shaped", "full_path")
#: the note of a run without a contacts file (no lead dates) that runs a lead-creation model
NO_CONTACTS_NOTE = (
    "no contacts file: without lead-creation dates each journey's lead-creation touch is its "
    "first touch, so w_shaped gives the first touch 60% (first touch and lead creation) and "
    "full_path 45%; give --contacts FILE to place lead creation"
)


def lead_fallback_notes(contacts: object | None, models: Sequence[str]) -> list[str]:
    """The run's note when the lead-creation milestone falls back to the first touch: no
    ``contacts`` file, and ``models`` (the configured names; none: every model) include one
    with a lead-creation anchor (:data:`LEAD_MODELS`)."""
    if contacts is not None or (models and not set(models) & set(LEAD_MODELS)):
        return []
    return [NO_CONTACTS_NOTE]


def _check_shares(model: str, shares: dict[str, float]) -> None:
    if any(v < 0 for v in shares.values()) or sum(shares.values()) > 1 + 1e-12:
        raise ConfigError(
            f"{model}: shares must be >= 0 and sum to at most 1, got "
            + ", ".join(f"{k}={v}" for k, v in shares.items())
        )


@dataclass(frozen=True)
class _Anchored(AttributionModel):
    """Base of the position models: every hyperparameter is an anchor's share."""

    def __post_init__(self) -> None:
        _check_shares(self.name, {k: v for k, v in self.params().items() if k != "spread"})


@dataclass(frozen=True)
class UShaped(_Anchored):
    """Position-based: ``first`` to the first touch, ``last`` to the last, the rest between."""

    name: ClassVar[str] = "u_shaped"
    label: ClassVar[str] = "U-shaped"
    summary: ClassVar[str] = "40% first, 40% last, 20% spread over the touches between"
    uses_population: ClassVar[bool] = False

    first: float = 0.4
    last: float = 0.4

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        return _anchored(journeys, [("is_first", self.first), (LAST, self.last)])


@dataclass(frozen=True)
class WShaped(_Anchored):
    """W-shaped: first, lead-creation and opportunity-creation touches, the rest spread.

    ``spread="between"`` (the default, Marketo Measure's definition) spreads the remainder
    over the touches between the first touch and the opportunity-creation touch (the last of
    the three milestones), so touches after opportunity creation earn nothing;
    ``spread="all"`` over every touch that is not a milestone, later ones too.
    """

    name: ClassVar[str] = "w_shaped"
    label: ClassVar[str] = "W-shaped"
    summary: ClassVar[str] = ("30% each to first, lead and opportunity creation; 10% over the "
                              "touches between them")
    uses_population: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({NEEDS_MILESTONES})

    first: float = 0.3
    lead: float = 0.3
    opportunity: float = 0.3
    spread: str = "between"

    def __post_init__(self) -> None:
        if self.spread not in SPREADS:
            raise ConfigError(
                f"w_shaped: spread must be one of {', '.join(SPREADS)}, not {self.spread!r}"
            )
        super().__post_init__()

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        self.check(journeys)
        return _anchored(
            journeys,
            [
                ("is_first", self.first),
                ("is_lead_creation", self.lead),
                ("is_opportunity_creation", self.opportunity),
            ],
            between=self.spread == "between",
        )


@dataclass(frozen=True)
class FullPath(_Anchored):
    """Full-path (Z-shaped): the four milestones, the rest spread."""

    name: ClassVar[str] = "full_path"
    label: ClassVar[str] = "Full path"
    summary: ClassVar[str] = "22.5% each to first, lead, opportunity and closed-won; 10% spread"
    uses_population: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({NEEDS_MILESTONES})

    first: float = 0.225
    lead: float = 0.225
    opportunity: float = 0.225
    closed_won: float = 0.225

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        self.check(journeys)
        return _anchored(
            journeys,
            [
                ("is_first", self.first),
                ("is_lead_creation", self.lead),
                ("is_opportunity_creation", self.opportunity),
                ("is_closed_won", self.closed_won),
            ],
        )
