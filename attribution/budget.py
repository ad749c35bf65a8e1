"""Budget: move spend toward the channels that earn more credited revenue per unit of spend.

:func:`recommend_budget` compares each paid channel's share of current spend with its share of
credited revenue under the chosen model, and recommends a budget that moves a share
``shift`` of it toward the revenue shares::

    target_i = total x ((1 - shift) x spend_share_i + shift x revenue_share_i)

A channel whose revenue share exceeds its spend share has a higher credited revenue per unit of
spend (ROAS) than the paid channels together, so it gains; one below loses. ``shift=0`` keeps
the current mix (scaled to ``total``), ``shift=1`` spends in proportion to credited revenue.

Floors and caps
    Per channel, as absolute amounts (``int`` minor units, or text ``"5000"`` / ``"5,000.50"``
    in major units) or shares of the total (:class:`Share`, or text ``"10%"``). A share floor
    is rounded up to the cent and a share cap down, so both always hold. With bounds, every
    channel gets ``clamp(lam x target_i, floor_i, cap_i)`` with one common factor ``lam``
    chosen (exactly, with fractions) so that the budget sums to ``total``: channels at a bound
    stay there and the others share what is left in proportion to their targets.

Exact cents
    The amounts are then rounded by the largest remainder: each channel gets the integer part
    of its exact amount and the cents left over go to the largest fractional parts (ties by
    channel name). The recommendation sums to ``total`` to the cent; floors and caps, being
    whole cents, still hold. Same inputs, same budget.

Which channels
    Channels with current spend > 0 (revenue credit of unpaid channels - direct, organic - is
    not budget). A channel without current spend has no measured return: it is budgeted only
    when a floor names it, and gets exactly its floor. When no paid channel has revenue credit
    the revenue shares are undefined and the target is the current mix.

Evidence
    Given ``evidence`` (:func:`move_evidence`: the decision's sufficiency rule,
    :func:`attribution.intervals.sufficiency`, and with intervals :func:`undecided`), a
    channel whose credit has too few deals to tell, or whose share interval holds last-touch's
    share, keeps its share of the current spend (``bound`` "held", ``supported`` False, the
    reason in ``evidence``): money moves only between the channels the data supports. With
    fewer than two such channels no move is supported (:func:`verdict`) and every channel keeps
    its share; ``unchecked_recommended`` still says what the model's credit alone would do.

Last-touch next to the model
    With ``baseline="last_touch"`` (the default) the same recommendation is made on last-touch
    credit and set beside the model's: ``decision_shift`` is how much more (or less) each
    channel gets when the decision is made on the model's credit instead of last-touch's.

:func:`what_if` gives the expected revenue of a proposed budget under a stated assumption:
each channel returns its current credited revenue per unit of spend (``revenue_credit /
current_spend``) for spend within a band around its current spend (``+-band``, default
+-50%). Above the band the return is capped: spend beyond ``current x (1 + band)`` is assumed
to buy nothing (revenue flat at the band's edge). Below the band, ``below_band`` says what is
assumed: ``"proportional"`` (default: revenue keeps falling with spend, the cautious reading)
or ``"flat"`` (revenue held at the band's lower edge). Rows outside the band are flagged
``in_band = False``: the figure there is an assumption, not a measurement.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import polars as pl

from attribution.errors import ConfigError, InputError, ModelError
from attribution.reading import ROW, read_table
from attribution.schema import currency_decimals
from attribution.spend import Spend
from attribution.validation import amount_text, minor_units, text

BASELINE = "last_touch"


@dataclass(frozen=True)
class Share:
    """A floor or cap given as a share of the total budget, between 0 and 1."""

    value: float

    def __post_init__(self) -> None:
        if not 0 <= self.value <= 1:
            raise ConfigError(f"a share must be between 0% and 100%, not {self.value * 100:g}%")


Bound = int | Share | str

#: the budget recommendation, one row per budgeted channel
BUDGET_SCHEMA = pl.Schema(
    {
        "model": pl.String,
        "channel": pl.String,
        "channel_group": pl.String,
        "current_spend_cents": pl.Int64,
        "current_share": pl.Float64,
        "revenue_credit_cents": pl.Int64,
        "revenue_share": pl.Float64,  # among budgeted channels
        "roas": pl.Float64,  # revenue_credit / current_spend
        "floor_cents": pl.Int64,
        "cap_cents": pl.Int64,
        "recommended_cents": pl.Int64,
        "recommended_share": pl.Float64,
        "change_cents": pl.Int64,  # recommended - current_spend
        "bound": pl.String,  # "floor" / "cap" when the channel sits at it
        "last_touch_revenue_credit_cents": pl.Int64,
        "last_touch_revenue_share": pl.Float64,
        "last_touch_recommended_cents": pl.Int64,
        "last_touch_change_cents": pl.Int64,
        "decision_shift_cents": pl.Int64,  # recommended - last_touch_recommended
        # the evidence check (null when not checked): does the data support moving this
        # channel's budget, why not, and what the model's credit alone would recommend
        "supported": pl.Boolean,
        "evidence": pl.String,
        "unchecked_recommended_cents": pl.Int64,
        "unchecked_change_cents": pl.Int64,
    }
)

#: why a channel no won deal touched cannot move (a spend channel the touches never name)
NO_WON_DEAL = "too few deals to tell: no won deal touched it"

#: expected revenue of a proposed budget, one row per channel
WHAT_IF_SCHEMA = pl.Schema(
    {
        "model": pl.String,
        "channel": pl.String,
        "channel_group": pl.String,
        "current_spend_cents": pl.Int64,
        "proposed_spend_cents": pl.Int64,
        "revenue_credit_cents": pl.Int64,
        "return_per_unit": pl.Float64,  # revenue_credit / current_spend
        "band_low_cents": pl.Int64,
        "band_high_cents": pl.Int64,
        "counted_spend_cents": pl.Int64,  # the spend the estimate believes in
        "expected_revenue_cents": pl.Int64,
        "revenue_change_cents": pl.Int64,
        "in_band": pl.Boolean,
        "note": pl.String,
    }
)


# -- bounds --------------------------------------------------------------------------------------
def parse_bound(value: Bound, decimals: int = 2) -> int | Share:
    """A floor or cap from its text: ``"10%"`` -> ``Share(0.1)``, ``"5,000.50"`` -> ``500050``
    cents.

    Integers are taken as minor units already; text without ``%`` is in major units of a
    currency with ``decimals`` (its ISO 4217 minor unit: 3 for KWD, where ``"1.234"`` is 1234
    fils); an amount finer than that is refused, never rounded.

    >>> parse_bound("12.5%"), parse_bound("5,000.50"), parse_bound(700), parse_bound("1.234", 3)
    (Share(value=0.125), 500050, 700, 1234)
    """
    if isinstance(value, Share):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"a floor or cap must be an amount or a share like 10%, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"a floor or cap cannot be negative ({value})")
        return value
    cleaned = value.strip().replace(",", "").replace("_", "").lstrip("$€£")
    try:
        if cleaned.endswith("%"):
            return Share(float(Decimal(cleaned[:-1]) / 100))
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ConfigError(
            f"{value!r} is not an amount or a share; expected e.g. 5000, 5000.50 or 10%"
        ) from None
    if amount < 0 or not amount.is_finite():
        raise ConfigError(f"a floor or cap cannot be negative ({value})")
    minor = amount.scaleb(decimals)
    if minor != minor.to_integral_value():
        places = "no decimals" if decimals == 0 else f"{decimals} decimals"
        raise ConfigError(f"{value!r} has more decimals than the currency's minor unit "
                          f"({places}, ISO 4217)")
    return int(minor)


def major_text(minor: int | Fraction, decimals: int = 2) -> str:
    """Minor units as major units for a message: ``major_text(123456) -> '1,234.56'``."""
    return f"{float(minor) / 10 ** decimals:,.{decimals}f}"


def parse_bound_option(item: str, option: str = "--floor",
                       decimals: int = 2) -> tuple[str, int | Share]:
    """``"podcast=5000"`` -> ``("podcast", 500000)``: for ``--floor`` / ``--cap`` flags."""
    channel, sep, amount = item.partition("=")
    if not sep or not channel.strip() or not amount.strip():
        raise ConfigError(
            f"{option} {item!r}: expected CHANNEL=AMOUNT or CHANNEL=SHARE%, e.g. podcast=5000"
        )
    return channel.strip().lower(), parse_bound(amount, decimals)


def _cents(bound: int | Share, total: int, up: bool) -> int:
    if isinstance(bound, Share):
        exact = Fraction(Decimal(repr(bound.value))) * total
        return math.ceil(exact) if up else math.floor(exact)
    return bound


# -- inputs ---------------------------------------------------------------------------------------
def _revenue(credit_by_channel: pl.DataFrame, model: str) -> pl.DataFrame:
    """``channel, channel_group, revenue_credit`` (and ``spend`` if given) of one model."""
    models = credit_by_channel.get_column("model").unique(maintain_order=True).to_list()
    if model not in models:
        raise ModelError(
            f"model {model!r} is not in the run; the run has {', '.join(models) or 'no model'}; "
            f"add --model {model}"
        )
    sums = [pl.col("revenue_credit_cents").sum()]
    if "spend_cents" in credit_by_channel.columns:
        sums.append(pl.col("spend_cents").sum())
    return (
        credit_by_channel.filter(pl.col("model") == model)
        .group_by("channel")
        .agg(pl.col("channel_group").drop_nulls().first(), *sums)
    )


def current_spend(
    spend: Spend | pl.DataFrame | None, credit_by_channel: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Current spend per channel (``channel, channel_group, spend``) from any spend form.

    ``spend`` may be a :class:`~attribution.spend.Spend`, its daily frame (``day`` column), or a
    frame of ``channel, spend`` totals; ``None`` takes the ``spend`` column of a channel
    scorecard (the first model's rows).
    """
    if spend is None:
        if credit_by_channel is None or "spend_cents" not in credit_by_channel.columns:
            raise ConfigError("no spend: give a spend file (--spend FILE)")
        first = credit_by_channel.get_column("model")[0]
        spend = credit_by_channel.filter(pl.col("model") == first)
    frame = spend.daily if isinstance(spend, Spend) else spend
    group = (
        pl.col("channel_group").drop_nulls().first()
        if "channel_group" in frame.columns
        else pl.lit(None, pl.String)
    )
    return (
        frame.group_by("channel")
        .agg(group.alias("channel_group"), pl.col("spend_cents").sum().cast(pl.Int64))
        .sort("channel")
    )


