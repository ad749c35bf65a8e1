"""One library function per command of the CLI: each takes a config (and an engine), does the
whole job, writes what the command writes, and returns what there is to show.

The CLI (:mod:`attribution.cli`) parses the arguments, calls one of these and renders what it
returns; nothing here prints. A notebook can call them the same way::

    from attribution import commands, engine
    outcome = commands.run(load_config("attribution.toml"), engine.get_engine("polars"))
    outcome.written          # the result files
    outcome.result.summary   # channel credit per model
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from attribution import api
from attribution.compare import BASELINE
from attribution.config import Config
from attribution.engine import Engine
from attribution.errors import ConfigError, RejectRateError
from attribution.intervals import marked, sufficiency, with_intervals
from attribution.output import write_csv
from attribution.pipeline import Progress, RunResult, require_inputs, resolve_models
from attribution.results import unspent_channels, with_spend, write_results
from attribution.schema import currency_decimals
from attribution.spend import Spend


@dataclass
class Outcome:
    """A command's run and the files it wrote."""

    result: RunResult
    #: result files written, in order
    written: list[str] = field(default_factory=list)
    #: the rejects file, when rows were rejected
    rejects_file: str | None = None
    #: the run's id where the destination keeps runs (a database)
    run_id: str | None = None


def with_priors(config: Config) -> Config:
    """The config with its experiments (``[inputs] experiments`` or ``--experiments``) as the
    ``incremental`` model's priors (:mod:`attribution.models.priors`); unchanged without.

    The file is read here before the run, without the run's channels (an experiment on a
    channel the fit does not know constrains nothing); :func:`checked_experiments` validates
    it against the run afterwards, for the accounting, the rejects and the reject rate."""
    if config.experiments is None:
        return config
    from attribution.experiments import load_experiments
    from attribution.models.priors import priors_of

    found = load_experiments(config.experiments, None, currency=config.currency or "USD",
                             columns=config.columns.get("experiments"),
                             encoding=config.encoding_of("experiments"))
    params = {name: dict(values) for name, values in config.model_params.items()}
    params.setdefault("incremental", {})["priors"] = priors_of(found.rows)
    return config.replace(model_params=params)


def checked_experiments(result: RunResult) -> RunResult:
    """The run with its experiments file (if any) validated against it: accounting, rejects
    and the maximum reject rate, as for any input."""
    if result.config.experiments is None:
        return result
    from attribution.results import with_experiments
    from attribution.schema import currency_decimals

    # with_priors read the lifts before the deals named the run's currency: in USD's minor
    # unit unless --currency was given; a currency with other decimals would scale the
    # priors by a power of ten
    read_in = result.config.currency or "USD"
    if currency_decimals(read_in) != currency_decimals(result.currency):
        raise ConfigError(
            f"{result.config.experiments}: the experiments' lifts were read in {read_in} "
            f"({currency_decimals(read_in)} decimals) before the deals showed the run is in "
            f"{result.currency} ({currency_decimals(result.currency)} decimals): give "
            f"--currency {result.currency}"
        )
    experiments, _ = read_experiments(result)
    return with_experiments(result, experiments)


def _with_rejects(result: RunResult, written: list[str] | None = None) -> Outcome:
    """An outcome whose rejects (if any) are written to ``config.rejects`` when it is set:
    a command other than ``run`` never writes into a result folder."""
    path = None
    target = result.config.rejects
    if result.rejects.height and target is not None:
        path = str(write_csv(result.rejects, target, csv_raw=result.config.csv_raw))
    return Outcome(result, written or [], path)


def _with_baseline(config: Config) -> Config:
    """The config with last-touch among its models (everything is compared with it)."""
    if config.models and BASELINE not in config.models:
        return config.replace(models=(BASELINE, *config.models))
    return config


