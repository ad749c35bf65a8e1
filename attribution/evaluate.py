"""How wrong is each model? Score every model against the exact truth of simulated worlds.

In a world from :mod:`attribution.simulate` we know what every channel really contributed,
so each model's channel credit can be compared with it. For each world this module

1. simulates the export (``simulate(n_accounts, seed=..., world=...)``) and runs it through
   the real pipeline (written to Parquet, loaded with the default channel rules, journeys
   built with the default lookback), exactly as a user's export would be;
2. computes two exact truths, with no sampling error for the seed:

   * the **Shapley truth** (:func:`attribution.simulate.shapley_truth`): the Shapley value of
     each channel in ``v(S)`` = won revenue when only the channels in ``S`` are on, every other
     draw fixed. It splits the revenue marketing causes, ``v(all) - v(none)``, among channels,
     so it is the natural target for a model that splits revenue;
   * the **removal truth** (:func:`attribution.simulate.ground_truth`): the revenue lost when
     one channel (and the touches it caused) is removed. Interactions mean these need not add
     up to anything;

3. turns every model's credit and both truths into **channel revenue shares** and scores them.

Shares, precisely
-----------------
The channels scored in a world are the world's channels plus any channel a model credited
(noise touches can land on channels outside the world, whose truth is 0), never the
``(no touch)`` pseudo-channel (deals with no marketing touch are not marketing's to split).
A model's share of channel ``c`` is its revenue credit to ``c`` over its revenue credit to
all scored channels. A truth's share is its value over the sum of the *absolute* values of
all scored channels (a channel can truly lose money; dividing by the signed sum would blow up
when positive and negative effects cancel). When no truth value is negative the two
normalisations agree; when some are, no model (credit is never negative) can reach an error
of 0, and that floor is part of the honest score.

Errors per world and model (:attr:`Evaluation.errors`):

* ``mae``: mean over scored channels of ``|model share - Shapley share|``;
* ``mae_demand_creation``: the same mean over the demand-creation channels only (channel
  group ``demand_creation`` in the default rules: podcast, newsletter, community, events,
  webinar, organic and paid social, content); null when the world has none;
* ``misallocated``: half the summed absolute error, the share of revenue credited to the
  wrong channels (0 = perfect, 1 = everything on the wrong channels);
* ``mae_removal``: ``mae`` against the removal truth instead.

:meth:`Evaluation.summary` averages them per model over the worlds and says in how many worlds
each model beats last-touch and by how much.

>>> from attribution.simulate import scenario
>>> result = evaluate([scenario("brand_drives_search")], n_accounts=400, models=["last_touch"])
>>> result.errors.columns[:4]
['world', 'kind', 'model', 'mae']
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from attribution.channels import load_rules
from attribution.compare import BASELINE
from attribution.config import Config
from attribution.errors import ConfigError
from attribution.models import MODELS, AttributionModel, get_model
from attribution.models.base import NEEDS_SELF_REPORTED
from attribution.models.incremental import IncrementalModel
from attribution.models.priors import ChannelPrior
from attribution.pipeline import prepare, run_models
from attribution.schema import NO_TOUCH_CHANNEL
from attribution.simulate import (
    SCENARIOS,
    DarkFunnel,
    SimulatedExport,
    World,
    ground_truth,
    plant_experiments,
    random_world,
    scenario,
    shapley_truth,
    simulate,
    with_dark_funnel,
    write_export,
)

Progress = Callable[[str, int, int], None]

DEMAND_CREATION = "demand_creation"

#: one row per world evaluated
WORLD_SCHEMA = pl.Schema(
    {
        "world": pl.String,
        "kind": pl.String,  # scenario | adversarial | dark_funnel | random
        "seed": pl.Int64,
        "accounts": pl.Int64,
        "channels": pl.UInt32,
        "causal_links": pl.UInt32,
        "last_touch_only": pl.Boolean,
        "won_deals": pl.Int64,
        "won_revenue_cents": pl.Int64,  # cents, inside the window
        "incremental_revenue_cents": pl.Int64,  # cents: v(all channels) - v(no channel)
        "seconds": pl.Float64,  # simulate + truths + every model
    }
)

#: the truth of every world, one row per (world, channel of the world)
TRUTH_SCHEMA = pl.Schema(
    {
        "world": pl.String,
        "channel": pl.String,
        "channel_group": pl.String,
        "revenue_removed_cents": pl.Int64,  # cents lost when the channel is removed
        "removal_share": pl.Float64,
        "shapley_revenue_cents": pl.Float64,  # cents: Shapley value of the true revenue function
        "shapley_share": pl.Float64,
    }
)

#: every model's share next to the truth, one row per (world, model, scored channel)
SHARE_SCHEMA = pl.Schema(
    {
        "world": pl.String,
        "kind": pl.String,
        "model": pl.String,
        "channel": pl.String,
        "channel_group": pl.String,
        "revenue_credit_cents": pl.Int64,  # cents the model credits
        "share": pl.Float64,  # the model's share
        "shapley_share": pl.Float64,
        "removal_share": pl.Float64,
        "error": pl.Float64,  # share - shapley_share
    }
)

#: one row per (world, model)
ERROR_SCHEMA = pl.Schema(
    {
        "world": pl.String,
        "kind": pl.String,
        "model": pl.String,
        "mae": pl.Float64,
        "mae_demand_creation": pl.Float64,
        "misallocated": pl.Float64,
        "mae_removal": pl.Float64,
        "last_touch_mae": pl.Float64,
        "beats_last_touch": pl.Boolean,
    }
)

#: one row per model, over all worlds (:meth:`Evaluation.summary`)
SUMMARY_SCHEMA = pl.Schema(
    {
        "model": pl.String,
        "worlds": pl.UInt32,
        "mae": pl.Float64,  # mean over worlds
        "mae_median": pl.Float64,
        "mae_demand_creation": pl.Float64,  # mean over worlds with demand-creation channels
        "misallocated": pl.Float64,
        "mae_removal": pl.Float64,
        "beats_last_touch": pl.UInt32,  # worlds where the model's mae < last-touch's
        "improvement": pl.Float64,  # 1 - mean mae / last-touch's mean mae
        "improvement_demand_creation": pl.Float64,
    }
)


# -- worlds -------------------------------------------------------------------------------------


def _confounded_engagement() -> World:
    """A world built to fool the ``incremental`` model: engagement, not brand, drives revenue.

    Accounts differ a lot in engagement (Gamma shape 0.2), so an engaged account sees many
    channels. Early brand channels (podcast, newsletter, community) have *no* effect and cause
    nothing; the late channels (paid search, review sites, direct) do. Engaged accounts see the
    brand channels early *and* convert more (through the late channels), so a model that
    adjusts an early channel for nothing before it reads engagement as a brand effect. There
    are no noise touches, so a deal's last touch is usually a channel that works: last-touch
    is close to right here.
    """
    brand = {"podcast": 0.25, "newsletter": 0.25, "community": 0.2}
    late = {"paid_search": 0.2, "review_sites": 0.12, "direct": 0.25}
    return World(
        name="confounded_engagement",
        reach=brand | late,
        stage={
            "podcast": 0.1,
            "newsletter": 0.2,
            "community": 0.22,
            "paid_search": 0.75,
            "review_sites": 0.8,
            "direct": 0.92,
        },
        touches_per_exposure={"podcast": 2.5, "newsletter": 2.5, "community": 2.0},
        engagement_shape=0.2,
        deal_effect={"paid_search": 1.2, "review_sites": 1.0, "direct": 0.9},
        win_effect={"review_sites": 0.4},
        base_deal_logit=-3.2,
        base_win_logit=-0.8,
        noise_touches=0.0,
    )


def _engaged_closer() -> World:
    """A world built so that last-touch is right and the ``incremental`` model is not.

    Only direct visits (the closing channel, always the latest) create deals. Podcast,
    newsletter, community and paid search do nothing and cause nothing, but engagement is
    very uneven (Gamma shape 0.2) and no noise touches: the accounts that come back directly
    are the engaged ones, who also heard the podcast and clicked ads. Every path-reading model
    spreads credit over the inert channels; the incremental model adjusts the podcast for
    nothing before it and reads engagement as a podcast effect.
    """
    return World(
        name="engaged_closer",
        reach={"podcast": 0.3, "newsletter": 0.3, "community": 0.25}
        | {"paid_search": 0.25, "direct": 0.3},
        stage={"podcast": 0.1, "newsletter": 0.2, "community": 0.22}
        | {"paid_search": 0.6, "direct": 0.95},
        stage_spread=0.05,
        touches_per_exposure={"podcast": 2.5, "newsletter": 2.5, "community": 2.0},
        engagement_shape=0.2,
        deal_effect={"direct": 1.8},
        base_deal_logit=-3.2,
        base_win_logit=-0.6,
        noise_touches=0.0,
    )


#: worlds built to expose a model's assumptions (name -> constructor)
ADVERSARIAL = {
    "confounded_engagement": _confounded_engagement,
    "engaged_closer": _engaged_closer,
}


def _unobserved_intent() -> World:
    """A world where intent no touch records drives revenue (``World.intent_effect``).

    Engagement is uneven (Gamma shape 0.4) and raises deal creation directly. Engaged accounts
    see more of everything, and events, review sites and direct visits (many touches per
    exposure) most visibly; those three do almost nothing. Podcast (which sends people to
    paid search), paid search, newsletter and email do work. Every model that reads touches
    credits the intent to the channels the engaged accounts see.
    """
    return World(
        name="unobserved_intent",
        reach={"podcast": 0.2, "newsletter": 0.25, "events": 0.15, "paid_search": 0.25,
               "review_sites": 0.15, "email": 0.3, "direct": 0.3},
        stage={"podcast": 0.1, "newsletter": 0.2, "events": 0.3, "email": 0.5,
               "paid_search": 0.6, "review_sites": 0.75, "direct": 0.9},
        touches_per_exposure={"events": 2.0, "review_sites": 2.0, "direct": 3.0},
        causes={("podcast", "paid_search"): 0.3},
        engagement_shape=0.4,
        intent_effect=1.0,
        deal_effect={"podcast": 0.5, "paid_search": 0.6, "newsletter": 0.2, "email": 0.2,
                     "events": 0.1},
        base_deal_logit=-3.0,
    )


def _demand_capture() -> World:
    """A world where demand capture really drives most revenue: paid search and review sites
    create most deals, brand channels barely matter, and engaged accounts (who see more of
    everything) also buy somewhat more (``intent_effect`` 0.5). Direct visits come last and do
    nothing, so last-touch hands them credit that belongs to the search and the review; a
    model that spreads credit to early channels is wrong too."""
    return World(
        name="demand_capture",
        reach={"podcast": 0.2, "newsletter": 0.25, "community": 0.15, "paid_search": 0.35,
               "review_sites": 0.25, "direct": 0.3},
        stage={"podcast": 0.1, "newsletter": 0.2, "community": 0.25, "paid_search": 0.7,
               "review_sites": 0.8, "direct": 0.92},
        deal_effect={"paid_search": 1.4, "review_sites": 1.2, "podcast": 0.1, "newsletter": 0.1},
        win_effect={"review_sites": 0.3},
        engagement_shape=0.6,
        intent_effect=0.5,
        base_deal_logit=-3.3,
    )


#: worlds where touches cannot tell a channel's effect from the intent of the accounts that
#: see it, for the evaluation with and without planted experiments (name -> constructor)
CONFOUNDED = {
    "confounded_engagement": _confounded_engagement,
    "engaged_closer": _engaged_closer,
    "unobserved_intent": _unobserved_intent,
    "demand_capture": _demand_capture,
}

#: channels a team can switch off for a holdout, in the order experiments are planted on them
EXPERIMENTED_CHANNELS = ("paid_search", "review_sites", "events", "podcast")

#: the label of ``incremental`` calibrated to the planted experiments
WITH_EXPERIMENTS = "incremental+experiments"


def experimented_channels(world: World, most: int = 3) -> list[str]:
    """The channels of ``world`` experiments are planted on: the first ``most`` of
    :data:`EXPERIMENTED_CHANNELS` the world has."""
    return [c for c in EXPERIMENTED_CHANNELS if c in world.channels][:most]


def world_named(name: str) -> World:
    """A scenario, an adversarial, a confounded or a dark-funnel world by name."""
    known: dict[str, Callable[[], World]] = {
        **{n: functools.partial(scenario, n) for n in SCENARIOS}, **ADVERSARIAL, **CONFOUNDED,
        **{n: make for n, (make, _) in DARK_FUNNEL_WORLDS.items()}}
    if name not in known:
        raise ConfigError(f"unknown world {name!r}; valid: {', '.join(sorted(known))}")
    return known[name]()

def _dark_podcast() -> World:
    """A world whose strongest brand channel is dark: podcast listens happen, make deals more
    likely and send listeners to search and direct visits, but the export has no podcast
    touch (:class:`~attribution.simulate.DarkFunnel`). Buyers answer "How did you hear about
    us?" with noise: a third leave it blank, some name the last thing they saw, some do not
    remember. Touch-based models can only credit the search and direct visits the podcast
    caused; the self-reported models can read the podcast from the answers.
    """
    base = scenario("brand_drives_search")
    return dataclasses.replace(
        base, name="dark_podcast",
        reach={**base.reach, "podcast": 0.25},
        deal_effect={**base.deal_effect, "podcast": 0.7},
    )


#: worlds whose export misses channels and carries self-reported answers: name ->
#: (constructor, how the export is darkened); the self-reported models are scored only here
DARK_FUNNEL_WORLDS: dict[str, tuple[Callable[[], World], DarkFunnel]] = {
    "dark_podcast": (_dark_podcast, DarkFunnel(dark=("podcast",))),
}


def evaluation_worlds(random_worlds: int = 20, seed: int = 0) -> list[World]:
    """The default evaluation set: every named scenario, every adversarial world, and
    ``random_worlds`` random worlds ``random_world(seed)``, ``random_world(seed + 1)``, ...

    >>> [w.name for w in evaluation_worlds(2, seed=7)][-2:]
    ['random_7', 'random_8']
    """
    named = [scenario(name) for name in SCENARIOS]
    adversarial = [make() for make in ADVERSARIAL.values()]
    dark = [make() for make, _ in DARK_FUNNEL_WORLDS.values()]
    return (named + adversarial + dark
            + [random_world(seed + i) for i in range(random_worlds)])


def _kind(world: World) -> str:
    if world.name in SCENARIOS:
        return "scenario"
    if world.name in ADVERSARIAL:
        return "adversarial"
    if world.name in CONFOUNDED:
        return "confounded"
    if world.name in DARK_FUNNEL_WORLDS:
        return "dark_funnel"
    return "random"


def world_export(world: World, n_accounts: int, seed: int) -> SimulatedExport:
    """The export of ``world`` as :func:`evaluate` scores it: simulated, and for a world of
    :data:`DARK_FUNNEL_WORLDS` darkened (its dark channels' touches left out, self-reported
    answers added: :func:`~attribution.simulate.with_dark_funnel`)."""
    export = simulate(n_accounts, seed=seed, world=world)
    if world.name in DARK_FUNNEL_WORLDS:
        export = with_dark_funnel(export, DARK_FUNNEL_WORLDS[world.name][1])
    return export


# -- truth --------------------------------------------------------------------------------------


def world_truth(export: SimulatedExport) -> pl.DataFrame:
    """Both exact truths of a simulated export, with shares (see the module docstring).

    Returns :data:`TRUTH_SCHEMA`: one row per channel of the world, in the simulator's channel
    order; ``world`` is the world's name.
    """
    removal = ground_truth(export).select("channel", "revenue_removed_cents")
    shapley = shapley_truth(export).select("channel", "shapley_revenue_cents")
    groups = load_rules().groups
    truth = removal.join(shapley, on="channel", how="left", maintain_order="left")
    return truth.select(
        pl.lit(export.world.name).alias("world"),
        "channel",
        pl.col("channel").replace_strict(groups, default="other").alias("channel_group"),
        "revenue_removed_cents",
        _abs_share(pl.col("revenue_removed_cents")).alias("removal_share"),
        "shapley_revenue_cents",
        _abs_share(pl.col("shapley_revenue_cents")).alias("shapley_share"),
    ).cast(TRUTH_SCHEMA)


def _abs_share(value: pl.Expr) -> pl.Expr:
    total = value.abs().sum()
    return pl.when(total != 0).then(value.cast(pl.Float64) / total).otherwise(0.0)


# -- the evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """Every model scored on every world; polars frames with the schemas above.

    Attributes
    ----------
    worlds
        :data:`WORLD_SCHEMA`: what each world was and how long it took.
    truth
        :data:`TRUTH_SCHEMA`: both truths per world and channel.
    shares
        :data:`SHARE_SCHEMA`: each model's channel shares next to the truth (chart this:
        model share against Shapley share, per world).
    errors
        :data:`ERROR_SCHEMA`: per world and model.
    """

    worlds: pl.DataFrame
    truth: pl.DataFrame
    shares: pl.DataFrame
    errors: pl.DataFrame

    def summary(self) -> pl.DataFrame:
        """Per model over every world (:data:`SUMMARY_SCHEMA`), best ``mae`` first."""
        return summarise_errors(self.errors)


def summarise_errors(errors: pl.DataFrame) -> pl.DataFrame:
    """Aggregate :data:`ERROR_SCHEMA` rows per model (see :meth:`Evaluation.summary`)."""
    per_model = errors.group_by("model").agg(
        pl.len().cast(pl.UInt32).alias("worlds"),
        pl.col("mae").mean(),
        pl.col("mae").median().alias("mae_median"),
        pl.col("mae_demand_creation").mean(),
        pl.col("misallocated").mean(),
        pl.col("mae_removal").mean(),
        pl.col("beats_last_touch").sum().cast(pl.UInt32),
    )
    baseline = per_model.filter(pl.col("model") == BASELINE).select(
        pl.col("mae").alias("_lt"), pl.col("mae_demand_creation").alias("_lt_dc")
    )
    if baseline.height == 0:
        baseline = pl.DataFrame(
            {"_lt": [None], "_lt_dc": [None]}, schema={"_lt": pl.Float64, "_lt_dc": pl.Float64}
        )
    return (
        per_model.join(baseline, how="cross")
        .with_columns(
            ((pl.col("_lt") - pl.col("mae")) / pl.col("_lt")).alias("improvement"),
            ((pl.col("_lt_dc") - pl.col("mae_demand_creation")) / pl.col("_lt_dc")).alias(
                "improvement_demand_creation"
            ),
        )
        .sort("mae", "model")
        .select(list(SUMMARY_SCHEMA))
        .cast(SUMMARY_SCHEMA)
    )


def evaluate(
    worlds: Sequence[World] | None = None,
    *,
    n_accounts: int = 3000,
    seed: int = 0,
    models: Sequence[str | AttributionModel] | None = None,
    progress: Progress | None = None,
    experiments: bool = False,
) -> Evaluation:
    """Run models on simulated worlds and score their channel revenue shares against the truth.

    Parameters
    ----------
    worlds
        The worlds to evaluate; :func:`evaluation_worlds` (the named scenarios, the
        adversarial worlds and 20 random worlds from ``seed``) when omitted.
    n_accounts
        Accounts simulated per world.
    seed
        World ``i`` (0-based, in the order given) is simulated with seed ``seed + i``; the
        default random worlds are ``random_world(seed + i)``.
    models
        Model names or instances; every registered model with its default parameters when
        omitted. Last-touch is added if missing (it is the baseline every model is compared
        with). A model that cannot run on the journeys (it raises ``ModelError``) is an error,
        except the self-reported models (``self_reported``, ``blended``), which are scored
        only in the worlds whose export carries answers (:data:`DARK_FUNNEL_WORLDS`).
    progress
        Called as ``progress("world <name>", done, total)``.
    experiments
        Also plant holdout experiments in every world (:func:`experimented_channels`, two
        periods each, 10% noise: :func:`attribution.simulate.plant_experiments`) and score
        ``incremental`` calibrated to them (:data:`WITH_EXPERIMENTS`) beside the models
        without them. The other models do not read experiments: their errors are unchanged.

    Returns
    -------
    Evaluation
        Deterministic for given arguments: same worlds, seed and models, same frames (except
        the ``seconds`` column of ``worlds``).
    """
    chosen = list(evaluation_worlds(seed=seed) if worlds is None else worlds)
    instances = [get_model(m) for m in (models if models is not None else list(MODELS))]
    if BASELINE not in {m.name for m in instances}:
        instances.insert(0, get_model(BASELINE))
    names = [_model_label(m, instances) for m in instances]
    report = progress or (lambda _stage, _done, _total: None)
    world_rows, truths, shares = [], [], []
    for index, world in enumerate(chosen):
        report(f"world {world.name}", index, len(chosen))
        started = time.perf_counter()
        export = world_export(world, n_accounts, seed + index)
        truth = world_truth(export)
        world_models, world_names = instances, names
        if experiments and experimented_channels(world):
            planted = plant_experiments(export, experimented_channels(world), seed=seed + index)
            world_models = [*instances, _calibrated(instances, planted)]
            world_names = [*names, WITH_EXPERIMENTS]
        credit = _model_credit(export, world_models, world_names)
        shares.append(score_shares(truth, credit, _kind(world)))
        truths.append(truth)
        everything = export.outcomes()
        nothing = export.outcomes(world.channels)
        world_rows.append(
            {
                "world": world.name,
                "kind": _kind(world),
                "seed": seed + index,
                "accounts": n_accounts,
                "channels": len(world.channels),
                "causal_links": len(world.causes),
                "last_touch_only": world.last_touch_only,
                "won_deals": int((everything.is_closed & everything.won).sum()),
                "won_revenue_cents": everything.revenue_cents,
                "incremental_revenue_cents": everything.revenue_cents - nothing.revenue_cents,
                "seconds": time.perf_counter() - started,
            }
        )
    report("worlds", len(chosen), len(chosen))
    share_frame = pl.concat(shares) if shares else pl.DataFrame(schema=SHARE_SCHEMA)
    return Evaluation(
        worlds=pl.DataFrame(world_rows, schema=WORLD_SCHEMA, orient="row"),
        truth=pl.concat(truths) if truths else pl.DataFrame(schema=TRUTH_SCHEMA),
        shares=share_frame,
        errors=share_errors(share_frame),
    )


def _calibrated(models: list[AttributionModel], planted: pl.DataFrame) -> AttributionModel:
    """The run's ``incremental`` (its parameters, or the defaults) with the planted
    experiments as its priors."""
    base = next((m for m in models if m.name == IncrementalModel.name), None)
    params = base.params() if base is not None else {}
    priors = tuple(
        ChannelPrior(r["channel"], r["start"].isoformat(), r["end"].isoformat(), r["metric"],
                     int(r["lift"]))
        for r in planted.iter_rows(named=True))
    return IncrementalModel(**{**params, "priors": priors})


def _model_label(model: AttributionModel, models: list[AttributionModel]) -> str:
    """The model's name, with its non-default parameters when the name alone is ambiguous."""
    if sum(m.name == model.name for m in models) == 1:
        return model.name
    default = type(model)().params()
    changed = [f"{k}={v}" for k, v in model.params().items() if default.get(k) != v]
    return f"{model.name}({', '.join(changed)})" if changed else model.name