# -- the allocation ---------------------------------------------------------------------------
def _clamp(value: Fraction, low: int, high: int | None) -> Fraction:
    value = max(value, Fraction(low))
    return value if high is None else min(value, Fraction(high))


def _scale_into_bounds(
    targets: dict[str, Fraction], lows: dict[str, int], highs: dict[str, int | None], total: int,
    decimals: int = 2,
) -> dict[str, Fraction] | None:
    """``clamp(lam x target, low, high)`` per channel with the ``lam`` that makes them sum to total.

    ``None`` when no ``lam`` reaches the total: every channel with a target is capped below it.
    """
    names = sorted(targets)

    def filled(lam: Fraction) -> Fraction:
        return sum((_clamp(lam * targets[n], lows[n], highs[n]) for n in names), Fraction(0))

    if sum(lows.values()) > total:
        raise ConfigError(
            f"the floors add up to {major_text(sum(lows.values()), decimals)}, more than the "
            f"total {major_text(total, decimals)}; lower a floor or raise --total"
        )
    growing = [n for n in names if targets[n] > 0]
    reachable = sum(
        (Fraction(lows[n]) for n in names if targets[n] == 0), Fraction(0)
    ) + sum((Fraction(h) for n in growing if (h := highs[n]) is not None), Fraction(0))
    if all(highs[n] is not None for n in growing) and reachable < total:
        return None
    breaks = sorted(
        {Fraction(0)}
        | {Fraction(lows[n]) / targets[n] for n in growing}
        | {Fraction(h) / targets[n] for n in growing if (h := highs[n]) is not None}
    )
    previous = breaks[0]
    if filled(previous) >= total:
        lam = previous
    else:
        lam = None
        for point in breaks[1:]:
            if filled(point) >= total:
                low_value, high_value = filled(previous), filled(point)
                lam = previous + (total - low_value) * (point - previous) / (high_value - low_value)
                break
            previous = point
        if lam is None:  # past the last break only uncapped channels grow: linear from there
            slope = sum((targets[n] for n in growing if highs[n] is None), Fraction(0))
            lam = previous + (total - filled(previous)) / slope
    assert lam is not None  # every branch above sets it
    return {n: _clamp(lam * targets[n], lows[n], highs[n]) for n in names}