def run(config: Config, engine: Engine, progress: Progress | None = None, *,
        wait: bool = False) -> Outcome:
    """``attribution run``: the models, and the whole result set written to ``config.out``
    (the credit a model at a time as the engine allocates it; the run holds neither the
    exports nor the credit). The set lands whole or not at all (``wait``: queue behind another
    run writing the same folder instead of stopping)."""
    require_inputs(config)
    config = with_priors(config)
    writer = engine.writer(config)
    with writer.transaction(wait=wait):
        result = engine.run(config, progress, writer=writer, keep_inputs=False,
                            keep_credit=False)
        result = checked_experiments(result)
        result = with_intervals(result, progress=progress)  # a no-op without --bootstrap
        written = [writer.final(path) for path in write_results(result, writer)]
    rejects = next((w for w in written if w.endswith("rejects.csv")), None)
    if result.rejects.height and config.rejects is not None:
        rejects = str(write_csv(result.rejects, config.rejects, csv_raw=config.csv_raw))
    return Outcome(result, written, rejects, writer.run_id)


@dataclass
class History:
    """What ``attribution history`` shows: the runs kept in a database, or one channel's
    credit and share run by run."""

    table: pl.DataFrame
    channel: str | None = None
    model: str | None = None
    #: the runs' currency (a database keeps money of one scale): the money's minor unit
    currency: str = "USD"


def _runs_currency(runs: pl.DataFrame) -> str:
    """The currency of the latest run kept (USD when none is)."""
    if "currency" not in runs.columns:
        return "USD"
    kept = runs.get_column("currency").drop_nulls()
    return str(kept[-1]) if kept.len() else "USD"


def history(out: str | Path, *, channel: str | None = None, model: str | None = None,
            last: int | None = None) -> History:
    """``attribution history``: the runs a database keeps (one row each), or with ``channel``
    and ``model`` that channel's credit and share in each run."""
    from attribution import db

    if not db.is_database_uri(out):
        raise ConfigError(f"--out {out}: history is kept in a database (postgresql://... or a "
                          ".duckdb file); a folder holds one run")
    if (channel is None) != (model is None):
        raise ConfigError("history: give --channel and --model together (or neither)")
    if channel is not None and model is not None:
        trend = db.channel_history(out, channel, model, last=last)
        return History(trend, channel, model, _runs_currency(db.history(out)))
    table = db.history(out)
    return History(table.tail(last) if last else table, currency=_runs_currency(table))


def compare(config: Config, engine: Engine, progress: Progress | None = None) -> Outcome:
    """``attribution compare``: last-touch next to every other model (no credit kept); with
    ``config.bootstrap`` resamples, every model's credit carries its interval
    (:func:`attribution.intervals.with_intervals`)."""
    config = with_priors(config)
    result = engine.run(_with_baseline(config), progress, keep_inputs=False, keep_credit=False)
    result = checked_experiments(result)
    return _with_rejects(with_intervals(result, progress=progress))


def validate(config: Config, engine: Engine, progress: Progress | None = None) -> Outcome:
    """``attribution validate``: load and build journeys, for the row accounting. Inputs with
    more rejects than the maximum rate still stop it (exit 2), but only after the rejected
    rows are written where ``--rejects`` says: checking the inputs is this command's job."""
    from attribution.validation import check_reject_rate

    checked = engine.prepare(config.replace(max_reject_rate=1.0), progress, keep_inputs=False)
    outcome = _with_rejects(dataclasses.replace(checked, config=config))
    try:
        check_reject_rate(checked.accounting, config.max_reject_rate)
    except RejectRateError as exc:
        where = (f"; the rejected rows are in {outcome.rejects_file}" if outcome.rejects_file
                 else "; write them to a file with --rejects FILE")
        error = RejectRateError(f"{exc}{where}")
        error.accounting = exc.accounting
        raise error from None
    return outcome


