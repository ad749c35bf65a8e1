"""The pipeline as functions: load -> journeys -> models -> credit -> summary.

This is the Python API the CLI calls and notebooks use::

    from attribution import Config, run
    result = run(Config(touchpoints="t.csv", deals="d.csv", contacts="c.csv"))
    result.summary          # polars DataFrame: model, channel, ..., revenue_credit, revenue_share
    result.comparison()     # last-touch next to every other model

Progress is reported through an optional callback ``progress(stage, done, total)``; the
library itself never prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from attribution import progress as progress_events
from attribution.channels import load_rules
from attribution.compare import BASELINE, compare
from attribution.config import Config
from attribution.credit import allocate, deals_touched, summarise, summarise_shares
from attribution.errors import ConfigError, ModelError
from attribution.journeys import Journeys, JourneyStats, build_journeys
from attribution.loading import Accounting, InputFile, Inputs, file_digest, load_inputs
from attribution.models import MODELS, AttributionModel, get_model
from attribution.models.base import Fit
from attribution.models.position import lead_fallback_notes
from attribution.models.self_reported import SELF_REPORTED_MODELS
from attribution.schema import CREDIT_SCHEMA, REJECT_SCHEMA, currency_decimals
from attribution.self_reported import answered_note, dark_funnel, stated_channels
from attribution.sources import load_preset, single_touch_note, source_direct_channels
from attribution.validation import check_reject_rate

Progress = Callable[[str, int, int], None]


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None


@dataclass
class RunResult:
    """Everything a run produced; tables are polars DataFrames, money in minor units."""

    config: Config
    journeys: Journeys
    models: list[AttributionModel]
    credit: pl.DataFrame
    summary: pl.DataFrame
    accounting: list[Accounting] = field(default_factory=list)
    rejects: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECT_SCHEMA))
    #: rejected rows the engine left where it found them, not in ``rejects`` (Spark's
    #: executors write them into the result set): how many
    rejects_elsewhere: int = 0
    files: list[InputFile] = field(default_factory=list)
    stats: JourneyStats | None = None
    currency: str = "USD"
    unmapped: pl.DataFrame | None = None
    #: the validated exports (None for a path table): touchpoints, deals, contacts
    inputs: Inputs | None = None
    #: the fitted models' own tables (:func:`model_diagnostics`), when the run kept them
    diagnostics: dict[str, pl.DataFrame] | None = None
    #: the engine that computed it (``polars`` or ``spark``)
    engine: str = "polars"
    #: summed distinct-path counts (:func:`attribution.models.counts.path_counts`), when the
    #: engine reduced them already (Spark): the path statistics then need no journeys (a
    #: LazyFrame when the engine brings them to this machine only if they are read)
    path_counts: pl.DataFrame | pl.LazyFrame | None = None
    #: :func:`attribution.graph.time_to_close_distribution`, when the engine computed it
    time_to_close: pl.DataFrame | None = None
    #: models of a run with no models configured that the engine does not run
    skipped_models: list[str] = field(default_factory=list)
    #: :meth:`totals`, when the engine summed them already (Spark)
    known_totals: dict[str, Any] | None = None
    #: how the engine ran it where that is a choice (Spark: the shuffle partitions of each
    #: stage and where the number came from), for run.json
    engine_settings: dict[str, Any] = field(default_factory=dict)
    #: what the load has to tell the user: formats it inferred, status values it did not
    #: know, an export that carries first touches only
    notes: list[str] = field(default_factory=list)
    #: the database sources read (URI without secrets, query, rows, SHA-256), for run.json
    sources: list[dict[str, Any]] = field(default_factory=list)
    #: per channel, tracked credit (recommended model) next to self-reported credit and the
    #: deals whose stated channel no touch shows (:func:`dark_funnel_of`); None without
    #: self-reported answers
    dark_funnel: pl.DataFrame | None = None

    def __repr__(self) -> str:
        models = ", ".join(m.name for m in self.models) or "none"
        return (f"RunResult(models=[{models}], credit={self.credit.height:,} rows, "
                f"summary={self.summary.height:,} rows, rejects={self.rejects.height:,} rows, "
                f"currency={self.currency!r})")

    def comparison(self, baseline: str = BASELINE) -> pl.DataFrame:
        """Per model and channel, the credit next to last-touch's, with the shift."""
        return compare(self.summary, baseline)

    def path_journeys(self, *, include_open: bool = False) -> Journeys:
        """Journeys for the path graph and path statistics: the run's own, or path-table
        journeys from its summed path counts when the engine reduced them (the same graph and
        statistics, see :func:`attribution.models.counts.path_journeys`)."""
        if self.path_counts is None:
            return self.journeys
        from attribution.models.counts import path_journeys

        counts = self.path_counts
        return path_journeys(counts.collect() if isinstance(counts, pl.LazyFrame) else counts,
                             include_open=include_open)

    def close_times(self) -> pl.DataFrame | None:
        """Days from first touch to close (:func:`attribution.graph.time_to_close_distribution`);
        None for journeys without timestamps (a path table)."""
        if self.time_to_close is not None:
            return self.time_to_close
        if not self.journeys.has_timestamps:
            return None
        from attribution.graph import time_to_close_distribution

        return time_to_close_distribution(self.journeys)

    def totals(self) -> dict[str, Any]:
        """Headline figures: deals, won_revenue_cents, pipeline_cents (minor units), journeys."""
        if self.known_totals is not None:
            return dict(self.known_totals)
        deals = self.journeys.journeys.filter(pl.col("status") != "none").collect()
        return {
            "deals": deals.height,
            "won_deals": int(deals.filter(pl.col("status") == "won").height),
            "lost_deals": int(deals.filter(pl.col("status") == "lost").height),
            "open_deals": int(deals.filter(pl.col("status") == "open").height),
            "won_revenue_cents": int(deals.get_column("revenue_cents").sum()),
            "pipeline_cents": int(deals.get_column("amount_cents").sum()),
            "deals_without_touch": int(deals.filter(pl.col("n_touches") == 0).height),
            "journeys": self.journeys.journeys.select(pl.len()).collect().item(),
            "touches": self.journeys.touches.select(pl.len()).collect().item(),
        }


