"""The command line's shared pieces: the state of one invocation (consoles, progress, quiet),
the error edge every command goes through (one line, exit 2 for bad input, 130 for Ctrl-C), and
the options the commands share (inputs, models, engines, formats, spend).

:mod:`attribution.cli` holds the commands themselves; nothing here computes anything.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from attribution import interrupts, render
from attribution.engine import Engine, get_engine, parse_spark_conf
from attribution.errors import AttributionError, RejectRateError
from attribution.pipeline import Progress as ProgressCallback

STDOUT_FORMATS = ("table", "json", "csv")


class State:
    """Per-invocation settings shared by every command."""

    def __init__(self, quiet: bool = False, debug: bool = False) -> None:
        self.quiet = quiet
        self.debug = debug
        #: CSV on stdout as it is (--csv-raw), formula-leading cells not neutralised
        self.csv_raw = False
        # piped output gets a wide fixed width instead of rich's 80 columns
        self.out = Console(file=sys.stdout, soft_wrap=False, width=_width(sys.stdout), emoji=False)
        self.err = Console(file=sys.stderr, soft_wrap=False, width=_width(sys.stderr), emoji=False)

    def note(self, *renderables: Any) -> None:
        if not self.quiet:
            for item in renderables:
                if item is not None:
                    self.err.print(item)

    @contextmanager
    def progress(self) -> Iterator[ProgressCallback]:
        """Progress bars on stderr: on a terminal, or always with ATTRIBUTION_PROGRESS=always
        (logs of long batch jobs); never with --quiet."""
        forced = os.environ.get("ATTRIBUTION_PROGRESS", "") == "always"
        if self.quiet or not (self.err.is_terminal or forced):
            yield lambda _stage, _done, _total: None
            return
        bar = Progress(
            TextColumn("{task.description:<24}"), BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=self.err, transient=not forced,
        )
        task = bar.add_task("starting", total=1)
        with bar:
            def report(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=max(total, 1))
            yield report


def _width(stream: Any) -> int | None:
    """The terminal's width; when piped, $COLUMNS or a wide 160 (tables are not wrapped)."""
    try:
        if stream.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 160


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line and exit code 2; anything else into exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = click.get_current_context().find_object(State) or State()
        try:
            return command(*args, **kwargs)
        except AttributionError as exc:
            if state.debug:
                raise
            if isinstance(exc, RejectRateError):  # the accounting it stopped on, then why
                state.note(render.accounting_table(exc.accounting),
                           render.reject_reasons_table(exc.accounting))
            click.echo(f"Error: {render.printable(exc)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            interrupts.announce()
            interrupts.stop(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if state.debug:
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"Error: {type(exc).__name__}: {render.printable(message)} "
                       "(run with --debug for details)", err=True)
            sys.exit(1)

    return wrapper


# -- shared options -------------------------------------------------------------------------
def _set_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        state = ctx.find_object(State)
        if state is not None:
            state.quiet = True


def _set_csv_raw(ctx: click.Context, _param: click.Parameter, value: bool | None) -> bool | None:
    state = ctx.find_object(State)
    if value and state is not None:
        state.csv_raw = True
    return value


class Location(click.ParamType):
    """A local path, or a URL-like location Spark can read (``s3a://bucket/exports/``), kept
    as text so its ``//`` survives."""

    name = "location"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path) or value is None:
            return value
        text = str(value)
        return text if "://" in text else Path(text)


LOCATION = Location()