@dataclass
class PathStatistics:
    """What ``attribution paths`` shows: top paths, path lengths, days to close, transitions."""

    result: RunResult
    journeys: Any
    top_paths: pl.DataFrame
    lengths: pl.DataFrame
    time_to_close: pl.DataFrame | None
    transitions: pl.DataFrame
    rejects_file: str | None = None


def path_graph(config: Config, engine: Engine, progress: Progress | None = None, *,
               order: int = 1, include_open: bool = False) -> tuple[Outcome, Any]:
    """``attribution paths --format json|graphml``: the journey path graph (networkx)."""
    from attribution import graph

    outcome = _with_rejects(engine.prepare(config, progress, keep_inputs=False))
    journeys = outcome.result.path_journeys(include_open=include_open)
    return outcome, graph.path_graph(journeys, order=order, include_open=include_open)


def write_graph(network: Any, output: Path, fmt: str) -> Path:
    """Write a path graph as GraphML or node-link JSON."""
    from attribution import graph

    if fmt == "graphml":
        graph.write_graphml(network, output)
    else:
        output.write_text(graph.to_node_link_json(network) + "\n", "utf-8")
    return output


def graph_text(network: Any, fmt: str) -> str:
    """A path graph as GraphML or node-link JSON text (for stdout)."""
    import io

    import networkx as nx

    from attribution import graph

    if fmt == "graphml":
        buffer = io.BytesIO()
        nx.write_graphml(network, buffer)
        return buffer.getvalue().decode("utf-8")
    return graph.to_node_link_json(network)


def path_statistics(config: Config, engine: Engine, progress: Progress | None = None, *,
                    order: int = 1, top: int = 20,
                    include_open: bool = False) -> PathStatistics:
    """``attribution paths``: path statistics of the journeys (from the engine's summed path
    counts when it has them)."""
    from attribution import graph

    outcome = _with_rejects(engine.prepare(config, progress, keep_inputs=False))
    result = outcome.result
    journeys = result.path_journeys(include_open=include_open)
    transitions = graph.transition_table(journeys, order=order, include_open=include_open)
    return PathStatistics(
        result=result,
        journeys=journeys,
        top_paths=graph.top_paths(journeys, top, include_open=include_open),
        lengths=graph.path_length_distribution(journeys, include_open=include_open),
        time_to_close=result.close_times(),
        transitions=transitions.sort(["count", "from_state", "to_state"],
                                     descending=[True, False, False]).head(top),
        rejects_file=outcome.rejects_file,
    )


def _spend(result: RunResult, spend_path: Path | None, *, required: bool) -> Spend | None:
    if spend_path is None and result.config.spend is None:
        if required:
            raise ConfigError(
                "no spend file: give --spend FILE or set [inputs] spend in the config")
        return None
    return api.read_spend(result, spend_path)


@dataclass
class Economics:
    """A run with its spend: what scorecard, budget and report read."""

    outcome: Outcome
    spend: Spend | None
    #: channels with spend that no touch carries
    unspent: list[str] = field(default_factory=list)

    @property
    def result(self) -> RunResult:
        return self.outcome.result


def _economics(config: Config, engine: Engine, progress: Progress | None,
               spend_path: Path | None, *, required: bool, keep_inputs: bool = True,
               keep_credit: bool = True, priors: bool = True) -> Economics:
    """Run, then read the spend export with the run's rules and currency; its accounting and
    rejects join the run's (a new result). ``priors``: the experiments, when given, are the
    incremental model's priors (the report grades the models against them instead)."""
    if priors:
        config = with_priors(config)
    result = engine.run(config, progress, keep_inputs=keep_inputs, keep_credit=keep_credit)
    if priors:
        result = checked_experiments(result)
    result = with_intervals(result, progress=progress)  # a no-op without --bootstrap
    spend = _spend(result, spend_path, required=required)
    unspent: list[str] = []
    if spend is not None:
        unspent = unspent_channels(result, spend)
        result = with_spend(result, spend)
    return Economics(_with_rejects(result), spend, unspent)