def largest_remainder(amounts: Mapping[str, Fraction], total: int) -> dict[str, int]:
    """Whole cents summing to ``total``: integer parts, then a cent each to the largest
    fractional parts (ties by name). ``amounts`` must sum to ``total`` exactly.

    >>> largest_remainder({"a": Fraction(1, 3) * 100, "b": Fraction(2, 3) * 100}, 100)
    {'a': 33, 'b': 67}
    """
    base = {name: math.floor(value) for name, value in amounts.items()}
    left = total - sum(base.values())
    order = sorted(amounts, key=lambda n: (-(amounts[n] - base[n]), n))
    for name in order[:left]:
        base[name] += 1
    return dict(sorted(base.items()))


def _allocate(
    spend: dict[str, int],
    revenue: dict[str, int],
    budgeted: list[str],
    total: int,
    shift: Fraction,
    lows: dict[str, int],
    highs: dict[str, int | None],
    decimals: int = 2,
) -> tuple[dict[str, int], dict[str, Fraction]]:
    spent_total = sum(spend[n] for n in budgeted)
    paid_revenue = sum(revenue.get(n, 0) for n in budgeted if spend[n] > 0)
    targets = {}
    for name in budgeted:
        spend_share = Fraction(spend[name], spent_total) if spent_total else Fraction(0)
        if spend[name] > 0 and paid_revenue > 0:
            revenue_share = Fraction(max(revenue.get(name, 0), 0), paid_revenue)
        else:
            revenue_share = spend_share if spend[name] > 0 else Fraction(0)
        targets[name] = total * ((1 - shift) * spend_share + shift * revenue_share)
    exact = _scale_into_bounds(targets, lows, highs, total, decimals)
    if exact is None:
        # the earning channels are all capped: they get their caps, and the rest of the total
        # goes to the other channels by the current mix (evenly if none has spend)
        capped = {n: Fraction(highs[n] or 0) for n in budgeted if targets[n] > 0}
        others = [n for n in budgeted if targets[n] == 0]
        rest = total - sum(capped.values())
        mix = {n: Fraction(spend[n]) for n in others}
        if not any(mix.values()):
            mix = {n: Fraction(1) for n in others}
        filled = _scale_into_bounds(mix, lows, highs, int(rest), decimals) if others else None
        if filled is None:
            reachable = sum(capped.values()) + sum(
                (Fraction(h) for n in others if (h := highs[n]) is not None), Fraction(0)
            )
            raise ConfigError(
                f"the caps allow at most {major_text(reachable, decimals)} of the total "
                f"{major_text(total, decimals)}; raise a cap or lower --total"
            )
        exact = {**capped, **filled}
    return largest_remainder(exact, total), targets