def input_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=_set_quiet,
                     help="No progress bars or notes on stderr (same as `attribution -q`)."),
        click.option("--touchpoints", type=LOCATION, metavar="FILE",
                     help="Touchpoint export (.csv, .parquet, .ndjson)."),
        click.option("--deals", type=LOCATION, metavar="FILE",
                     help="Deals (opportunities) export."),
        click.option("--contacts", type=LOCATION, metavar="FILE",
                     help="Contacts export: contact_id, account_id, lead_created_at."),
        click.option("--paths", type=LOCATION, metavar="FILE",
                     help="Aggregated path table (path, conversions, value, nulls) instead of "
                          "--touchpoints/--deals."),
        click.option("--path-separator",
                     help="Separator between channels in --paths.  [default: >]"),
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="attribution.toml holding any option; flags override it."),
        click.option("--lookback-days", type=click.IntRange(min=0),
                     help="Days before a deal's creation that count.  [default: 180]"),
        click.option("--dedup-minutes", type=click.FloatRange(min=0),
                     help="Same contact and channel within this many minutes count once.  "
                          "[default: 30]"),
        click.option("--as-of", help="Instant that closes open deals (ISO date); default: "
                                      "latest date in the data."),
        click.option("--channel-rules", type=click.Path(dir_okay=False, path_type=Path),
                     help="TOML channel rules (utm -> channel, group); default: built-in rules."),
        click.option("--currency",
                     help="Currency of the run; deals in another currency are rejected."),
        click.option("--timestamp-format", "time_formats", multiple=True, metavar="STRFTIME",
                     help="Format of your timestamps when not ISO-8601, e.g. '%m/%d/%Y %I:%M %p' "
                          "(repeatable; naive times are UTC)."),
        click.option("--source", metavar="NAME",
                     help="The system the exports come from: hubspot, salesforce, "
                          "marketo_measure, ga4 or generic (its column names, stages, "
                          "timestamps and channels), or an edited preset file NAME.toml."),
        click.option("--encoding", metavar="[INPUT=]NAME", multiple=True,
                     help="The text inputs' encoding when it is not UTF-8, e.g. latin-1 or "
                          "cp1252 (UTF-16 is recognised by its byte-order mark); "
                          "INPUT=NAME for one input (contacts=cp1252; repeatable).  "
                          "[default: utf-8]"),
        click.option("--max-reject-rate", type=float, metavar="SHARE",
                     help="Stop (exit 2, nothing written) when more than this share of any "
                          "input's rows is rejected.  [default: 0.2]"),
        click.option("--strict", is_flag=True, default=None,
                     help="Fail on the first bad row instead of writing it to the rejects file."),
        click.option("--out", type=LOCATION, metavar="DIR",
                     help="Where `run` writes its result set: a folder (replaced whole), or a "
                          "database (postgresql://..., a .duckdb file); other commands write "
                          "nothing there (report reads a database's stored runs).  "
                          "[default: out]"),
        click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
                     metavar="FILE",
                     help="Write the rejected rows to FILE (run also writes rejects.csv into "
                          "its result set; other commands write no file without this)."),
        click.option("--csv-raw", is_flag=True, default=None, callback=_set_csv_raw,
                     help="Write CSV cells exactly as they are: text starting with = + - @ is "
                          "not neutralised against spreadsheet formulas."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The model flags of a verb that runs every model the data supports by default."""
    return _model_options(command, "Model to run (repeatable); see `attribution models`. "
                                   "Default: every model the data supports.")


def recommended_model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The model flags of a verb that shows the recommended model by default (scorecard: one
    scorecard per --model named)."""
    return _model_options(command, "Model whose credit the economics use (repeatable: one "
                                   "scorecard each); see `attribution models`. Default: the "
                                   "recommended model ([models] recommended; incremental "
                                   "unless set).")


def one_model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The model flags of a verb that acts on exactly one model (budget)."""
    return _model_options(command, "The one model whose credit the budget follows (give it "
                                   "once); see `attribution models`. Default: the recommended "
                                   "model ([models] recommended; incremental unless set).")


def _model_options(command: Callable[..., Any], model_help: str) -> Callable[..., Any]:
    options = [
        click.option("--model", "model_names", multiple=True, metavar="NAME", help=model_help),
        click.option("--half-life-days", type=click.FloatRange(min=0, min_open=True),
                     help="time_decay half-life.  [default: 7]"),
        click.option("--markov-order", type=click.IntRange(1, 4),
                     help="Markov chain order: a state is the last K channels.  [default: 1]"),
        click.option("--bootstrap", type=click.IntRange(min=1),
                     help="Resample the accounts N times: an interval on every model's channel "
                          "credit (revenue_credit_low/high, revenue_share_low/high). Markov's "
                          "own removal-effect intervals: --param markov.bootstrap=N."),
        click.option("--interval", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="Coverage of the --bootstrap intervals, e.g. 0.8.  [default: 0.9]"),
        click.option("--shapley-variant", type=click.Choice(["simplified", "rate", "ordered"]),
                     help="Shapley variant.  [default: simplified]"),
        click.option("--param", "params", multiple=True, metavar="MODEL.KEY=VALUE",
                     help="Any model parameter, e.g. u_shaped.first=0.3 (repeatable)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def evidence_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--seed of the --bootstrap resampling and --min-deals of the sufficiency check."""
    options = [
        click.option("--seed", type=int,
                     help="Seed of the --bootstrap resampling: same seed, same intervals.  "
                          "[default: 0]"),
        click.option("--min-deals", type=click.IntRange(min=1),
                     help="Fewer won deals touched than this: a channel is marked too few "
                          "deals to tell (sufficient: false).  [default: 30]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--engine", type=click.Choice(["polars", "spark"]), default="polars",
                     show_default=True,
                     help="Where journeys and credit are computed: this machine (polars) or "
                          "Apache Spark (the `spark` extra; same definitions, same numbers)."),
        click.option("--spark-master", default="local[*]", show_default=True,
                     help="Spark master URL (with --engine spark)."),
        click.option("--spark-conf", multiple=True, metavar="KEY=VALUE",
                     help="Spark configuration (repeatable), e.g. spark.executor.memory=8g."),
        click.option("--spark-remote", metavar="sc://HOST:PORT", expose_value=False,
                     callback=_remember,
                     help="A Spark Connect server to run on instead of --spark-master "
                          "(with --engine spark)."),
        click.option("--spark-archives", metavar="ENV.tar.gz[#DIR]", multiple=True,
                     expose_value=False, callback=_remember,
                     help="A packed Python environment (conda-pack, venv-pack) unpacked on "
                          "every executor as DIR; point spark.pyspark.python at "
                          "DIR/bin/python (repeatable; with --engine spark)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _remember(context: click.Context, parameter: click.Parameter, value: Any) -> Any:
    """Keep an engine option that every verb passes on unread (``--spark-remote``,
    ``--spark-archives``) for :func:`make_engine`, so the verbs' signatures stay as they are."""
    if value:
        context.meta[f"attribution.{parameter.name}"] = value
    return value


def make_engine(engine: str = "polars", spark_master: str = "local[*]",
                spark_conf: tuple[str, ...] = ()) -> Engine:
    """The engine the --engine options name (with --spark-remote and --spark-archives)."""
    context = click.get_current_context(silent=True)
    meta = context.meta if context is not None else {}
    return get_engine(engine, spark_master=spark_master, spark_conf=parse_spark_conf(spark_conf),
                      spark_remote=meta.get("attribution.spark_remote"),
                      spark_archives=tuple(meta.get("attribution.spark_archives") or ()),
                      partitions=meta.get("attribution.partitions"))


def partitions_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--partitions N`` (``run``): the accounts in N partitions, a partition at a time."""
    return click.option(
        "--partitions", type=click.IntRange(min=1), metavar="N", expose_value=False,
        callback=_remember,
        help="Run the accounts in N hash partitions, one at a time, to go past memory (the "
             "same files, byte for byte; run.json records the partitions). Default: "
             "partitioned when --touchpoints is a folder or glob of Parquet files, or one "
             "Parquet file over 4 GiB as Arrow (one "
             "partition per 128 MiB of their Parquet row groups, uncompressed).")(command)


def format_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "stdout_format", type=click.Choice(STDOUT_FORMATS),
                        default="table", show_default=True,
                        help="What to print on stdout.")(command)



def experiments_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--experiments", type=click.Path(dir_okay=False, path_type=Path),
                        metavar="FILE",
                        help="Your holdout or lift experiments (channel, start, end, metric, "
                             "lift, lower, upper, segment): the incremental model's channel "
                             "effects are calibrated to them. Default: the config's "
                             "[inputs] experiments, if set."
                        )(command)


#: what --spend reads, said in every verb's help
SPEND_HELP = ("Channel spend export: channel (or utm), period_start, period_end or period, "
              "amount; or a database table or query (postgresql://...?table=..., "
              "duckdb:///file.duckdb?table=...).")


def spend_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--spend`` of a verb that uses spend when there is some (scorecard, report)."""
    return click.option("--spend", type=LOCATION, metavar="FILE",
                        help=SPEND_HELP + " Default: [inputs] spend of the config; without "
                                          "one, no cost figures.")(command)


def required_spend_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--spend`` of a verb that needs spend (budget): from the flag or the config."""
    return click.option("--spend", type=LOCATION, metavar="FILE",
                        help=SPEND_HELP + " Required: give --spend FILE, or set [inputs] spend "
                                          "in the --config file.")(command)