def _recommended(config: Config) -> Config:
    """The config with its recommended model to run when no model is named."""
    return config if config.models else config.replace(models=(config.recommended,))


def by_experiments(config: Config, engine: Engine, progress: Progress | None = None) -> Config:
    """Under ``[models] recommend_by = "experiments"`` with experiments given, the config whose
    recommended model is the one they favour (:func:`calibrate`: the config's models, or every
    model the data supports, run and graded before the command's own run); unchanged
    otherwise."""
    if config.recommend_by != "experiments" or config.experiments is None:
        return config
    return config.replace(recommended=calibrate(config, engine, progress).recommended)


@dataclass
class Scorecard:
    """What ``attribution scorecard`` shows."""

    economics: Economics
    table: pl.DataFrame
    #: deals that look auto-created (None when not asked for, or without the exports)
    hygiene: pl.DataFrame | None = None
    #: the models of the table (the recommended one unless --model named others)
    models: list[str] = field(default_factory=list)
    #: the config's recommended model
    recommended: str = ""


def scorecard(config: Config, engine: Engine, progress: Progress | None = None, *,
              spend_path: Path | None = None, grain: str | None = None,
              by_period_channel: bool = False, hygiene: bool = True,
              signup_minutes: float | None = None, models_named: bool = True) -> Scorecard:
    """``attribution scorecard``: channel economics (or the funnel by period) per model: the
    recommended model's (:func:`by_experiments`) unless ``models_named`` (the models were named
    on the command line, ``config.models``). The channel scorecard carries
    ``won_deals_touched`` and ``sufficient`` (False: too few deals to tell)."""
    from attribution import hygiene as hygiene_checks

    if not models_named:
        config = by_experiments(config, engine, progress)
        config = config.replace(models=(config.recommended,))
    config = _recommended(config)
    economics = _economics(config, engine, progress, spend_path, required=False)
    result = economics.result
    table = api.scorecard(result, economics.spend, grain=grain,
                          by_period_channel=by_period_channel)
    if not grain:
        table = _marked(table, result)
    else:  # the period as a reader names it (2025-Q1), beside its start date
        from attribution.economics import period_label

        table = table.with_columns(period_label(pl.col("period"), grain).alias("period_label"))
    report = None
    if hygiene and result.inputs is not None:
        rules = (hygiene_checks.HygieneRules() if signup_minutes is None
                 else hygiene_checks.HygieneRules(signup_minutes=signup_minutes))
        report = hygiene_checks.hygiene_report(hygiene_checks.flag_deals(result.journeys, rules))
    return Scorecard(economics, table, report, [m.name for m in result.models],
                     config.recommended)


def _marked(table: pl.DataFrame, result: RunResult) -> pl.DataFrame:
    """A per-model channel table with ``won_deals_touched`` and ``sufficient`` (from the
    run's summary: its intervals count when it has them)."""
    marked = sufficiency(result.summary, result.journeys, result.config.min_deals)
    return table.join(marked.select("model", "channel", "won_deals_touched", "sufficient"),
                      on=["model", "channel"], how="left", maintain_order="left").with_columns(
        pl.col("won_deals_touched").fill_null(0), pl.col("sufficient").fill_null(False))


@dataclass
class Budget:
    """What ``attribution budget`` shows."""

    economics: Economics
    model: str
    recommendation: pl.DataFrame
    what_if: pl.DataFrame | None = None
    #: channels held at their current share for want of evidence (too few deals to tell, or
    #: with intervals one whose share interval holds last-touch's)
    held: list[str] = field(default_factory=list)
    #: whether intervals gated the moves (the run had --bootstrap)
    gated: bool = False

    @property
    def verdict(self) -> Any:
        """Whether the data supports the moves (:func:`attribution.budget.verdict`)."""
        from attribution.budget import verdict

        return verdict(self.recommendation)

    def notes(self) -> list[str]:
        """What a reader must know about the moves (:func:`attribution.budget.notes`)."""
        from attribution.budget import notes

        result = self.economics.result
        return notes(self.recommendation, result.currency, gated=self.gated,
                     min_deals=result.config.min_deals, columns=True)