def require_inputs(config: Config) -> None:
    """Refuse a config that names no inputs to read (a path table, or touchpoints and
    deals)."""
    if config.paths is not None:
        return
    if config.touchpoints is None or config.deals is None:
        missing = "--touchpoints" if config.touchpoints is None else "--deals"
        raise ConfigError(
            f"no {missing[2:]} file: give {missing} FILE or set it under [inputs] in the config"
        )


def load(config: Config, progress: Progress | None = None) -> Inputs:
    """Read and validate the inputs named by ``config``
    (see :func:`attribution.loading.load_inputs`)."""
    require_inputs(config)
    report = progress or _quiet
    stages = ["contacts", "touchpoints", "deals"] if config.contacts else ["touchpoints", "deals"]

    def step(stage: str) -> None:
        report(f"load {stage}", stages.index(stage), len(stages))

    assert config.touchpoints is not None and config.deals is not None  # (require_inputs)
    inputs = load_inputs(
        config.touchpoints,
        config.deals,
        config.contacts,
        rules=load_rules(config.channel_rules),
        columns=config.columns,
        currency=config.currency,
        strict=config.strict,
        progress=step,
        time_formats=config.time_formats,
        statuses=config.statuses,
        source=config.source,
        encoding={name: config.encoding_of(name) for name in ("touchpoints", "deals", "contacts")},
    )
    report("load", len(stages), len(stages))
    return inputs


