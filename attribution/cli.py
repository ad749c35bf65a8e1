"""The ``attribution`` command line: a thin layer over :mod:`attribution.commands`.

Each command checks its arguments, calls one library function (one of
:mod:`attribution.commands`, on the engine ``--engine`` names) and renders the result. Tables
and JSON go to stdout; progress, the row accounting and notes go to stderr, so
``--format json`` output can be piped. Exit codes: 0 success, 2 bad usage or bad input, 1
anything else (one line; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import polars as pl

from attribution import commands, render
from attribution.cli_options import (
    LOCATION,
    State,
    engine_options,
    evidence_options,
    experiments_option,
    format_option,
    handle_errors,
    input_options,
    make_engine,
    model_options,
    one_model_options,
    partitions_option,
    recommended_model_options,
    required_spend_option,
    spend_option,
)
from attribution.config import OUTPUT_FORMATS, writes_outside
from attribution.config import from_options as build_config
from attribution.errors import ConfigError
from attribution.output import csv_text, json_records, json_text, money_to_decimal
from attribution.pipeline import RunResult, fallback_model
from attribution.results import accounting_record
from attribution.schema import currency_decimals
from attribution.self_reported import with_dark_funnel


def report_inputs(state: State, result: RunResult, rejects_file: str | None) -> None:
    """Row accounting, rejects and unmapped sources, on stderr."""
    state.note(render.accounting_table(result.accounting),
               render.reject_reasons_table(result.accounting))
    report_notes(state, result, rejects_file)


def report_notes(state: State, result: RunResult, rejects_file: str | None) -> None:
    """Journey counts, warnings, notes of the load and the rejects file, on stderr."""
    state.note(*render.run_notes(result, rejects_file))


def fitting_models(state: State, models: list[str], *, per_model: int, fixed: int,
                   recommended: str | None = None) -> tuple[list[str], list[str]]:
    """The models whose columns fit the terminal (last-touch first, then the recommended
    model) and the rest, which the table's caption names (on stdout, so even under -q a
    partial table says what it leaves out)."""
    return render.fitting_columns(models, state.out.width, per_model=per_model, fixed=fixed,
                                  recommended=recommended)


def emit(state: State, frame: pl.DataFrame, fmt: str, table: Any, currency: str = "USD") -> None:
    """Print a result on stdout as a table, JSON (list of objects) or CSV (money in major units
    of ``currency``)."""
    decimals = currency_decimals(currency)
    if fmt == "json":  # money exact to the minor unit: 51528.20, never 51528.200000000004
        click.echo(json_text(json_records(frame, decimals=decimals)))
    elif fmt == "csv":
        click.echo(csv_text(money_to_decimal(frame, decimals=decimals), csv_raw=state.csv_raw),
                   nl=False)
    else:
        state.out.print(table)


# -- commands -------------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="revenue-attribution")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes on stderr.")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, debug: bool) -> None:
    """Multi-touch attribution for B2B revenue teams.

    Reads touchpoint, deal and contact exports, rebuilds each deal's buying-group journey and
    re-assigns its revenue to the channels that touched it, model by model, next to last-touch.

    \b
    Start with:
      attribution run --config fixtures/demo/attribution.toml
      attribution models
    """
    ctx.obj = State(quiet=quiet, debug=debug)


@cli.command(short_help="Run the models; write credit, summary and comparison files.")
@input_options
@model_options
@experiments_option
@format_option
@evidence_options
@engine_options
@partitions_option
@click.option("--out-format", type=click.Choice(OUTPUT_FORMATS),
              help="Format of the result files.  [default: parquet]")
@click.option("--wait", is_flag=True,
              help="When another run is writing the same --out, wait for it instead of "
                   "stopping.")
@click.pass_obj
@handle_errors
def run(state: State, stdout_format: str, out_format: str | None, wait: bool, engine: str,
        spark_master: str, spark_conf: tuple[str, ...], **options: Any) -> None:
    """Run the models and write touch-level credit and the channel summary.

    Writes credit.<ext> (a row per model, deal and touch: ids, status, touch index and time,
    channel and group, weight, pipeline, revenue and conversion credit), summary.<ext> (model,
    channel, group, deals touched, pipeline and revenue credit, shares), comparison.<ext>, the
    fitted models' tables (Markov removal effects and transitions, Shapley values, incremental
    effects), dark_funnel.<ext> (with self-reported answers: per channel, tracked credit next
    to self-reported credit and the deals no touch of their stated channel reached), run.json
    (row accounting, totals, input checksums, every option) and rejects.csv into --out, and
    prints the credit by channel and model next to last-touch.

    The files are written beside --out and swapped in whole: --out holds the previous result
    set until the new one is complete (after a kill, Ctrl-C or a full disk too), and run.json
    lists every file with its rows and SHA-256 (check with `attribution verify`).
    """
    config = build_config(**options)
    if out_format:
        config = config.replace(format=out_format)
    outside = writes_outside(config) if options.get("out") is None else None
    if outside is not None:  # said even under -q: the folder is replaced whole
        click.echo(f"note: {render.printable(config.config_file)} writes its results outside "
                   f"its folder, to {render.printable(outside)}", err=True)
    with state.progress() as progress:
        outcome = commands.run(config, make_engine(engine, spark_master, spark_conf), progress,
                               wait=wait)
    result = outcome.result
    report_inputs(state, result, outcome.rejects_file)
    if outcome.run_id is not None:
        state.note(f"wrote run {outcome.run_id} to {render.escape_text(config.out)}: "
                   + ", ".join(render.escape_text(p) for p in outcome.written))
    else:
        state.note("wrote " + ", ".join(render.escape_text(p) for p in outcome.written))
    models = [m.name for m in result.models]
    if stdout_format == "table":
        if len(models) == 1:
            state.out.print(render.summary_table(result.summary, result.currency, models[0]))
        else:
            shown, hidden = fitting_models(state, models, per_model=12, fixed=32,
                                           recommended=result.config.recommended)
            state.out.print(render.credit_matrix(result.summary, result.currency, shown,
                                                 hidden=hidden, elsewhere="summary"))
        if "last_touch" in models and len(models) > 1:
            shown, hidden = fitting_models(state, models, per_model=14, fixed=30,
                                           recommended=result.config.recommended)
            state.out.print(render.comparison_table(result.comparison(), result.currency,
                                                    models=shown, hidden=hidden,
                                                    elsewhere="comparison"))
        if result.dark_funnel is not None:
            state.out.print(render.dark_funnel_table(result.dark_funnel, result.currency,
                                                     fallback_model(result.config)))
            line = render.dark_funnel_line(result.dark_funnel, result.currency)
            if line is not None:
                state.out.print(line)
    else:
        emit(state, result.summary, stdout_format, None, result.currency)


@cli.command(short_help="Last-touch revenue credit next to every other model, with the shift.")
@input_options
@model_options
@experiments_option
@format_option
@evidence_options
@engine_options
@click.pass_obj
@handle_errors
def compare(state: State, stdout_format: str, engine: str, spark_master: str,
            spark_conf: tuple[str, ...], **options: Any) -> None:
    """Show last-touch revenue credit next to every other model, with the shift.

    With --format json, stdout holds only a JSON list of objects: model, channel,
    channel_group, revenue_credit, pipeline_credit, revenue_share, pipeline_share,
    last_touch_revenue_credit, last_touch_revenue_share, revenue_shift, revenue_shift_pct,
    share_shift (money in major units). With --bootstrap N each row also carries
    revenue_credit_low/high, revenue_share_low/high, last_touch_revenue_share_low/high,
    won_deals_touched and sufficient (false: too few deals to tell).

    With self-reported answers (a self_reported column on the contacts or deals) the dark
    funnel follows the table: per channel, the recommended model's tracked credit next to the
    self_reported model's, the deals stating the channel and the dark ones (no touch of it in
    their journey); in JSON each row carries its channel's tracked_revenue_credit,
    tracked_revenue_share, self_reported_revenue_credit, self_reported_revenue_share (the
    self_reported model: stated plus the fallback's credit for unanswered deals),
    stated_revenue_credit, stated_revenue_share (what buyers said, alone), stated_deals,
    stated_won_deals, dark_deals, dark_won_deals, dark_share and dark_revenue.
    """
    config = build_config(**options)
    with state.progress() as progress:
        outcome = commands.compare(config, make_engine(engine, spark_master, spark_conf),
                                   progress)
    result = outcome.result
    report_inputs(state, result, outcome.rejects_file)
    comparison = result.comparison()
    shown, hidden = fitting_models(state, [m.name for m in result.models], per_model=14,
                                   fixed=30, recommended=result.config.recommended)
    dark = result.dark_funnel
    emit(state, comparison if dark is None else with_dark_funnel(comparison, dark),
         stdout_format, render.comparison_table(comparison, result.currency, models=shown,
                                                hidden=hidden),
         result.currency)
    if dark is not None and stdout_format == "table":
        state.out.print(render.dark_funnel_table(dark, result.currency,
                                                 fallback_model(result.config)))
        line = render.dark_funnel_line(dark, result.currency)
        if line is not None:
            state.out.print(line)
    note_too_few(state, result)


@cli.command(short_help="Check the inputs: row accounting and rejects, no models.")
@input_options
@format_option
@engine_options
@click.pass_obj
@handle_errors
def validate(state: State, stdout_format: str, engine: str, spark_master: str,
             spark_conf: tuple[str, ...], **options: Any) -> None:
    """Check the inputs and print the row accounting, without running any model."""
    config = build_config(**options)
    with state.progress() as progress:
        outcome = commands.validate(config, make_engine(engine, spark_master, spark_conf),
                                    progress)
    result = outcome.result
    if stdout_format == "table":
        state.out.print(render.accounting_table(result.accounting))
        reasons = render.reject_reasons_table(result.accounting)
        if reasons is not None:
            state.out.print(reasons)
        report_notes(state, result, outcome.rejects_file)
    else:
        report_notes(state, result, outcome.rejects_file)
        decimals = currency_decimals(result.currency)
        records = [{k: v for k, v in accounting_record(a, decimals).items()
                    if k != "rejected_by_reason"} for a in result.accounting]
        keys = list(dict.fromkeys(k for record in records for k in record))
        records = [{k: record.get(k) for k in keys} for record in records]  # one shape
        if stdout_format == "json":
            click.echo(json_text(records))
        else:
            emit(state, pl.DataFrame(records, infer_schema_length=None), stdout_format, None,
                 result.currency)


@cli.command(short_help="Journey path graph (GraphML, JSON) and path statistics.")
@input_options
@click.option("--format", "stdout_format", type=click.Choice(["table", "json", "graphml"]),
              default="table", show_default=True,
              help="table: top paths, lengths, transitions; json: node-link graph; graphml: "
                   "for Gephi.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the json/graphml graph here instead of stdout.")
@click.option("--order", type=click.IntRange(1, 4), default=1, show_default=True,
              help="Markov order of the graph's states (a state is the last K channels).")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many paths the table shows.")
@click.option("--include-open", is_flag=True, help="Count open deals' journeys too.")
@engine_options
@click.pass_obj
@handle_errors
def paths(state: State, stdout_format: str, output: Path | None, order: int, top: int,
          include_open: bool, engine: str, spark_master: str, spark_conf: tuple[str, ...],
          **options: Any) -> None:
    """Journey path graph and path statistics.

    The graph has a (start) node, one node per channel (per state for --order > 1) and the
    absorbing (conversion) and (null) nodes; edges carry transition counts, probabilities,
    conversions and value. Converting journeys are won deals; non-converting are lost deals and
    accounts touched without a deal (open deals only with --include-open).
    """
    config = build_config(**options)
    chosen = make_engine(engine, spark_master, spark_conf)
    if stdout_format in ("json", "graphml"):
        with state.progress() as progress:
            outcome, network = commands.path_graph(config, chosen, progress, order=order,
                                                   include_open=include_open)
        report_inputs(state, outcome.result, outcome.rejects_file)
        if output is not None:
            written = commands.write_graph(network, output, stdout_format)
            state.note(f"wrote {render.escape_text(written)}")
        elif stdout_format == "graphml":
            click.echo(commands.graph_text(network, "graphml"), nl=False)
        else:
            click.echo(commands.graph_text(network, "json"))
        return
    with state.progress() as progress:
        stats = commands.path_statistics(config, chosen, progress, order=order, top=top,
                                         include_open=include_open)
    currency = stats.result.currency
    report_inputs(state, stats.result, stats.rejects_file)
    state.out.print(render.frame_table(
        stats.top_paths, title=f"Top {top} paths", currency=currency,
        money_columns=["revenue_cents"], share_columns=["conversion_rate"],
    ))
    state.out.print(render.frame_table(
        stats.lengths, title="Path length", currency=currency, money_columns=["revenue_cents"],
        share_columns=["conversion_rate", "share"],
    ))
    if stats.time_to_close is not None:
        state.out.print(render.frame_table(
            stats.time_to_close, title="Days from first touch to close", currency=currency,
            money_columns=["revenue_cents", "won_revenue_cents"], share_columns=["share"],
        ))
    state.out.print(render.frame_table(
        stats.transitions, title=f"Top {top} transitions", currency=currency,
        money_columns=["value_cents"], share_columns=["probability"],
    ))


def report_economics(state: State, economics: commands.Economics) -> None:
    """A run with spend: the channels spent on that no touch carries, then the inputs."""
    if economics.unspent:
        unspent = ", ".join(map(render.escape_text, economics.unspent))
        state.note(f"[yellow]spend on channels no touch has: {unspent}; "
                   "they earn no credit (rename them to a channel of the touchpoints, or add a "
                   "rule)[/yellow]")
    report_inputs(state, economics.result, economics.outcome.rejects_file)


def note_too_few(state: State, result: RunResult, models: list[str] | None = None) -> None:
    """On stderr: the run's notes on evidence (intervals, few won deals) and, per model, the
    channels with too few deals to tell."""
    from attribution.intervals import evidence_notes

    for line in evidence_notes(result, models):
        state.note(f"[yellow]{render.escape_text(line)}[/yellow]")


SCORECARD_COLUMNS = [
    "channel", "channel_group", "leads", "opportunities", "pipeline_credit_cents",
    "closed_deals", "won_deals", "revenue_credit_cents", "win_rate", "avg_deal_size_cents",
    "days_to_close", "spend_cents", "cost_per_lead_cents", "cost_per_won_deal_cents", "roas",
]
#: fractional, model-weighted counts say so in their heading (the terminal's; CSV and JSON
#: keep the columns' names)
CREDITED_LABELS = {"opportunities": "credited opps", "closed_deals": "credited closed",
                   "won_deals": "credited won"}

FUNNEL_COLUMNS = [
    "period", "channel_group", "leads", "opportunities", "pipeline_cents", "closed_deals",
    "won_deals", "won_revenue_cents", "lead_to_opportunity", "win_rate", "avg_cycle_days",
    "spend_cents", "volume_effect", "conversion_effect",
]

#: what the scorecard's figures mean, under its table (stdout: -q keeps it)
CREDITED_NOTE = ("credited opps, closed, won: each deal shared out by the model and summed (a "
                 "deal split over three channels counts a third to each); win rate = credited "
                 "won / credited closed (open deals left out, so it never passes 100%)")
SCORECARD_NOTE = (CREDITED_NOTE + "; deal size = revenue / credited won; days to close: "
                  "credit-weighted, won deals; cost/lead = spend / leads (contacts whose first "
                  "touch is the channel); cost/won = spend / credited won; ROAS = revenue / "
                  "spend; no spend, no cost")
FUNNEL_NOTE = (CREDITED_NOTE + "; opps per lead = credited opps / leads (first touches): a "
               "ratio of two attributions, not a conversion rate, so it can pass 1.00 (accounts "
               "with several deals, deals credited to a channel whose contacts were first "
               "touched by another); volume and conversion effect: the change in credited opps "
               "since the previous period from more leads, and from more opps per lead")


@cli.command(short_help="Channel economics: leads, pipeline, revenue, win rate, cost, ROAS.")
@input_options
@recommended_model_options
@experiments_option
@format_option
@spend_option
@click.option("--grain", type=click.Choice(["week", "month", "quarter"]),
              help="Funnel by period (leads, opportunities, pipeline, won revenue, rates, cycle) "
                   "in total and by channel group; without it, one scorecard per channel.")
@click.option("--by-period-channel", is_flag=True,
              help="With --grain: the channel scorecard per period instead of the funnel.")
@click.option("--no-hygiene", is_flag=True, help="Skip the pipeline-hygiene report.")
@click.option("--signup-minutes", type=click.FloatRange(min=0),
              help="Hygiene: a deal created this close to a sign-up touch, with no later sales "
                   "touch, looks auto-created.  [default: 10]")
@evidence_options
@engine_options
@click.pass_obj
@handle_errors
def scorecard(state: State, stdout_format: str, spend: Path | None, grain: str | None,
              by_period_channel: bool, no_hygiene: bool, signup_minutes: float | None,
              engine: str, spark_master: str, spark_conf: tuple[str, ...],
              **options: Any) -> None:
    """Channel economics: leads next to pipeline and revenue, win rate, deal size, cost.

    Judges channels by the pipeline and revenue they create, not by lead counts: for each
    channel (under each --model; default the recommended model, [models] recommended)
    leads (contacts whose first touch is the channel), credited opportunities, pipeline,
    credited closed and won deals, revenue, win rate (credited won / credited closed), average
    deal size, days to close, spend, cost per lead / opportunity / won deal, ROI and ROAS.
    Credited counts are each deal shared out by the model and summed; the table's caption
    defines every figure. With --grain, lead_to_opportunity ("opps per lead") is credited
    opportunities per first-touch lead: a ratio of two attributions, which can pass 1.
    """
    config = build_config(**options)
    with state.progress() as progress:
        card = commands.scorecard(
            config, make_engine(engine, spark_master, spark_conf), progress, spend_path=spend,
            grain=grain, by_period_channel=by_period_channel, hygiene=not no_hygiene,
            signup_minutes=signup_minutes,
            # the recommended model unless --model says otherwise
            models_named=bool(options.get("model_names")))
    result = card.economics.result
    report_economics(state, card.economics)
    table = card.table
    from attribution.economics import PERIOD_BASIS

    if grain and not by_period_channel:
        columns, caption = FUNNEL_COLUMNS, FUNNEL_NOTE
        title = f"Funnel by {grain}"
    else:
        columns, caption = (["period"] if grain else []) + SCORECARD_COLUMNS, SCORECARD_NOTE
        title = "Channel scorecard" + (f" by {grain}" if grain else "")
    if grain:
        state.note(f"periods count {PERIOD_BASIS}")
    if stdout_format == "table":
        for model in table.get_column("model").unique(maintain_order=True):
            rows = table.filter(pl.col("model") == model)
            if "period_label" in rows.columns:
                rows = rows.with_columns(pl.col("period_label").alias("period"))
            rows = rows.select([c for c in columns if c in rows.columns]).rename(
                CREDITED_LABELS, strict=False)
            label = f"{model} (recommended)" if model == card.recommended else model
            state.out.print(render.frame_table(
                rows, title=f"{title} - {label}", caption=caption,
                currency=result.currency, compact=True))
    else:
        emit(state, table, stdout_format, None, result.currency)
    if not grain:
        note_too_few(state, result, card.models)
    if card.hygiene is not None:
        state.note(render.frame_table(card.hygiene, title="Pipeline hygiene: deals that look "
                                      "auto-created (report only, credit unchanged)",
                                      currency=result.currency))


BUDGET_COLUMNS = [
    "channel", "channel_group", "current_spend_cents", "current_share", "revenue_share", "roas",
    "recommended_cents", "change_cents", "last_touch_recommended_cents", "decision_shift_cents",
]


@cli.command(short_help="Recommend a budget from credited revenue per dollar, vs last-touch.")
@input_options
@one_model_options
@experiments_option
@format_option
@required_spend_option
@click.option("--total",
              help="Budget to allocate (major units, e.g. 250000); default: current spend.")
@click.option("--shift", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Share of the budget moved from the current mix toward the "
                   "credited-revenue mix.")
@click.option("--floor", "floors", multiple=True, metavar="CHANNEL=AMOUNT|SHARE%",
              help="Minimum for a channel (repeatable), e.g. podcast=5000 or podcast=10%.")
@click.option("--cap", "caps", multiple=True, metavar="CHANNEL=AMOUNT|SHARE%",
              help="Maximum for a channel (repeatable).")
@click.option("--what-if", "what_if_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A proposed budget (channel, amount) to estimate revenue for.")
@click.option("--band", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="What-if: returns per unit of spend hold within +-band of current spend.")
@evidence_options
@engine_options
@click.pass_obj
@handle_errors
def budget(state: State, stdout_format: str, spend: Path | None, total: str | None, shift: float,
           floors: tuple[str, ...], caps: tuple[str, ...], what_if_path: Path | None, band: float,
           engine: str, spark_master: str, spark_conf: tuple[str, ...], **options: Any) -> None:
    """Recommend a budget from credited revenue per unit of spend, next to last-touch's.

    Needs the spend: --spend FILE, or [inputs] spend in the --config file.

    Compares each paid channel's share of spend with its share of credited revenue under
    --model (one model; default the recommended model, [models] recommended), moves --shift
    of the budget toward the revenue mix within floors and caps (the total is kept to the
    cent), and shows what changes when the decision is made on multi-touch credit rather than
    last-touch. Money moves only for channels with enough won deals to tell (--min-deals, the
    rule of every "too few deals to tell" mark) and, with --bootstrap N, whose share interval
    excludes last-touch's share; the other channels keep their share of current spend
    ("held"). With fewer than two such channels no move is supported and the title says why.
    JSON and CSV rows carry supported, evidence (why not) and unchecked_recommended /
    unchecked_change: what the model's credit alone would do.
    """
    names: tuple[str, ...] = options.get("model_names") or ()
    if len(names) > 1:
        raise ConfigError("budget takes one --model (default: the recommended model)")
    config = build_config(**options)
    with state.progress() as progress:
        plan = commands.budget(
            config, make_engine(engine, spark_master, spark_conf), progress,
            model=names[0] if names else None,
            spend_path=spend, total=total, shift=shift, floors=floors, caps=caps,
            what_if_path=what_if_path, band=band)
    result = plan.economics.result
    report_economics(state, plan.economics)
    recommendation = plan.recommendation
    shown = recommendation.select(
        [c for c in BUDGET_COLUMNS if c in recommendation.columns]
    ).rename({"revenue_share": "paid_revenue_share"}, strict=False)
    emit(state, recommendation, stdout_format,
         render.frame_table(shown, title=f"Budget recommendation - {plan.model}"
                            + (" (recommended model)" if plan.model == config.recommended else "")
                            + (" (shift "
                               f"{shift:.0%} toward credited revenue), next to the same rule on "
                               "last-touch credit" if plan.verdict.supported else
                               ": no move is supported by the data; every channel keeps its "
                               "share of current spend"),
                            currency=result.currency, compact=True),
         result.currency)
    for line in plan.notes():
        state.note(render.escape_text(line))
    note_too_few(state, result, [plan.model])
    if plan.what_if is not None:
        emit(state, plan.what_if, stdout_format,
             render.frame_table(commands.with_total_row(plan.what_if.drop("model")),
                                compact=True,
                                title=f"What if - {plan.model} (constant return per unit of "
                                f"spend within +-{band:.0%} of current spend; credited revenue, "
                                "not caused revenue: a channel's credit is not what its spend "
                                "brings in)",
                                currency=result.currency), result.currency)


CALIBRATION_COLUMNS = [
    "experiment", "channel", "start", "end", "metric", "segment", "model", "model_credit_cents",
    "lift_cents", "lift_lower_cents", "lift_upper_cents", "inside", "relative_error",
]


@cli.command(short_help="Score every model against your own holdout or lift experiments.")
@input_options
@model_options
@format_option
@click.option("--experiments", "experiments_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Experiments file: channel, start, end, metric (revenue or pipeline), lift, "
                   "lower, upper, segment (README, \"Experiments\"). Default: the config's "
                   "[inputs] experiments.")
@engine_options
@click.pass_obj
@handle_errors
def calibrate(state: State, stdout_format: str, experiments_path: Path | None, engine: str,
              spark_master: str, spark_conf: tuple[str, ...], **options: Any) -> None:
    """Set every model's credit beside your own experiments and say which model they favour.

    For each experiment (a channel, a period, the incremental revenue or pipeline the test
    measured and its interval) and each model: the model's revenue credit to the channel from
    won deals closed in the period (pipeline: its pipeline credit from deals created in it),
    whether it falls inside the interval, and its error relative to the measured lift. Models
    are ranked by mean relative error, then by the experiments they fall inside. With
    [models] recommend_by = "experiments" the favoured model is the recommended one.

    With --format json, stdout holds one object: favoured, recommended, recommend_by, caution
    (why the verdict is weak: few experiments, or a runner-up too close; else null), scores
    (rank, model, experiments, inside, mean_relative_error, mean_absolute_error) and
    experiments (one object per experiment and model; money in major units).
    """
    config = build_config(**options)
    with state.progress() as progress:
        done = commands.calibrate(config, make_engine(engine, spark_master, spark_conf),
                                  progress, experiments_path=experiments_path)
    result = done.result
    report_inputs(state, result, done.outcome.rejects_file)
    calibration = done.calibration
    if stdout_format == "json":
        decimals = currency_decimals(result.currency)
        click.echo(json_text({
            "favoured": calibration.favoured,
            "recommended": done.recommended,  # money: keep name
            "recommend_by": config.recommend_by,
            "caution": calibration.caution,
            "scores": json_records(calibration.scores, decimals=decimals),
            "experiments": json_records(calibration.table, decimals=decimals),
        }))
        return
    if stdout_format == "csv":
        emit(state, calibration.table, stdout_format, None, result.currency)
        return
    state.out.print(render.frame_table(
        calibration.table.select(CALIBRATION_COLUMNS), currency=result.currency, compact=True,
        share_columns=["relative_error"],
        title="Each model's credit for the experiment's channel and period, beside the lift "
              "the experiment measured"))
    state.out.print(render.frame_table(
        calibration.scores, currency=result.currency, share_columns=["mean_relative_error"],
        title="Models ranked by mean relative error, then by the experiments they fall inside"))
    chosen = render.escape_text(calibration.favoured)
    line = f"Your experiments favour {chosen}"
    if config.recommend_by == "experiments":
        line += " (the recommended model: [models] recommend_by = \"experiments\")"
    elif done.recommended != calibration.favoured:
        line += (f"; the recommended model is {render.escape_text(done.recommended)} (set "
                 "[models] recommend_by = \"experiments\" to follow the experiments)")
    if calibration.caution is not None:
        line += f" ({calibration.caution})"
    click.echo(line)


@cli.command(short_help="One self-contained HTML report (and PNG charts) of a run.")
@input_options
@model_options
@spend_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True,
              help="The HTML report: one file that opens offline.")
@click.option("--png", "png_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the main charts as PNG into this folder (for slides).")
@click.option("--budget-model", metavar="NAME",
              help="Model the report leads with and whose credit drives the budget section.  "
                   "[default: the recommended model, [models] recommended]")
@click.option("--evaluation", "evaluation_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder written by `attribution evaluate --out DIR`: adds each model's error "
                   "against simulated truth.")
@click.option("--experiments", "experiments_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Your holdout or lift experiments (as for `attribution calibrate`): adds "
                   "every model's credit beside them; with [models] recommend_by = "
                   "\"experiments\" the report leads with the model they favour.")
@click.option("--history", "history", metavar="URI",
              help="Database that `attribution run --out URI` keeps runs in "
                   "(postgresql://...?schema=..., history.duckdb): adds the recommended model's "
                   "credit per channel across the stored runs.  [default: [output] dir when it "
                   "is a database]")
@click.option("--history-runs", type=click.IntRange(min=1), default=commands.HISTORY_RUNS,
              show_default=True, help="How many of the latest stored runs --history shows.")
@evidence_options
@engine_options
@click.pass_obj
@handle_errors
def report(state: State, spend: Path | None, output: Path, png_dir: Path | None,
           budget_model: str | None, evaluation_dir: Path | None,
           experiments_path: Path | None, history: str | None, history_runs: int, engine: str,
           spark_master: str, spark_conf: tuple[str, ...], **options: Any) -> None:
    """Write one self-contained HTML report that opens offline.

    Leads with the decision: the recommended model against last-touch (with intervals under
    --bootstrap N), won revenue credited by month and channel, the budget move; then
    headline figures, credit by model, the shift from last-touch (demand creation in green),
    the share by channel group, a Sankey of won revenue from first to last touch, the Markov
    transition heatmap and removal effects (with --param markov.bootstrap=N: intervals), the
    channel scorecard and budget recommendation (with a spend file), and every setting, input
    checksum and row count of the run.
    """
    config = build_config(**options)
    with state.progress() as progress:
        economics, path = commands.report(
            config, make_engine(engine, spark_master, spark_conf), progress, output=output,
            spend_path=spend, png_dir=png_dir, budget_model=budget_model,
            evaluation_dir=evaluation_dir, experiments_path=experiments_path, history=history,
            history_runs=history_runs)
    report_economics(state, economics)
    state.note(f"wrote {render.escape_text(path)}"
               + (f" and PNG charts in {render.escape_text(png_dir)}" if png_dir else ""))


@cli.command(short_help="Generate a realistic B2B export from a causal world.")
@click.option("--accounts", type=click.IntRange(min=1), default=1000, show_default=True,
              help="How many accounts (about 7 touchpoints and 0.2 deals each).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--scenario", type=click.Choice(["baseline", "brand_drives_search",
                                                "last_touch_world", "no_marketing",
                                                "confounded_engagement", "engaged_closer",
                                                "unobserved_intent", "demand_capture"]),
              default="baseline", show_default=True,
              help="The causal world to simulate (the dark-funnel world of `attribution "
                   "evaluate` is --dark-channel podcast).")
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True,
              help="Length of the export, from 2025-01-01.")
@click.option("--messy", is_flag=True, help="Add realistic bad rows (see fixtures/demo/README.md).")
@click.option("--format", "file_format", type=click.Choice(["csv", "parquet", "ndjson"]),
              default="csv", show_default=True, help="Format of the export files.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("simulated"),
              show_default=True, help="Folder for touchpoints, deals, contacts and spend.")
@click.option("--experiment", "experiment_channels", multiple=True, metavar="CHANNEL",
              help="Plant holdout experiments on this channel (repeatable): experiments.csv "
                   "for `attribution calibrate`, and experiments_truth.csv with the exact truth.")
@click.option("--experiment-periods", type=click.IntRange(min=1), default=2, show_default=True,
              help="Experiments per channel: the window split into this many equal periods.")
@click.option("--experiment-noise", type=click.FloatRange(min=0), default=0.1,
              show_default=True,
              help="Standard deviation of a measurement, relative to its truth (at least 5% "
                   "of the period's won revenue); the bounds are a 95% interval.")
@click.option("--dark-channel", "dark_channels", multiple=True, metavar="CHANNEL",
              help="A channel whose touches happen (and drive revenue) but are not exported "
                   "(repeatable); implies --self-reported.")
@click.option("--self-reported", is_flag=True,
              help="Add each contact's noisy answer to \"How did you hear about us?\" "
                   "(a self_reported column on contacts: blanks, recency, don't-remembers).")
@click.pass_obj
@handle_errors
def simulate(state: State, accounts: int, seed: int, scenario: str, days: int, messy: bool,
             file_format: str, out: Path, experiment_channels: tuple[str, ...],
             experiment_periods: int, experiment_noise: float, dark_channels: tuple[str, ...],
             self_reported: bool) -> None:
    """Generate a realistic B2B export (touchpoints, deals, contacts, spend) from a causal world.

    Buying groups of several contacts, multi-week journeys where podcast, newsletter and
    community come early and paid search late, and deal creation, win rate and deal size that
    depend on the channels each account was exposed to. Deterministic for a seed.
    """
    made = commands.simulate(accounts=accounts, seed=seed, scenario=scenario, days=days,
                             messy=messy, file_format=file_format, out=out,
                             experiment_channels=experiment_channels,
                             experiment_periods=experiment_periods,
                             experiment_noise=experiment_noise,
                             dark_channels=dark_channels, self_reported=self_reported)
    export = made.export
    state.note("wrote " + ", ".join(render.escape_text(p) for p in made.written.values()))
    click.echo(
        f"{export.touchpoints.height:,} touchpoints, {export.deals.height:,} deals, "
        f"{export.contacts.height:,} contacts, {export.spend.height:,} spend rows in {out}"
    )


@cli.command(short_help="Score every model against the exact truth of simulated worlds.")
@click.option("--random-worlds", type=click.IntRange(min=0), default=20, show_default=True,
              help="Random worlds to add to the named and adversarial ones.")
@click.option("--world", "world_names", multiple=True, metavar="NAME",
              help="Evaluate only these worlds (repeatable): a scenario (baseline, "
                   "brand_drives_search, last_touch_world, no_marketing), an adversarial "
                   "world (confounded_engagement, engaged_closer), a confounded one "
                   "(unobserved_intent, demand_capture) or a dark-funnel world (dark_podcast).")
@click.option("--plant-experiments", is_flag=True,
              help="Plant holdout experiments with known truth in every world and score "
                   "incremental calibrated to them (incremental+experiments) beside the rest; "
                   "without --world: the confounded and adversarial worlds.")
@click.option("--accounts", type=click.IntRange(min=50), default=3000, show_default=True,
              help="Accounts simulated per world.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the worlds and their draws: same seed, same numbers.")
@model_options
@format_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the worlds, truth, shares, errors and summary as Parquet here.")
@click.pass_obj
@handle_errors
def evaluate(state: State, random_worlds: int, world_names: tuple[str, ...],
             plant_experiments: bool, accounts: int, seed: int, stdout_format: str,
             out: Path | None, model_names: tuple[str, ...], params: tuple[str, ...],
             **model_flags: Any) -> None:
    """Score every model against the known truth of simulated worlds.

    Each world is a simulated B2B market with an explicit causal structure; its truth is the
    exact Shapley value of each channel in the world's revenue (every other random draw held
    fixed). The table gives each model's mean absolute error of channel revenue shares, on
    demand-creation channels alone, and how often and by how much it beats last-touch.
    """
    config = build_config(None, model_names=model_names, params=params, **model_flags)
    with state.progress() as progress:
        done = commands.evaluate(config, random_worlds=random_worlds, world_names=world_names,
                                 accounts=accounts, seed=seed, out=out, progress=progress,
                                 plant_experiments=plant_experiments)
    if done.written:
        state.note(f"wrote evaluation tables to {render.escape_text(out)}")
    emit(state, done.summary, stdout_format, render.frame_table(
        done.summary, title=f"Error of each model's channel revenue shares against the truth "
        f"({done.worlds} worlds, {accounts:,} accounts each; lower is better)",
        share_columns=["mae", "mae_median", "mae_demand_creation", "misallocated", "mae_removal",
                       "improvement", "improvement_demand_creation"]))


@cli.command("models", short_help="List the registered models with their parameters.")
@click.option("--format", "stdout_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="What to print on stdout.")
@click.pass_obj
@handle_errors
def models_command(state: State, stdout_format: str) -> None:
    """List the registered models with their parameters and defaults, and the recommended
    model (what scorecard, budget and the report use unless --model says otherwise) with the
    evidence for it."""
    from attribution.config import RECOMMENDED_EVIDENCE

    records = commands.model_catalogue()
    if stdout_format == "json":
        click.echo(json.dumps(records, indent=2))
        return
    from rich.table import Table

    table = Table(title="Registered models", title_justify="left")
    table.add_column("name")
    table.add_column("what it does")
    table.add_column("parameters (defaults)")
    for record in records:
        params = ", ".join(f"{k}={v}" for k, v in record["params"].items()) or "-"
        recommended = record["recommended"]  # money: keep name
        name = record["name"] + (" (recommended)" if recommended else "")
        table.add_row(name, record["summary"], params)
    state.out.print(table)
    chosen = next(r["name"] for r in records if r["recommended"])  # money: keep name
    click.echo(f"Recommended: {chosen} (set [models] recommended to change it). "
               f"{RECOMMENDED_EVIDENCE.replace('`', '')}.")


@cli.command(short_help="The runs a database keeps, or one channel's credit run by run.")
@click.option("--out", "out", required=True, type=LOCATION, metavar="URI",
              help="The database the runs were written to: postgresql://...?schema=NAME, "
                   "duckdb:///file.duckdb or a .duckdb file.")
@click.option("--channel", metavar="NAME", help="A channel: its credit and share in each run.")
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="Only the last N runs.")
@click.option("--model", "model_name", metavar="NAME",
              help="The model whose credit --channel shows.")
@format_option
@click.pass_obj
@handle_errors
def history(state: State, out: Any, channel: str | None, last: int | None,
            model_name: str | None, stdout_format: str) -> None:
    """List the runs kept in a database (written with `attribution run --out URI`), or with
    --channel and --model that channel's credit and share in each run: "how did podcast's
    credit move week over week" as one command."""
    kept = commands.history(out, channel=channel, model=model_name, last=last)
    title = (f"{kept.channel} under {kept.model}, run by run" if kept.channel
             else f"Runs kept in {out}")
    emit(state, kept.table, stdout_format,
         render.frame_table(kept.table, title=title, currency=kept.currency), kept.currency)


@cli.command(short_help="Check a result folder against the manifest in its run.json.")
@click.argument("out", type=click.Path(path_type=Path))
@click.pass_obj
@handle_errors
def verify(state: State, out: Path) -> None:
    """Check that OUT holds one complete result set: every file run.json lists, with its rows
    and SHA-256, and no other. Exit 0 when it does, 2 (naming the first difference) when not."""
    listed = commands.verify(out)
    click.echo(f"{render.escape_text(out)}: {len(listed)} files match the manifest of run.json")


@cli.command(short_help="Write a commented attribution.toml and an editable channels.toml.")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."),
              show_default=True, help="Where to write attribution.toml and channels.toml.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--source", metavar="NAME",
              help="Also write the preset of the system your exports come from (hubspot, "
                   "salesforce, marketo_measure, ga4, generic) as NAME.toml, and point the "
                   "config at it.")
@click.pass_obj
@handle_errors
def init(state: State, directory: Path, force: bool, source: str | None) -> None:
    """Write a commented attribution.toml with every option and its default, and an editable
    copy of the built-in channel rules (channels.toml); with --source, an editable copy of
    that system's preset too."""
    written = commands.init(directory, force=force, source=source)
    state.note("wrote " + ", ".join(render.escape_text(p) for p in written))