def budget(config: Config, engine: Engine, progress: Progress | None = None, *,
           model: str | None = None, spend_path: Path | None = None, total: str | None = None,
           shift: float = 0.2, floors: tuple[str, ...] = (), caps: tuple[str, ...] = (),
           what_if_path: Path | None = None, band: float = 0.5) -> Budget:
    """``attribution budget``: a budget from ``model``'s credited revenue per unit of spend
    (default: the recommended model, :func:`by_experiments`), next to the same rule on
    last-touch credit (and a what-if estimate of a proposed one). Money moves only for the
    channels with enough won deals to tell (the rule of every "too few deals to tell" mark,
    :func:`attribution.intervals.sufficiency`) and, with ``config.bootstrap`` resamples, whose
    share interval excludes last-touch's share; the other channels keep their share of the
    current spend (``held``, :func:`attribution.budget.move_evidence`)."""
    from attribution import budget as budgeting

    model = model or by_experiments(config, engine, progress).recommended
    models = (BASELINE,) if model == BASELINE else (BASELINE, model)
    economics = _economics(config.replace(models=models), engine, progress, spend_path,
                           required=True, keep_inputs=False, keep_credit=False)
    assert economics.spend is not None
    summary = economics.result.summary
    evidence = budgeting.move_evidence(marked(economics.result), model,
                                       min_deals=config.min_deals)
    decimals = currency_decimals(economics.result.currency)  # amounts given in major units
    recommendation = budgeting.recommend_budget(
        summary, economics.spend, model,
        total=budgeting.parse_bound(total, decimals) if total else None,  # type: ignore[arg-type]
        shift=shift,
        floors=dict(budgeting.parse_bound_option(f, "--floor", decimals) for f in floors),
        caps=dict(budgeting.parse_bound_option(c, "--cap", decimals) for c in caps),
        decimals=decimals,
        evidence=evidence,
    )
    estimate = None
    if what_if_path is not None:
        estimate = budgeting.what_if(budgeting.read_budget(what_if_path, decimals=decimals),
                                     summary, economics.spend, model, band=band)
    held = (recommendation.filter((pl.col("bound") == "held") & ~pl.col("supported"))
            .get_column("channel").sort().to_list())
    return Budget(economics, model, recommendation, estimate, held,
                  "revenue_share_low" in summary.columns)


def with_total_row(frame: pl.DataFrame) -> pl.DataFrame:
    """A table with a ``total`` row: money and count columns summed, the rest empty (its first
    text column reads ``total``)."""
    if frame.is_empty():
        return frame
    summed = {"current_spend_cents", "proposed_spend_cents", "revenue_credit_cents",
              "counted_spend_cents",
              "expected_revenue_cents", "revenue_change_cents", "recommended_cents", "change_cents"}
    first = next(c for c, t in frame.schema.items() if t == pl.String)
    total = frame.select(
        [pl.lit("total").alias(c) if c == first
         else pl.col(c).sum().alias(c) if c in summed
         else pl.lit(None, dtype=t).alias(c) for c, t in frame.schema.items()])
    return pl.concat([frame, total.cast(frame.schema)])


#: stored runs the report's trend shows by default (a quarter of weekly runs)
HISTORY_RUNS = 12