def journeys_from(inputs: Inputs, config: Config, *,
                  consume: bool = False) -> tuple[Journeys, JourneyStats]:
    """Build journeys and fold their row accounting into ``inputs.accounting``.

    ``consume=True`` lets the build drop ``inputs.touchpoints``' columns as it goes
    (:func:`~attribution.journeys.build_journeys`): for a caller done with the inputs after this.
    """
    journeys, stats = build_journeys(
        inputs.touchpoints,
        inputs.deals,
        inputs.contacts,
        lookback_days=config.lookback_days,
        dedup_minutes=config.dedup_minutes,
        as_of=config.as_of,
        consume=consume,
    )
    if inputs.answers is not None:  # each deal's stated channel, for the self-reported models
        labels = journeys.touches.select(pl.col("channel").unique()).collect().to_series()
        journeys = dataclasses.replace(journeys, stated=stated_channels(
            journeys.journeys.collect(), inputs.answers, labels))
    touch = inputs.accounting["touchpoints"]
    touch.deduplicated += stats.touches_deduplicated
    touch.out_of_window = stats.touches_out_of_window
    touch.used = stats.touches_used
    deal = inputs.accounting["deals"]
    deal.out_of_window = stats.deals_out_of_window
    deal.used -= stats.deals_out_of_window
    return journeys, stats


def direct_channels(config: Config) -> tuple[str, ...]:
    """The channels ``last_non_direct`` counts as direct: the config's, the source preset's
    ("Direct Traffic" for HubSpot), and their aliases under the run's channel rules."""
    direct = tuple(config.direct_channels)
    if config.source is not None:
        direct = (*direct, *source_direct_channels(load_preset(config.source)))
    return load_rules(config.channel_rules).names_of(dict.fromkeys(direct))


def resolve_models(config: Config, journeys: Journeys | None = None) -> list[AttributionModel]:
    """Model instances for the run: the configured names, or every model the data supports."""
    # last-touch first: everything is compared with it; a model named twice runs once (its
    # credit counted twice would double every channel's)
    names: Sequence[str] = list(dict.fromkeys(config.models)) or sorted(
        MODELS, key=lambda name: name != "last_touch")
    models = []
    for name in names:
        params = config.params_for(name)
        if name in SELF_REPORTED_MODELS:
            # the recommended model credits what the answers do not; `blend.self_reported`
            # (the spelling) is the blended model's weight too
            if name == "blended":
                params = {**config.params_for("blend"), **params}
            fallback = params.setdefault("fallback", fallback_model(config))
            params.setdefault("fallback_params", config.params_for(fallback))
        if name == "last_non_direct":
            params.setdefault("direct_channels", direct_channels(config))
        models.append(get_model(name, **params))
    if not config.models and journeys is not None:
        models = [m for m in models if _supports(m, journeys)]
    return models


def fallback_model(config: Config) -> str:
    """The model the self-reported models credit unanswered deals by: the recommended model,
    or its default (``incremental``) when the recommended model is one of them."""
    if config.recommended in SELF_REPORTED_MODELS:
        return Config.recommended
    return config.recommended


def _supports(model: AttributionModel, journeys: Journeys) -> bool:
    try:
        model.check(journeys)
    except ModelError:
        return False
    return True


class Scopes:
    """The journeys each model is given, for every engine: all of them to a model whose weights
    depend on other journeys (``uses_population``), only the journeys that carry money (deals,
    path rows) to the others. The money journeys are taken once, and let go after the last
    model of ``models`` that reads them."""

    def __init__(self, journeys: Journeys, models: Sequence[AttributionModel]) -> None:
        self.journeys = journeys
        self._money: Journeys | None = None
        self._last = max((i for i, m in enumerate(models) if not m.uses_population), default=-1)
        self._index = {id(m): i for i, m in enumerate(models)}

    def of(self, model: AttributionModel) -> Journeys:
        if model.uses_population:
            return self.journeys
        if self._money is None:
            self._money = self.journeys.with_money_only()
        return self._money

    def done(self, model: AttributionModel) -> None:
        """``model`` is scored: the money journeys go once no later model reads them."""
        if self._index.get(id(model)) == self._last:
            self._money = None