def recommend_budget(
    credit_by_channel: pl.DataFrame,
    spend: Spend | pl.DataFrame | None,
    model: str,
    *,
    total: int | None = None,
    shift: float = 0.2,
    floors: Mapping[str, Bound] | None = None,
    caps: Mapping[str, Bound] | None = None,
    baseline: str | None = BASELINE,
    hold: Collection[str] = (),
    decimals: int | None = None,
    evidence: Mapping[str, str | None] | None = None,
) -> pl.DataFrame:
    """Recommend a budget per channel from credited revenue per unit of spend.

    Parameters
    ----------
    credit_by_channel
        ``RunResult.summary`` (:data:`~attribution.schema.SUMMARY_SCHEMA`) or a channel
        scorecard (:func:`attribution.economics.channel_scorecard`; periods are summed): needs
        ``model, channel, channel_group, revenue_credit``.
    spend
        Current spend (:class:`~attribution.spend.Spend`, its daily frame or ``channel, spend``
        totals); ``None`` takes the scorecard's ``spend`` column. It should cover the same dates
        as the credit.
    model
        The model whose credit drives the decision.
    total
        The budget to allocate, minor units; default: the current total spend.
    shift
        Share of the budget moved from the current mix toward the revenue mix, 0..1.
    floors, caps
        Channel -> bound (see the module docstring: cents, text amounts, :class:`Share`, "10%").
    baseline
        The model to set beside (``last_touch``), or ``None`` to skip it.
    hold
        Channels whose budget is not moved: they keep their share of the current spend
        (``bound`` "held"), under both models.
    evidence
        Channel -> None when the data supports moving its budget, else why not
        (:func:`move_evidence`; a budgeted channel not in it has no won deal touching it).
        The unsupported channels are held too (a floor or cap set for one stands), ``supported``
        and ``evidence`` say so, and ``unchecked_recommended`` is the budget without that
        check. ``None``: nothing is checked (``supported`` and ``evidence`` empty).

    Returns
    -------
    polars.DataFrame
        :data:`BUDGET_SCHEMA`, one row per budgeted channel, largest recommendation first.
        ``recommended`` sums to ``total`` exactly; so does ``last_touch_recommended``.

    Raises
    ------
    ConfigError
        Shift outside 0..1, a negative total, an unknown channel in floors/caps, a floor above
        its cap, floors above the total or caps below it.
    ModelError
        The model (or the baseline) is not in ``credit_by_channel``.

    Examples
    --------
    >>> recommend_budget(result.summary, spend, "linear", shift=0.3,
    ...                  floors={"podcast": "10%"}, caps={"paid_search": "5000"})  # doctest: +SKIP
    """
    if not 0 <= shift <= 1:
        raise ConfigError(f"shift must be between 0 and 1, not {shift}")
    current = current_spend(spend, credit_by_channel)
    chosen = _revenue(credit_by_channel, model)
    base = _revenue(credit_by_channel, baseline) if baseline is not None else None
    spend_of = {c: int(s) for c, s in current.select("channel", "spend_cents").iter_rows()}
    groups = {
        c: g for c, g in current.select("channel", "channel_group").iter_rows() if g is not None
    }
    for frame in (chosen, base):
        if frame is not None:
            for channel, group in frame.select("channel", "channel_group").iter_rows():
                groups.setdefault(channel, group)
    known = sorted(set(spend_of) | set(groups))
    if decimals is None:  # the spend's currency's minor unit (two decimals for a bare frame)
        decimals = currency_decimals(spend.currency) if isinstance(spend, Spend) else 2
    floors_given = {c: parse_bound(b, decimals) for c, b in (floors or {}).items()}
    caps_given = {c: parse_bound(b, decimals) for c, b in (caps or {}).items()}
    for kind, given in (("floor", floors_given), ("cap", caps_given)):  # money: keep name
        for channel in given:
            if channel not in known:
                close = difflib.get_close_matches(channel, known, n=1)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"{kind} for unknown channel {channel!r}{guess}; channels: {', '.join(known)}"
                )
    budgeted = sorted({c for c, s in spend_of.items() if s > 0} | set(floors_given))
    if not budgeted:
        raise ConfigError("no channel has spend: nothing to budget")
    for channel in budgeted:
        spend_of.setdefault(channel, 0)
    total = sum(spend_of[c] for c in budgeted) if total is None else int(total)
    if total < 0:
        raise ConfigError(f"the total budget cannot be negative ({total})")
    lows = {
        c: _cents(floors_given[c], total, up=True) if c in floors_given else 0 for c in budgeted
    }
    highs: dict[str, int | None] = {
        c: _cents(caps_given[c], total, up=False) if c in caps_given else None for c in budgeted
    }
    spent = sum(spend_of[c] for c in budgeted)
    fixed = set(floors_given) | set(caps_given)  # the user's bounds stand
    asked = {c for c in hold if c in budgeted and c not in fixed}
    why: dict[str, str | None] = (
        {c: evidence.get(c, NO_WON_DEAL) for c in budgeted} if evidence is not None else {}
    )
    held = asked | {c for c, reason in why.items() if reason is not None and c not in fixed}
    for channel in budgeted:
        high = highs[channel]
        if high is not None and lows[channel] > high:
            raise ConfigError(
                f"the floor of {channel!r} ({major_text(lows[channel], decimals)}) is above its "
                f"cap ({major_text(high, decimals)})"
            )
    step = Fraction(Decimal(repr(shift)))
    revenue_of = {c: int(r) for c, r in chosen.select("channel",
                                                      "revenue_credit_cents").iter_rows()}
    base_revenue = (
        {c: int(r) for c, r in base.select("channel", "revenue_credit_cents").iter_rows()}
        if base is not None else {}
    )

    def plan(kept: set[str], revenue: dict[str, int]) -> dict[str, int]:
        """The allocation with the ``kept`` channels at their share of the current spend."""
        if kept and kept == set(budgeted):  # nothing moves: the current mix, to the cent
            return _allocate(spend_of, revenue, budgeted, total, Fraction(0),
                             dict.fromkeys(budgeted, 0), dict.fromkeys(budgeted), decimals)[0]
        low, high = dict(lows), dict(highs)
        # each kept channel at its share of the total; when the other channels' floors leave
        # less than that, the kept ones share what the floors leave, by their current spend
        pool, over = total, spent
        need = sum(lows[c] for c in budgeted if c not in kept)
        if spent and need + sum(spend_of[c] * total // spent for c in kept) > total:
            pool, over = max(total - need, 0), sum(spend_of[c] for c in kept)
        for channel in kept:
            low[channel] = high[channel] = spend_of[channel] * pool // over if over else 0
        return _allocate(spend_of, revenue, budgeted, total, step, low, high, decimals)[0]

    recommended = plan(held, revenue_of)
    unchecked = plan(asked, revenue_of) if held != asked else recommended
    base_recommended = plan(held, base_revenue) if base is not None else {}

    spent_total = sum(spend_of[c] for c in budgeted)
    paid_revenue = sum(revenue_of.get(c, 0) for c in budgeted)
    paid_base = sum(base_revenue.get(c, 0) for c in budgeted)
    rows = []
    for channel in budgeted:
        amount = recommended[channel]
        high = highs[channel]
        at_bound = (
            "held" if channel in held
            else "floor" if channel in floors_given and amount == lows[channel]  # money: keep name
            else "cap" if high is not None and amount == high  # money: keep name
            else None
        )
        rows.append(
            {
                "model": model,
                "channel": channel,
                "channel_group": groups.get(channel),
                "current_spend_cents": spend_of[channel],
                "current_share": spend_of[channel] / spent_total if spent_total else None,
                "revenue_credit_cents": revenue_of.get(channel, 0),
                "revenue_share": (
                    revenue_of.get(channel, 0) / paid_revenue if paid_revenue else None
                ),
                "roas": (
                    revenue_of.get(channel, 0) / spend_of[channel] if spend_of[channel] else None
                ),
                "floor_cents": lows[channel] if channel in floors_given else None,
                "cap_cents": high,
                "recommended_cents": amount,
                "recommended_share": amount / total if total else None,
                "change_cents": amount - spend_of[channel],
                "bound": at_bound,
                "last_touch_revenue_credit_cents": (
                    base_revenue.get(channel, 0) if base is not None else None
                ),
                "last_touch_revenue_share": (
                    base_revenue.get(channel, 0) / paid_base
                    if base is not None and paid_base else None
                ),
                "last_touch_recommended_cents": base_recommended.get(channel),
                "last_touch_change_cents": (
                    base_recommended[channel] - spend_of[channel] if base is not None else None
                ),
                "decision_shift_cents": (
                    amount - base_recommended[channel] if base is not None else None
                ),
                "supported": why[channel] is None if evidence is not None else None,
                "evidence": why.get(channel),
                "unchecked_recommended_cents": unchecked[channel],
                "unchecked_change_cents": unchecked[channel] - spend_of[channel],
            }
        )
    frame = pl.DataFrame(rows, schema=BUDGET_SCHEMA, orient="row")
    return frame.sort(["recommended_cents", "channel"], descending=[True, False])


def undecided(summary: pl.DataFrame, model: str, baseline: str = BASELINE) -> list[str]:
    """Channels whose budget the evidence does not move: ``model``'s share interval
    (``revenue_share_low`` .. ``revenue_share_high`` of a summary with bootstrap intervals,
    :mod:`attribution.intervals`) holds ``baseline``'s share of the same channel. Empty when
    the summary has no intervals."""
    if "revenue_share_low" not in summary.columns:
        return []
    base = summary.filter(pl.col("model") == baseline).select(
        "channel", pl.col("revenue_share").alias("_base"))
    rows = (summary.filter(pl.col("model") == model)
            .join(base, on="channel", how="left")
            .with_columns(pl.col("_base").fill_null(0.0))
            .filter((pl.col("revenue_share_low") <= pl.col("_base"))
                    & (pl.col("_base") <= pl.col("revenue_share_high"))))
    return sorted(rows.get_column("channel").to_list())


def _deals(count: int) -> str:
    return f"{count:,} won deal{'' if count == 1 else 's'}"


def move_evidence(marked: pl.DataFrame, model: str, *, min_deals: int | None = None,
                  baseline: str = BASELINE) -> dict[str, str | None]:
    """Per channel of ``model``: None when the data supports moving its budget, else why not
    (for :func:`recommend_budget`'s ``evidence``).

    The rule is the one the report's decision section and every "too few deals to tell" mark
    use (:func:`attribution.intervals.sufficiency`, whose ``won_deals_touched`` and
    ``sufficient`` columns ``marked`` must have): a channel with fewer than ``min_deals`` won
    deals touching it, or an interval wider than its credit, does not move. With intervals,
    neither does one whose interval of ``model``'s share holds ``baseline``'s share
    (:func:`undecided`).

    >>> marked = pl.DataFrame({"model": ["m", "m"], "channel": ["a", "b"],
    ...                        "won_deals_touched": [40, 4], "sufficient": [True, False]})
    >>> move_evidence(marked, "m", min_deals=30)
    {'a': None, 'b': 'too few deals to tell: 4 won deals touched it (fewer than 30)'}
    """
    if "sufficient" not in marked.columns or "won_deals_touched" not in marked.columns:
        raise ConfigError("the evidence of a budget needs a summary marked by "
                          "attribution.intervals.sufficiency (won_deals_touched, sufficient)")
    unsure = set(undecided(marked, model, baseline)) if model != baseline else set()
    said = "last-touch" if baseline == BASELINE else baseline
    reasons: dict[str, str | None] = {}
    rows = marked.filter(pl.col("model") == model).select("channel", "won_deals_touched",
                                                          "sufficient")
    for channel, touched, enough in rows.iter_rows():
        count = int(touched or 0)
        if not enough:
            if count == 0:
                reasons[channel] = NO_WON_DEAL
            elif min_deals is not None and count >= min_deals:
                reasons[channel] = "too few deals to tell: its interval is wider than its credit"
            else:
                reasons[channel] = (f"too few deals to tell: {_deals(count)} touched it"
                                    + (f" (fewer than {min_deals:,})" if min_deals else ""))
        elif channel in unsure:
            reasons[channel] = f"its interval of {model}'s share holds {said}'s share"
        else:
            reasons[channel] = None
    return reasons


@dataclass(frozen=True)
class Verdict:
    """Whether the data supports a budget's moves (:func:`verdict`)."""

    #: the evidence was checked (the budget was made with ``evidence``)
    checked: bool
    #: money may move: two channels or more have the evidence to move (always, unchecked)
    supported: bool
    #: why no move is supported
    reason: str | None
    #: the channels held at their share of current spend for want of evidence
    held: tuple[str, ...]


def verdict(budget: pl.DataFrame) -> Verdict:
    """Whether ``budget`` (:func:`recommend_budget`) may move money: only between channels the
    data supports, so not with fewer than two of them; then every channel keeps its share of
    the current spend and ``reason`` says why."""
    if "supported" not in budget.columns or budget.get_column("supported").null_count():
        return Verdict(False, True, None, ())
    able = budget.filter(pl.col("supported")).get_column("channel").to_list()
    unable = budget.filter(~pl.col("supported"))
    held = tuple(unable.filter(pl.col("bound") == "held").get_column("channel").to_list())
    if len(able) >= 2:
        return Verdict(True, True, None, held)
    if able:
        reason = (f"only {able[0]} has the evidence to move its budget, and money moves "
                  "between two channels or more")
    elif all(str(r).startswith("too few deals to tell")
             for r in unable.get_column("evidence").to_list()):
        reason = ("every paid channel has too few deals to tell" if budget.height > 1
                  else "the paid channel has too few deals to tell")
    else:
        reason = "no paid channel has the evidence to move its budget"
    return Verdict(True, False, reason, held)


def _moves(budget: pl.DataFrame, column: str, currency: str) -> tuple[str, str] | None:
    """``("$18.9k", "most into A (+$12.9k), most out of B (-$8.93k)")`` of a change column,
    or None when nothing moves."""
    from attribution.render import compact_money, printable

    moved = int(budget.filter(pl.col(column) > 0).get_column(column).sum())
    if moved <= 0:
        return None
    into = budget.sort([column, "channel"], descending=[True, False]).row(0, named=True)
    out = budget.sort([column, "channel"]).row(0, named=True)

    def signed(cents: int) -> str:
        text = compact_money(cents, currency)
        return text if cents < 0 else f"+{text}"

    return (compact_money(moved, currency),
            f"most into {printable(into['channel'])} ({signed(into[column])}), "
            f"most out of {printable(out['channel'])} ({signed(out[column])})")


def headline(budget: pl.DataFrame, currency: str = "USD") -> str:
    """The budget's finding in one sentence: the move, or why the data supports none."""
    found = verdict(budget)
    if not found.supported:
        return f"No budget move is supported by the data: {found.reason}"
    moves = _moves(budget, "change_cents", currency)
    if moves is None:
        return "The recommended budget keeps the current mix"
    amount, where = moves
    if found.held:
        able = budget.height - len(found.held)
        return f"Move {amount} of spend between the {able} channels the data supports: {where}"
    return f"Move {amount} of spend: {where}"


def notes(budget: pl.DataFrame, currency: str = "USD", *, gated: bool = False,
          min_deals: int | None = None, columns: bool = False) -> list[str]:
    """What a reader of ``budget`` must know, one sentence each: why no move is supported and
    what the model's credit alone would do (``columns``: where to find it in JSON and CSV),
    which channels are held and why, and the rule (``gated``: with intervals)."""
    from attribution.render import printable

    model = budget.get_column("model")[0] if budget.height else ""
    found = verdict(budget)
    lines = []
    if not found.checked:
        return ["the moves are not checked against the evidence: with intervals (--bootstrap "
                f"N), money moves only where the interval of {model}'s share excludes "
                "last-touch's share"]
    if not found.supported:
        lines.append(f"no move is supported by the data: {found.reason}; every channel keeps "
                     "its share of current spend")
        alone = _moves(budget, "unchecked_change_cents", currency)
        if alone is not None:
            lines.append(f"left to its credit alone, {model} would move {alone[0]} of spend, "
                         f"{alone[1]}: not supported by the data"
                         + (" (unchecked_recommended and unchecked_change in --format json or "
                            "csv)" if columns else ""))
    elif found.held:
        by_reason: dict[str, list[str]] = {}
        for channel, reason in (budget.filter(pl.col("channel").is_in(list(found.held)))
                                .select("channel", "evidence").sort("channel").iter_rows()):
            kind = str(reason).split(":")[0]
            by_reason.setdefault(kind, []).append(printable(channel))
        lines.append("held at their share of current spend: " + "; ".join(
            f"{', '.join(names)} ({kind})" for kind, names in by_reason.items()))
    enough = (f"at least {min_deals:,} won deals touched it" if min_deals
              else "enough won deals touched it")
    if gated:
        lines.append(f"a channel's budget moves only when {enough}, its interval is no wider "
                     f"than its credit and the interval of {model}'s share excludes "
                     "last-touch's share")
    else:
        lines.append(f"a channel's budget moves only when {enough}; no intervals (add "
                     "--bootstrap N): the moves are not checked against the uncertainty of "
                     "the credit")
    return lines


# -- what if ------------------------------------------------------------------------------------
def read_budget(path: str | Path, columns: Mapping[str, str] | None = None,
                decimals: int = 2) -> pl.DataFrame:
    """A proposed budget file (``channel, amount`` in major units of a currency with
    ``decimals``) as ``channel, spend`` in minor units.

    Any bad row raises :class:`~attribution.errors.InputError` naming the file and row: a
    budget is short and every line of it matters. Rows of one channel are added up.
    """
    frame = read_table(path, "budget", dict(columns or {}), ["channel", "amount"])
    parsed = frame.select(
        ROW,
        text("channel", frame).str.to_lowercase().alias("channel"),
        minor_units("amount", frame, decimals).alias("spend_cents"),
        text("amount", frame).alias("_amount_text"),
        (amount_text("amount", frame).str.extract(r"^[+-]?\d*\.(\d*[1-9])0*$", 1)
         .str.len_chars().fill_null(0) > decimals).alias("_too_fine"),
    )
    bad = parsed.filter(
        pl.col("channel").is_null() | pl.col("spend_cents").is_null() | (pl.col("spend_cents") < 0)
        | pl.col("_too_fine")
    )
    if bad.height:
        row = bad.row(0, named=True)
        if row["channel"] is None:
            problem = "column 'channel': missing channel"
        elif row["spend_cents"] is None:
            problem = f"column 'amount': not a number (value {row['_amount_text']!r})"
        elif row["_too_fine"]:
            problem = (f"column 'amount': more decimals than the currency's minor unit "
                       f"({decimals} decimals, ISO 4217; value {row['_amount_text']!r})")
        else:
            problem = f"column 'amount': negative amount (value {row['_amount_text']!r})"
        raise InputError(f"{path}: row {row[ROW]}, {problem}")
    return parsed.group_by("channel").agg(pl.col("spend_cents").sum()).sort("channel")


def _proposal(proposed: Mapping[str, int] | pl.DataFrame) -> dict[str, int]:
    if isinstance(proposed, pl.DataFrame):
        column = next(
            (c for c in ("spend_cents", "recommended_cents", "amount_cents")
             if c in proposed.columns),
            None
        )
        if column is None:
            raise ConfigError(
                "a proposed budget needs 'channel' and 'spend' (or 'recommended') columns"
            )
        pairs = proposed.group_by("channel").agg(pl.col(column).sum()).iter_rows()
        return {str(c): int(v) for c, v in pairs}
    return {str(c): int(v) for c, v in proposed.items()}


def what_if(
    proposed: Mapping[str, int] | pl.DataFrame,
    credit_by_channel: pl.DataFrame,
    spend: Spend | pl.DataFrame | None,
    model: str,
    *,
    band: float = 0.5,
    below_band: str = "proportional",
) -> pl.DataFrame:
    """Expected credited revenue of a proposed budget (:data:`WHAT_IF_SCHEMA`).

    Assumption (module docstring): a channel returns ``r = revenue_credit / current_spend``
    per unit of spend between ``current x (1 - band)`` and ``current x (1 + band)``. Above the
    band, spend counts only up to the band's edge (revenue flat). Below it, ``below_band``
    ``"proportional"`` keeps ``r x proposed`` and ``"flat"`` holds ``r x band_low``. Expected
    revenue is rounded half to even to the cent.

    Channels left out of the proposal keep their current spend. A proposed channel with no
    current spend has no measured return: its expected revenue is its current credit, unchanged
    (note ``no current spend``).

    Parameters
    ----------
    proposed
        Channel -> minor units, or a frame with ``channel`` and ``spend`` (e.g. from
        :func:`read_budget`) or ``recommended`` (a :func:`recommend_budget` result).
    credit_by_channel, spend, model
        As for :func:`recommend_budget`.
    band
        Half-width of the band as a share of current spend (0.5: +-50%), >= 0.
    below_band
        ``"proportional"`` or ``"flat"``.

    Examples
    --------
    >>> what_if({"events": 450_000}, result.summary, spend, "linear")  # doctest: +SKIP
    """
    if band < 0:
        raise ConfigError(f"band must be >= 0, not {band}")
    if below_band not in ("proportional", "flat"):
        raise ConfigError(f"below_band must be 'proportional' or 'flat', not {below_band!r}")
    current = current_spend(spend, credit_by_channel)
    chosen = _revenue(credit_by_channel, model)
    plan = _proposal(proposed)
    spend_of = {c: int(s) for c, s in current.select("channel", "spend_cents").iter_rows()}
    revenue_of = {c: int(r) for c, r in chosen.select("channel",
                                                      "revenue_credit_cents").iter_rows()}
    groups = {c: g for c, g in chosen.select("channel", "channel_group").iter_rows()}
    groups.update({c: g for c, g in current.select("channel", "channel_group").iter_rows() if g})
    width = Fraction(Decimal(repr(band)))
    rows = []
    for channel in sorted({c for c, s in spend_of.items() if s > 0} | set(plan)):
        now = spend_of.get(channel, 0)
        new = plan.get(channel, now)
        revenue = revenue_of.get(channel, 0)
        if now <= 0:
            rows.append(
                {"channel": channel, "current_spend_cents": now, "proposed_spend_cents": new,
                 "revenue_credit_cents": revenue, "return_per_unit": None, "band_low_cents": None,
                 "band_high_cents": None, "counted_spend_cents": None,
                 "expected_revenue_cents": revenue,
                 "revenue_change_cents": 0, "in_band": False, "note": "no current spend"}
            )
            continue
        low, high = now * (1 - width), now * (1 + width)
        if new > high:
            counted, note = high, "above band: capped"
        elif new < low:
            counted = Fraction(new) if below_band == "proportional" else low
            note = f"below band: {below_band}"
        else:
            counted, note = Fraction(new), "in band" if channel in plan else "unchanged"
        expected = round(Fraction(revenue) * counted / now)
        rows.append(
            {"channel": channel, "current_spend_cents": now, "proposed_spend_cents": new,
             "revenue_credit_cents": revenue, "return_per_unit": revenue / now,
             "band_low_cents": math.ceil(low), "band_high_cents": math.floor(high),
             "counted_spend_cents": round(counted), "expected_revenue_cents": expected,
             "revenue_change_cents": expected - revenue, "in_band": low <= new <= high,
             "note": note}
        )
    per_row = {k: v for k, v in WHAT_IF_SCHEMA.items() if k not in ("model", "channel_group")}
    frame = pl.DataFrame(rows, schema=per_row, orient="row").with_columns(
        pl.lit(model).alias("model"),
        pl.col("channel")
        .replace_strict(groups, default=None, return_dtype=pl.String)
        .alias("channel_group"),
    )
    return frame.select([pl.col(n).cast(t) for n, t in WHAT_IF_SCHEMA.items()])


__all__ = [
    "BUDGET_SCHEMA",
    "NO_WON_DEAL",
    "WHAT_IF_SCHEMA",
    "Share",
    "Verdict",
    "current_spend",  # money: keep name (the function)
    "headline",
    "largest_remainder",
    "move_evidence",
    "notes",
    "parse_bound",
    "parse_bound_option",
    "read_budget",
    "recommend_budget",
    "undecided",
    "verdict",
    "what_if",
]