def report(config: Config, engine: Engine, progress: Progress | None = None, *,
           output: Path, spend_path: Path | None = None, png_dir: Path | None = None,
           budget_model: str | None = None, evaluation_dir: Path | None = None,
           experiments_path: Path | None = None, history: str | None = None,
           history_runs: int = HISTORY_RUNS) -> tuple[Economics, Path]:
    """``attribution report``: one self-contained HTML report of a run (and PNG charts), led
    by ``budget_model`` (default: the recommended model, when it ran; under ``[models]
    recommend_by = "experiments"`` with experiments given, the model they favour). With
    experiments (``experiments_path`` or ``[inputs] experiments``) the report sets every
    model's credit beside them (:func:`calibrate`). ``history`` (default: the config's
    ``[output] dir`` when it names a database) adds the led model's credit per channel across
    its last ``history_runs`` runs stored there."""
    from attribution import db
    from attribution.calibrate import calibrate as score
    from attribution.report.data import lead_model
    from attribution.results import with_experiments

    evaluation = None
    if evaluation_dir is not None:
        summary_file = evaluation_dir / "evaluation_summary.parquet"
        if not summary_file.exists():
            raise ConfigError(f"{summary_file}: not found; write it with "
                              f"`attribution evaluate --out {evaluation_dir}`")
        evaluation = pl.read_parquet(summary_file)
    # graded, not calibrated: a model calibrated to the experiments says nothing by matching them
    economics = _economics(_with_baseline(config), engine, progress, spend_path, required=False,
                           priors=False)
    result = economics.result
    names = [m.name for m in result.models]
    if budget_model is not None and budget_model not in names:
        raise ConfigError(f"--budget-model {budget_model!r} is not among the run's models: "
                          f"{', '.join(names)}")
    calibration = None
    if experiments_path is not None or config.experiments is not None:
        experiments, segments = read_experiments(result, experiments_path)
        result = with_experiments(result, experiments)
        calibration = score(result, experiments.rows, segments)
        economics = dataclasses.replace(
            economics, outcome=dataclasses.replace(_with_rejects(result),
                                                   written=economics.outcome.written))
        if budget_model is None and config.recommend_by == "experiments":
            budget_model = calibration.favoured
    chosen = budget_model or lead_model(result)
    if history is None and config.out is not None and db.is_database_uri(config.out):
        history = str(config.out)
    if history is not None and not db.is_database_uri(history):
        raise ConfigError(f"--history {history}: runs are kept in a database (postgresql://..."
                          " or a .duckdb file) by `attribution run --out`; a folder holds one")
    path = api.write_report(result, output, spend=economics.spend, budget_model=chosen,
                            png_dir=png_dir, evaluation=evaluation, calibration=calibration,
                            history=history, history_runs=history_runs)
    return economics, path


def deal_segments(config: Config) -> pl.DataFrame | None:
    """``deal_id, segment`` of the deals export when it has a ``segment`` column (or one
    ``[columns.deals] segment`` maps); None otherwise (or for deals read from a database)."""
    from attribution.reading import is_database_uri, read_header, read_table
    from attribution.validation import text

    if config.deals is None or is_database_uri(config.deals):
        return None
    mapping = config.columns.get("deals", {})
    wanted = {name: mapping.get(name, name) for name in ("deal_id", "segment")}
    encoding = config.encoding_of("deals")
    if wanted["segment"] not in read_header(config.deals, "deals", encoding=encoding):
        return None
    frame = read_table(config.deals, "deals",
                       {k: v for k, v in mapping.items() if k in wanted},
                       encoding=config.encoding_of("deals"))
    return frame.select(text("deal_id", frame).alias("deal_id"),
                        text("segment", frame).alias("segment")).filter(
        pl.col("deal_id").is_not_null())


def read_experiments(result: RunResult,
                     path: Path | None = None) -> tuple[Any, pl.DataFrame | None]:
    """The experiments file (``path``, else the config's) validated against the run (its
    channels, currency, the deals' segments, strictness and maximum reject rate), and the
    deals' segments (:func:`deal_segments`)."""
    from attribution.experiments import load_experiments
    from attribution.schema import NO_TOUCH_CHANNEL

    config = result.config
    chosen = path or config.experiments
    if chosen is None:
        raise ConfigError("no experiments file: give --experiments FILE or set [inputs] "
                          "experiments in the config")
    channels = [c for c in result.summary.get_column("channel").unique(maintain_order=True)
                if c is not None and c != NO_TOUCH_CHANNEL]
    segments = deal_segments(config)
    return load_experiments(
        chosen, channels, currency=result.currency,
        segments=None if segments is None else segments.get_column("segment").drop_nulls(),
        columns=config.columns.get("experiments"), strict=config.strict,
        max_reject_rate=config.max_reject_rate,
        encoding=config.encoding_of("experiments")), segments