def _model_credit(
    export: SimulatedExport, models: list[AttributionModel], names: list[str]
) -> pl.DataFrame:
    """``model, channel, revenue_credit`` of every model on the export, via the pipeline."""
    with tempfile.TemporaryDirectory(prefix="attribution-evaluate-") as directory:
        paths = write_export(export, Path(directory), format="parquet")
        prepared = prepare(
            Config(
                touchpoints=paths["touchpoints"], deals=paths["deals"], contacts=paths["contacts"]
            )
        )
        frames = []
        for model, name in zip(models, names, strict=True):
            if NEEDS_SELF_REPORTED in model.needs and prepared.journeys.stated is None:
                continue  # a world without answers: the self-reported models are not scored
            _, summary = run_models(prepared.journeys, [model])
            frames.append(summary.select(pl.lit(name).alias("model"), "channel",
                                         "revenue_credit_cents"))
    return pl.concat(frames)


def score_shares(truth: pl.DataFrame, credit: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Every model's shares over the scored channels, next to both truths' shares."""
    world = truth["world"][0]
    groups = load_rules().groups
    scored = credit.filter(pl.col("channel") != NO_TOUCH_CHANNEL)
    channels = pl.concat([truth.select("channel"), scored.select("channel")]).unique(
        maintain_order=True
    )
    models = credit.select("model").unique(maintain_order=True)
    truth_values = truth.select("channel", "revenue_removed_cents", "shapley_revenue_cents")
    grid = (
        models.join(channels, how="cross")
        .join(scored, on=["model", "channel"], how="left")
        .join(truth_values, on="channel", how="left")
        .with_columns(pl.col("revenue_credit_cents", "revenue_removed_cents",
                             "shapley_revenue_cents").fill_null(0))
    )
    total = pl.col("revenue_credit_cents").sum().over("model")
    share = pl.when(total != 0).then(pl.col("revenue_credit_cents") / total).otherwise(0.0)
    return (
        grid.with_columns(
            pl.lit(world).alias("world"),
            pl.lit(kind).alias("kind"),
            pl.col("channel").replace_strict(groups, default="other").alias("channel_group"),
            share.alias("share"),
            _abs_share_over(pl.col("shapley_revenue_cents")).alias("shapley_share"),
            _abs_share_over(pl.col("revenue_removed_cents")).alias("removal_share"),
        )
        .with_columns((pl.col("share") - pl.col("shapley_share")).alias("error"))
        .select(list(SHARE_SCHEMA))
        .cast(SHARE_SCHEMA)
    )


def _abs_share_over(value: pl.Expr) -> pl.Expr:
    total = value.abs().sum().over("model")
    return pl.when(total != 0).then(value.cast(pl.Float64) / total).otherwise(0.0)


def share_errors(shares: pl.DataFrame) -> pl.DataFrame:
    """Per world and model: the error measures of the module docstring."""
    demand = pl.col("channel_group") == DEMAND_CREATION
    per_model = shares.group_by("world", "kind", "model", maintain_order=True).agg(
        pl.col("error").abs().mean().alias("mae"),
        pl.col("error").abs().filter(demand).mean().alias("mae_demand_creation"),
        (pl.col("error").abs().sum() / 2).alias("misallocated"),
        (pl.col("share") - pl.col("removal_share")).abs().mean().alias("mae_removal"),
    )
    baseline = per_model.filter(pl.col("model") == BASELINE).select(
        "world", pl.col("mae").alias("last_touch_mae")
    )
    return (
        per_model.join(baseline, on="world", how="left", maintain_order="left")
        .with_columns((pl.col("mae") < pl.col("last_touch_mae")).alias("beats_last_touch"))
        .select(list(ERROR_SCHEMA))
        .cast(ERROR_SCHEMA)
    )


__all__ = [
    "ADVERSARIAL",
    "CONFOUNDED",
    "EXPERIMENTED_CHANNELS",
    "DARK_FUNNEL_WORLDS",
    "ERROR_SCHEMA",
    "SHARE_SCHEMA",
    "SUMMARY_SCHEMA",
    "TRUTH_SCHEMA",
    "WITH_EXPERIMENTS",
    "WORLD_SCHEMA",
    "Evaluation",
    "evaluate",
    "evaluation_worlds",
    "experimented_channels",
    "summarise_errors",
    "world_named",
    "world_export",
    "world_truth",
]