def run_models(
    journeys: Journeys,
    models: Sequence[AttributionModel],
    progress: Progress | None = None,
    diagnostics: dict[str, pl.DataFrame] | None = None,
    *,
    keep_credit: bool = True,
    on_credit: Callable[[pl.DataFrame], None] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Credit and channel summary of every model, concatenated in the order given.

    The fitted models' own tables (:func:`fit_tables`: Markov removal effects, Shapley values)
    go into ``diagnostics`` when it is given, from the same fit as the credit. Each model's
    credit is handed to ``on_credit`` as soon as it is allocated, in model order;
    ``keep_credit=False`` then lets it go (the credit returned is empty, the summary the same).
    """
    report = progress or _quiet
    credits = []
    summaries = []
    touched: pl.DataFrame | None = None
    diagnostics = diagnostics if diagnostics is not None else {}
    scopes = Scopes(journeys, models)
    for done, model in enumerate(models):
        report(f"model {model.name}", done, len(models))
        model.check(journeys)
        scope = scopes.of(model)
        summary = None
        with progress_events.reporting(progress):
            if model.fits:
                # fitted once: the credit and the model's own tables come from one fit
                fitted = model.fit(scope)
                weights = fitted.weights(scope)
                diagnostics.update(fit_tables(model.name, fitted))
                shares = fitted.channel_shares()
                del fitted
                if shares is not None and not keep_credit and on_credit is None:
                    # no credit rows wanted, and the summary is defined by channel totals
                    if touched is None:
                        touched = deals_touched(scope)
                    summary = summarise_shares(scope, shares, model.name, touched=touched)
            else:
                weights = model.weights(scope)
            if summary is None:
                credit = allocate(scope, weights, model.name).collect()
        if touched is None:  # counted once, on the money journeys alone when the model had them
            touched = deals_touched(scope)
        del scope, weights
        scopes.done(model)
        if summary is not None:
            summaries.append(summary)
            continue
        summaries.append(summarise(credit, journeys, touched=touched))
        if on_credit is not None:
            on_credit(credit)
        if keep_credit:
            credits.append(credit)
        del credit
    report("models", len(models), len(models))
    credit = pl.concat(credits) if credits else pl.DataFrame(schema=CREDIT_SCHEMA)
    summary = pl.concat(summaries) if summaries else summarise(credit, journeys, touched=touched)
    return credit, summary


def load_paths(config: Config) -> tuple[Journeys, Accounting, pl.DataFrame]:
    """Journeys from an aggregated path table (``--paths``), with its accounting and rejects."""
    from attribution.paths import read_paths

    assert config.paths is not None
    rules = load_rules(config.channel_rules)
    table = read_paths(
        config.paths, columns=config.columns.get("paths"), separator=config.path_separator,
        encoding=config.encoding_of("paths"), decimals=currency_decimals(config.currency or "USD"),
        channel_groups=lambda names: names.to_frame("channel").select(
            rules.group_of(pl.col("channel"))).to_series(),
    )
    journeys = table.journeys
    used = journeys.journeys.select(pl.len()).collect().item()
    first_reasons = table.rejects.unique(subset="row", keep="first", maintain_order=True)
    accounting = Accounting(
        "paths",
        str(config.paths),
        read=used + first_reasons.height,
        used=used,
        rejected={str(r): int(n) for r, n in
                  first_reasons.group_by("reason").len().sort("reason").iter_rows()},
    )
    return journeys, accounting, table.rejects


@contextlib.contextmanager
def database_inputs(config: Config) -> Iterator[tuple[Config, dict[str, Any]]]:
    """The config with every input that names a database (``postgresql://``, ``duckdb://``, a
    ``.duckdb`` file) read into a scratch Parquet file for the loader, and each such file's
    :class:`attribution.db.SourceInfo` (by the file's path); the files go when the block ends.
    Inputs that are files pass through as they are. Spend is not an input of the run: it is
    read by :func:`attribution.spend.load_spend` (a database source too) when asked for."""
    from attribution.reading import is_database_uri

    names = ("touchpoints", "deals", "contacts", "paths")
    wanted = [n for n in names if getattr(config, n) is not None
              and is_database_uri(getattr(config, n))]
    if not wanted:
        yield config, {}
        return
    from attribution import db

    preset = load_preset(config.source) if config.source is not None else None
    with tempfile.TemporaryDirectory(prefix="attribution-db-") as scratch:
        sources: dict[str, Any] = {}
        changes: dict[str, Any] = {}
        for name in wanted:
            path, source = db.materialize(getattr(config, name), scratch, name,
                                          query=config.queries.get(name),
                                          mapping=config.columns.get(name),
                                          key_candidates=key_candidates(config, preset, name))
            sources[str(path)] = source
            changes[name] = path
        yield config.replace(**changes), sources


def key_candidates(config: Config, preset: Any, input_name: str) -> list[str]:
    """The names a database source's id column may have (what keys its rejects when the
    table has no primary key): the config's ``[columns]`` name, the source preset's names,
    then the canonical name (:data:`attribution.db.ID_COLUMNS`)."""
    from attribution.db import ID_COLUMNS

    identifier = ID_COLUMNS.get(input_name)
    if identifier is None:
        return []
    mapped = config.columns.get(input_name, {}).get(identifier)
    named = preset.columns.get(input_name, {}).get(identifier, ()) if preset is not None else ()
    return [*([mapped] if mapped else []), *named, identifier]


def _from_databases(result: RunResult, config: Config, sources: dict[str, Any]) -> RunResult:
    """A result loaded through :func:`database_inputs`, its rejects and files named by the
    database sources (URIs without secrets) instead of the scratch files, the config as
    given."""
    if not sources:
        return result
    from attribution import db

    files = [
        InputFile(f.input, sources[f.path].uri, sources[f.path].rows, sources[f.path].sha256)
        if f.path in sources else f
        for f in result.files
    ]
    accounting = [dataclasses.replace(a, path=sources[a.path].uri) if a.path in sources else a
                  for a in result.accounting]
    return dataclasses.replace(
        result, config=config, files=files, accounting=accounting,
        rejects=db.relabel_rejects(result.rejects, sources),
        sources=[s.as_dict() for s in sources.values()],
    )


def prepare(config: Config, progress: Progress | None = None, *,
            keep_inputs: bool = True) -> RunResult:
    """Load the inputs and build journeys, without running any model (``credit`` is empty).

    Inputs may be files or database sources (:func:`database_inputs`)."""
    with database_inputs(config) as (loadable, sources):
        result = _prepare_files(loadable, progress, keep_inputs=keep_inputs)
    return _from_databases(result, config, sources)


def _prepare_files(config: Config, progress: Progress | None = None, *,
                   keep_inputs: bool = True) -> RunResult:
    """Load the inputs and build journeys, without running any model (``credit`` is empty).

    Reads the path table when ``config.paths`` is set, the exports otherwise. With
    ``keep_inputs=False`` the validated exports are let go while the journeys are built
    (``RunResult.inputs`` is None).
    """
    empty = pl.DataFrame()
    if config.paths is not None:
        journeys, accounting, rejects = load_paths(config)
        check_reject_rate([accounting], config.max_reject_rate)
        return RunResult(
            config=config, journeys=journeys, models=[], credit=empty, summary=empty,
            accounting=[accounting], rejects=rejects,
            files=[InputFile("paths", str(config.paths), accounting.read,
                             file_digest(config.paths))],
            currency=config.currency or "USD",
        )
    inputs = load(config, progress)
    check_reject_rate(inputs.accounting, config.max_reject_rate)
    journeys, stats = journeys_from(inputs, config, consume=not keep_inputs)
    (progress or _quiet)("journeys", 1, 1)
    notes = list(inputs.notes)
    preset = load_preset(config.source) if config.source is not None else None
    single_touch = single_touch_note(None, str(config.touchpoints), journeys=journeys.journeys,
                                     preset=preset)
    if single_touch:
        notes.append(single_touch)
    if journeys.stated is not None:
        notes.append(answered_note(journeys.journeys.collect(), journeys.stated,
                                   fallback_model(config)))
    return RunResult(
        config=config,
        journeys=journeys,
        models=[],
        credit=empty,
        summary=empty,
        accounting=list(inputs.accounting.values()),
        rejects=inputs.rejects,
        files=inputs.files,
        stats=stats,
        currency=inputs.currency,
        unmapped=inputs.unmapped,
        inputs=inputs if keep_inputs else None,
        notes=[*notes, *lead_fallback_notes(config.contacts, config.models)],
    )


def run(config: Config, progress: Progress | None = None, *,
        keep_inputs: bool = True, keep_credit: bool = True,
        on_credit: Callable[[pl.DataFrame], None] | None = None,
        on_prepared: Callable[[RunResult], None] | None = None) -> RunResult:
    """The whole pipeline on the exports named by ``config`` (or its path table).

    What a run holds on to can be cut for large exports; the summary, the comparison and the
    model tables are the same either way:

    * ``keep_inputs=False`` lets the validated exports go while the journeys are built
      (``RunResult.inputs`` is then None). The channel scorecard's lead counts
      (:func:`attribution.api.scorecard`) read the inputs.
    * ``on_credit`` is handed each model's touch-level credit
      (:data:`~attribution.schema.CREDIT_SCHEMA`) as soon as it is allocated, in model order;
      with ``keep_credit=False`` the run then lets it go (``RunResult.credit`` is empty, and
      the scorecard and the report, which read it, refuse the result).
      ``attribution run`` writes the credit file this way, a model at a time: at 10^7
      touchpoints the credit of nine models is about 2 GB.
    * ``on_prepared`` is handed the run once its inputs are read and its journeys built,
      before any model runs (a credit writer learns the run's currency there, before the
      first credit).

    Example: the summary alone, holding neither the exports nor the credit::

        summary = run(config, keep_inputs=False, keep_credit=False).summary
    """
    prepared = prepare(config, progress, keep_inputs=keep_inputs)
    if on_prepared is not None:
        on_prepared(prepared)
    models = resolve_models(config, prepared.journeys)
    diagnostics: dict[str, pl.DataFrame] = {}
    credit, summary = run_models(prepared.journeys, models, progress, diagnostics,
                                 keep_credit=keep_credit, on_credit=on_credit)
    result = dataclasses.replace(prepared, models=models, credit=credit, summary=summary,
                                 diagnostics=diagnostics)
    return dataclasses.replace(result, dark_funnel=dark_funnel_of(result))


def dark_funnel_of(result: RunResult) -> pl.DataFrame | None:
    """The run's dark-funnel table (:func:`attribution.self_reported.dark_funnel`): the
    tracked credit of the recommended model (the self-reported models' fallback) next to the
    ``self_reported`` model's, per channel. Either model is run here, on the run's journeys,
    when the run did not include it. None when the journeys carry no self-reported answers."""
    journeys = result.journeys
    if journeys.stated is None:
        return None
    config = result.config
    tracked = fallback_model(config)
    ran = {m.name for m in result.models}
    summary = result.summary
    missing = tuple(name for name in (tracked, "self_reported") if name not in ran)
    if missing:
        extra = resolve_models(config.replace(models=missing), journeys)
        _, more = run_models(journeys, extra, keep_credit=False)
        summary = pl.concat([summary, more]) if summary.height else more
    return dark_funnel(summary, journeys.touches, journeys.journeys, journeys.stated,
                       tracked=tracked, min_deals=config.min_deals)


def model_diagnostics(result: RunResult) -> dict[str, pl.DataFrame]:
    """Model outputs in their own right: Markov removal effects and transition matrix,
    Shapley channel values (for the models of the run that have them). A run keeps them from
    the fits that gave its credit; otherwise the models are fitted again here."""
    if result.diagnostics is not None:
        return dict(result.diagnostics)
    tables: dict[str, pl.DataFrame] = {}
    for model in result.models:
        if model.fits:
            tables.update(fit_tables(model.name, model.fit(result.journeys)))
    return tables


def fit_tables(name: str, fitted: Fit) -> dict[str, pl.DataFrame]:
    """The output tables of one fitted model (:meth:`Fit.tables`), named ``<model>_<table>``:
    Markov removal effects and transition matrix, Shapley values, incremental effects."""
    return {f"{name}_{table}": frame for table, frame in fitted.tables().items()}


def validate(config: Config, progress: Progress | None = None) -> RunResult:
    """Load and build journeys only: the row accounting without running any model."""
    return prepare(config, progress)