@dataclass
class Calibrated:
    """What ``attribution calibrate`` shows: every model's credit beside the experiments."""

    outcome: Outcome
    #: the validated experiments file (:class:`attribution.experiments.Experiments`)
    experiments: Any
    #: :class:`attribution.calibrate.Calibration`
    calibration: Any
    #: the recommended model: the favoured one under ``recommend_by = "experiments"``
    recommended: str

    @property
    def result(self) -> RunResult:
        return self.outcome.result


def calibrate(config: Config, engine: Engine, progress: Progress | None = None, *,
              experiments_path: Path | None = None) -> Calibrated:
    """``attribution calibrate``: every model (the configured ones, or every model the data
    supports, last-touch among them) scored against the user's experiments
    (:func:`attribution.calibrate.calibrate`). The models are fitted without the experiments:
    grading a model on the numbers it was calibrated to would say nothing."""
    from attribution.calibrate import calibrate as score
    from attribution.results import with_experiments

    result = engine.run(_with_baseline(config), progress, keep_inputs=False, keep_credit=True)
    experiments, segments = read_experiments(result, experiments_path)
    result = with_experiments(result, experiments)
    calibration = score(result, experiments.rows, segments)
    recommended = (calibration.favoured if config.recommend_by == "experiments"
                   else config.recommended)
    return Calibrated(_with_rejects(result), experiments, calibration, recommended)


@dataclass
class Evaluation:
    """What ``attribution evaluate`` shows and wrote."""

    summary: pl.DataFrame
    worlds: int
    written: list[str] = field(default_factory=list)


def evaluate(config: Config, *, random_worlds: int = 20, world_names: tuple[str, ...] = (),
             accounts: int = 3000, seed: int = 0, out: Path | None = None,
             progress: Progress | None = None, plant_experiments: bool = False) -> Evaluation:
    """``attribution evaluate``: every model scored against the exact truth of simulated
    worlds (the configured models, or every model), tables written to ``out`` when given.
    ``plant_experiments``: holdout experiments are planted in every world and ``incremental``
    calibrated to them is scored too (by default in the confounded worlds,
    :data:`attribution.evaluate.CONFOUNDED`)."""
    from attribution import evaluate as evaluation
    from attribution.output import write_table

    models = resolve_models(config) if config.models or config.model_params else None
    if world_names:
        worlds = [evaluation.world_named(n) for n in world_names]
    elif plant_experiments:  # the worlds touches cannot tell from intent
        worlds = [make() for make in evaluation.CONFOUNDED.values()]
    else:
        worlds = evaluation.evaluation_worlds(random_worlds, seed)
    result = evaluation.evaluate(worlds, n_accounts=accounts, seed=seed, models=models,
                                 progress=progress, experiments=plant_experiments)
    summary = result.summary()
    written = []
    if out is not None:
        for stem, frame in [("worlds", result.worlds), ("truth", result.truth),
                            ("shares", result.shares), ("errors", result.errors),
                            ("summary", summary)]:
            written.append(str(write_table(frame, out, f"evaluation_{stem}", "parquet")))
    return Evaluation(summary, len(worlds), written)


@dataclass
class Simulation:
    """What ``attribution simulate`` wrote."""

    export: Any
    written: dict[str, Path]


def simulate(*, accounts: int, seed: int = 0, scenario: str = "baseline", days: int = 365,
             messy: bool = False, file_format: str = "csv",
             out: Path = Path("simulated"), experiment_channels: tuple[str, ...] = (),
             experiment_periods: int = 2, experiment_noise: float = 0.1,
             dark_channels: tuple[str, ...] = (), self_reported: bool = False) -> Simulation:
    """``attribution simulate``: a realistic B2B export from a causal world (a scenario, an
    adversarial or a confounded world of :mod:`attribution.evaluate`), written to ``out``;
    with ``experiment_channels``, planted holdout experiments with known truth beside it
    (:func:`attribution.simulate.plant_experiments`: experiments.csv, experiments_truth.csv);
    ``dark_channels`` left out of the touchpoints and, with ``self_reported`` (or dark
    channels), each contact's noisy "How did you hear about us?" answer
    (:func:`attribution.simulate.with_dark_funnel`)."""
    from attribution import simulate as simulation
    from attribution.evaluate import world_named

    export = simulation.simulate(accounts, seed=seed, world=world_named(scenario),
                                 days=days, messy=messy)
    if dark_channels or self_reported:
        export = simulation.with_dark_funnel(export, simulation.DarkFunnel(dark=dark_channels))
    written = simulation.write_export(export, out, format=file_format)
    if experiment_channels:
        planted = simulation.plant_experiments(export, experiment_channels,
                                               periods=experiment_periods,
                                               noise=experiment_noise, seed=seed)
        written.update(simulation.write_experiments(planted, out))
    return Simulation(export, written)


def model_catalogue() -> list[dict[str, Any]]:
    """``attribution models``: every registered model with its parameters and defaults."""
    from attribution.models import MODELS

    recommended = Config().recommended
    return [
        {"name": name, "label": cls.label, "summary": cls.summary,
         "params": {k: list(v) if isinstance(v, tuple) else v for k, v in cls().params().items()},
         "recommended": name == recommended}  # money: keep name
        for name, cls in MODELS.items()
    ]


def verify(out: Path) -> list[dict[str, Any]]:
    """``attribution verify``: a result folder checked against its run.json manifest."""
    from attribution.resultset import verify as verify_folder

    return verify_folder(out)


def init(directory: Path, *, force: bool = False, source: str | None = None) -> list[Path]:
    """``attribution init``: a commented attribution.toml with every option and its default,
    and an editable copy of the built-in channel rules (channels.toml); with ``source`` (a
    preset name) an editable copy of that preset (``NAME.toml``), which the config names."""
    from attribution.channels import default_rules_text
    from attribution.config import check_source, config_template
    from attribution.sources import PRESET_NAMES, preset_text

    if source is not None:
        source = check_source(source, where="--source")
        if source not in PRESET_NAMES:
            raise ConfigError(f"--source {source!r}: init copies a built-in preset; valid: "
                              f"{', '.join(PRESET_NAMES)}")
    template = config_template(source).replace(
        '# rules = "channels.toml"  # default: the built-in rules (attribution init writes a copy)',
        'rules = "channels.toml"    # edit it: utm source/medium -> channel, group')
    files = {directory / "attribution.toml": template,
             directory / "channels.toml": default_rules_text()}
    if source is not None:
        files[directory / f"{source}.toml"] = preset_text(source)
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist; use --force to overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        path.write_text(content, "utf-8")
    return list(files)


__all__ = [
    "Budget",
    "Calibrated",
    "Economics",
    "Evaluation",
    "Outcome",
    "PathStatistics",
    "Scorecard",
    "Simulation",
    "budget",
    "calibrate",
    "checked_experiments",
    "compare",
    "deal_segments",
    "evaluate",
    "graph_text",
    "history",
    "init",
    "model_catalogue",
    "path_graph",
    "path_statistics",
    "read_experiments",
    "report",
    "run",
    "scorecard",
    "simulate",
    "validate",
    "verify",
    "with_priors",
    "with_total_row",
    "write_graph",
]
