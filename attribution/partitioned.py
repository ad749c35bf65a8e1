"""``attribution run`` past memory: the accounts a partition at a time, on this machine.

A run whose touchpoints do not fit in memory (a Parquet dataset of many files, or one file
larger than :data:`AUTO_BYTES` as Arrow, or any run given ``--partitions N``) goes through
the per-batch design of the Spark engine (:mod:`attribution.spark`), with files in a scratch
folder where Spark shuffles:

1. **split** the touchpoints and the contacts, a record batch at a time, into ``N`` files by
   the hash of their id, each row numbered with its file and 1-based row;
2. **validate** each id partition with the loaders as they stand
   (:func:`attribution.loading.load_touchpoints`, ``load_contacts``: duplicates, row checks,
   the contact's account), and spread the good rows into ``N`` partitions by the hash of
   their account. The deals are small (one row a deal) and are validated whole, in memory,
   by :func:`attribution.validation.validate_deals` as the in-memory run does;
3. **journeys** per account partition (:func:`attribution.journeys.build_journeys` with the
   run's one ``as_of``), and each fitted model's :meth:`tally` of them; the tallies are summed
   and every fitted model is fitted once from the sums (:meth:`fit_tallies`). The built
   journeys are written out by ``journey_id`` range (ranges cut from the deals' ids and a
   sample of the accounts);
4. **credit** per ``journey_id`` range, in that order, with :func:`attribution.credit.allocate`
   (exact cents per deal; Markov's channel totals over the run's whole population), spilled
   per model and streamed into the one credit file in the in-memory run's row order (each
   model's touched rows in ``journey_id`` order, then its deals without a touch). The channel
   summary is summed from each range's integer sums (the conversion credit's exact parts,
   as :func:`attribution.credit.exact_sum` takes them), so it is the in-memory run's to the
   last bit.

What is held at once is one partition's rows, the deals, and what is bounded by the model
(tallies, fits), plus the run's money journeys (``journey_id, amount, revenue`` of each deal:
Markov's population). The result files are the in-memory run's, byte for byte, on inputs
that fit (``tests/test_partitioned.py``); run.json differs in its timings.

What it does not do (it says so rather than guessing): read touchpoints other than Parquet,
a ``--source`` preset, database inputs, ``--bootstrap`` or ``--experiments`` (they resample
or join the whole journeys); models that fit on all journeys at once without tallies are left
out of a default run (``skipped_models``) and refused by name. Timestamps are read as the
Spark engine reads them: typed, ISO-8601, epoch or a ``--timestamp-format`` (no format is
inferred from one partition's values), and channel spellings are unified over the whole
column before the split (:func:`attribution.channels.unify_spellings`).
"""

from __future__ import annotations

import contextlib
import glob as globbing
import hashlib
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from attribution.channels import ChannelRules, load_rules, usual_spellings
from attribution.config import Config
from attribution.credit import allocate, deals_touched, summarise
from attribution.errors import ConfigError, InputError, ModelError, RejectedRowError
from attribution.journeys import Journeys, JourneyStats, build_journeys
from attribution.loading import (
    PARQUET_EXTENSIONS,
    ROW,
    Accounting,
    InputFile,
    file_digest,
    load_contacts,
    load_touchpoints,
    no_rows_message,
    read_file,
    read_table,
    ungrouped_note,
    unmapped_touches,
    validate_deals,
)
from attribution.models import AttributionModel
from attribution.models.base import Fit
from attribution.models.position import lead_fallback_notes
from attribution.pipeline import Progress, RunResult, Scopes, fit_tables, resolve_models
from attribution.schema import (
    ACCOUNT_JOURNEY_PREFIX,
    CREDIT_SCHEMA,
    JOURNEY_SCHEMA,
    NO_TOUCH_CHANNEL,
    NO_TOUCH_GROUP,
    REJECT_SCHEMA,
    TOUCH_SCHEMA,
    UTC_TIME,
)
from attribution.sources import single_touch_note
from attribution.validation import HORIZON, check_reject_rate, latest_deal_event, text

#: touchpoints' Arrow bytes per partition when the run picks the count itself: a partition's
#: journeys, tallies and credit then take a small multiple of this
PARTITION_BYTES = 128 * 2**20
#: a single Parquet file of touchpoints larger than this as Arrow is run in partitions
AUTO_BYTES = 4 * 2**30
#: rows read from an input file at a time while splitting it
READ_ROWS = 1_000_000
#: one account in this many is sampled to cut the journey_id ranges
SAMPLE_EVERY = 16

_FILE = "_part_file"
_FILE_ROW = "_part_file_row"
_ORDINAL = "_part_ordinal"
_BUCKET = "_part_bucket"
#: the additive counts of :class:`Accounting`
_COUNTS = [f.name for f in fields(Accounting) if f.type in ("int", int)]
_STATS = ["touches_deduplicated", "touches_out_of_window", "touches_used",
          "deals_out_of_window", "deals_without_touch", "deal_journeys", "account_journeys"]
_GLOB = set("*?[")


# -- which runs are partitioned ----------------------------------------------------------------
def is_dataset(location: object) -> bool:
    """Whether an input names a folder or a glob of files rather than one file."""
    if location is None or "://" in str(location):
        return False
    return Path(str(location)).is_dir() or bool(_GLOB & set(str(location)))


def dataset_files(location: str | Path, input_name: str) -> list[Path]:
    """The data files of a file, a folder (searched recursively) or a glob, sorted, hidden
    files (``.x``, ``_x``) left out; a folder's files must be Parquet."""
    text_location = str(location)
    path = Path(text_location)
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file()]
    elif _GLOB & set(text_location):
        found = [Path(p) for p in globbing.glob(text_location, recursive=True)
                 if Path(p).is_file()]
    elif path.is_file():
        return [path]
    else:
        raise InputError(f"{text_location}: no such {input_name} file")
    files = sorted(p for p in found if not p.name.startswith((".", "_")))
    if not files:
        raise InputError(f"{text_location}: no {input_name} files there")
    others = [p for p in files if p.suffix.lower() not in PARQUET_EXTENSIONS]
    if others:
        raise InputError(f"{others[0]}: a {input_name} dataset is read as Parquet files; this "
                         "file is not one (keep only .parquet files in the folder)")
    return files


def arrow_bytes(files: Sequence[Path]) -> int:
    """The uncompressed size of Parquet files' row groups, from their footers (about their
    size in memory as Arrow)."""
    total = 0
    for file in files:
        meta = pq.ParquetFile(file).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def partitions_for(config: Config, requested: int | None = None) -> int | None:
    """How many account partitions ``attribution run`` uses for ``config``, or None for the
    in-memory run: ``requested`` (``--partitions``) when given, else one per
    :data:`PARTITION_BYTES` of the touchpoints' Arrow size when they are a dataset (a folder
    or a glob) or one Parquet file larger than :data:`AUTO_BYTES`."""
    touchpoints = config.touchpoints
    if config.paths is not None or touchpoints is None:
        if requested is not None:
            raise ConfigError("--partitions partitions touchpoint exports; a path table is "
                              "already aggregated")
        return None
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"--partitions {requested}: expected 1 or more")
        return requested
    if "://" in str(touchpoints):
        return None
    dataset = is_dataset(touchpoints)
    if not dataset and Path(touchpoints).suffix.lower() not in PARQUET_EXTENSIONS:
        return None
    if not dataset and not Path(touchpoints).is_file():
        return None  # the in-memory loader names the missing file
    size = arrow_bytes(dataset_files(touchpoints, "touchpoints"))
    if not dataset and size <= AUTO_BYTES:
        return None
    return max(1, math.ceil(size / PARTITION_BYTES))


def partitions_basis(config: Config, requested: int | None = None) -> str:
    """Why a run is partitioned (:func:`partitions_for` gave a count), for its note and
    run.json: ``--partitions N``, or the touchpoints that made the run partition itself."""
    if requested is not None:
        return f"--partitions {requested}"
    per = f"one partition per {PARTITION_BYTES // 2**20} MiB of their row groups, uncompressed"
    if config.touchpoints is not None and is_dataset(config.touchpoints):
        return f"--touchpoints is a folder or glob of Parquet files: {per}"
    return f"--touchpoints is a Parquet file over {AUTO_BYTES // 2**30} GiB as Arrow: {per}"


def check_supported(config: Config) -> None:
    """Refuse what a partitioned run does not do, rather than ignore it."""
    if config.source not in (None, "generic"):
        raise ConfigError(f"--source {config.source}: a partitioned run reads generic exports "
                          "for now; map the columns with [columns.*], or run in memory")
    for name in ("touchpoints", "deals", "contacts"):
        location = getattr(config, name)
        if location is not None and "://" in str(location):
            raise ConfigError(f"--{name} {location}: a partitioned run reads local files")
    if config.bootstrap:
        raise ConfigError("--bootstrap resamples the whole journeys; a partitioned run does "
                          "not keep them: run without --bootstrap, or in memory")
    if getattr(config, "experiments", None):
        raise ConfigError("--experiments reads every model's credit; a partitioned run "
                          "streams it to the credit file: run without --experiments")
    if is_dataset(config.deals):
        raise ConfigError(f"--deals {config.deals}: the deals are read whole (one file); "
                          "a folder or glob is read for --touchpoints and --contacts")


# -- step 1: split an input by the hash of a key ---------------------------------------------
@dataclass
class _Split:
    """An input's raw rows in ``buckets`` files per partition, numbered as read."""

    input: str
    location: str
    files: list[Path]
    columns: list[str]
    parts: list[list[Path]]
    rows: int
    single: bool

    def file_of(self, index: pl.Expr) -> pl.Expr:
        """The name rejects give a row's file: the input as named for one file (as the
        in-memory run names it), the part file's path in a dataset."""
        if self.single:
            return pl.lit(str(Path(self.location)))
        return index.replace_strict(list(range(len(self.files))),
                                    [str(f) for f in self.files], return_dtype=pl.String)


def _raw_column(columns: Sequence[str], canonical: str,
                mapping: dict[str, str] | None) -> str | None:
    """The raw column the readers rename to ``canonical`` (``mapping`` first, then the name
    with white space trimmed, as :func:`attribution.reading.name_columns` renames)."""
    if mapping and canonical in mapping:
        return mapping[canonical] if mapping[canonical] in columns else None
    return next((c for c in columns if c.strip() == canonical), None)


def _bucket_of(key: pl.Expr, buckets: int, row: str = _ORDINAL) -> pl.Expr:
    """A row's partition: the hash of its key (trimmed text), rows without a key by their
    ``row`` number (they meet no other row)."""
    return (pl.when(key.is_null()).then(pl.col(row).cast(pl.UInt64))
            .otherwise(key.hash(seed=26)) % buckets).cast(pl.Int32).alias(_BUCKET)


def _batches(file: Path, input_name: str,
             encoding: str | None) -> tuple[Iterator[pl.DataFrame], list[str]]:
    """A file's rows a batch at a time (Parquet), or whole as the in-memory reader reads it
    (one CSV or NDJSON file: its text as text)."""
    if file.suffix.lower() not in PARQUET_EXTENSIONS:
        whole = read_file(file, input_name, encoding=encoding)
        return iter([whole]), whole.columns
    reader = pq.ParquetFile(file)

    def read() -> Iterator[pl.DataFrame]:
        for batch in reader.iter_batches(batch_size=READ_ROWS):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame

    return read(), reader.schema_arrow.names


def _split(location: str | Path, input_name: str, key: str, buckets: int, folder: Path,
           mapping: dict[str, str] | None, *, encoding: str | None = None,
           rewrite: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> _Split:
    """Read ``location``'s files a batch of rows at a time into ``buckets`` partitions by the
    hash of the ``key`` column (see :func:`_bucket_of`), each row with its file, 1-based row
    in that file, and 1-based place in the whole input."""
    files = dataset_files(location, input_name)
    parts: list[list[Path]] = [[] for _ in range(buckets)]
    columns: list[str] | None = None
    ordinal = 0
    written = 0
    for index, file in enumerate(files):
        batches, names = _batches(file, input_name, encoding)
        if columns is None:
            columns = names
        elif names != columns:
            raise InputError(f"{file}: its columns ({', '.join(names)}) are not those of "
                             f"{files[0]} ({', '.join(columns)}); a dataset's files share "
                             "their columns")
        file_row = 0
        for frame in batches:
            if rewrite is not None:
                frame = rewrite(frame)
            rows = frame.height
            raw = _raw_column(columns, key, mapping)
            frame = frame.with_columns(
                pl.lit(index, pl.Int32).alias(_FILE),
                pl.int_range(file_row + 1, file_row + rows + 1, dtype=pl.Int64).alias(_FILE_ROW),
                pl.int_range(ordinal + 1, ordinal + rows + 1, dtype=pl.Int64).alias(_ORDINAL),
            )
            keyed = text(raw, frame) if raw is not None else pl.lit(None, pl.String)
            frame = frame.with_columns(_bucket_of(keyed, buckets))
            for (bucket,), part in frame.partition_by(_BUCKET, as_dict=True,
                                                      include_key=False).items():
                path = folder / f"{bucket:05d}-{written:06d}.parquet"
                part.write_parquet(path, compression="lz4", statistics=False)
                parts[int(bucket)].append(path)
            written += 1
            file_row += rows
            ordinal += rows
    assert columns is not None
    return _Split(input_name, str(location), files, columns, parts, ordinal, len(files) == 1
                  and not is_dataset(location))


def _read(paths: Sequence[Path], schema: pl.Schema | None = None) -> pl.DataFrame | None:
    if not paths:
        return None if schema is None else pl.DataFrame(schema=schema)
    return pl.read_parquet(list(paths), glob=False).rechunk()


# -- step 2: validate each id partition --------------------------------------------------------
@dataclass
class _Checked:
    """One input validated a partition at a time: counts, rejects and the good rows spread
    by account into ``buckets`` partitions."""

    accounting: Accounting
    rejects: list[pl.DataFrame] = field(default_factory=list)
    by_account: list[list[Path]] = field(default_factory=list)
    unmapped: list[pl.DataFrame] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    accounts: list[pl.Series] = field(default_factory=list)  # known accounts that have deals
    sample: list[pl.Series] = field(default_factory=list)  # a sample of the accounts
    latest: datetime | None = None


def _count(into: Accounting, counted: Accounting) -> None:
    for name in _COUNTS:
        setattr(into, name, getattr(into, name) + getattr(counted, name))
    for reason, n in counted.rejected.items():
        into.rejected[reason] = into.rejected.get(reason, 0) + n


def _validate(split: _Split, buckets: int, folder: Path,
              call: Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame, Accounting,
                                                   pl.DataFrame | None]],
              deal_accounts: pl.Series, keep_file: bool) -> _Checked:
    """Run ``call`` (a loader on a frame of raw rows in input order: ``(good, rejects,
    accounting, unmapped)``) on every id partition of ``split``; the partition's row numbers
    become the input's, and the good rows are written by account."""
    checked = _Checked(Accounting(split.input, str(split.location)),
                       by_account=[[] for _ in range(buckets)])
    for bucket, paths in enumerate(split.parts):
        table = _read(paths)
        if table is None:
            continue
        for path in paths:
            path.unlink()
        table = table.sort(_ORDINAL)
        helpers = table.select(_FILE, _FILE_ROW, _ORDINAL)
        raw = table.select(split.columns)
        del table
        good, rejects, accounting, unmapped = call(raw)
        del raw
        _count(checked.accounting, accounting)
        local = good.get_column(ROW).to_numpy() - 1
        good = good.with_columns(helpers.get_column(_ORDINAL).gather(local).alias(ROW))
        if keep_file:
            good = good.with_columns(helpers.get_column(_FILE).gather(local),
                                     helpers.get_column(_FILE_ROW).gather(local))
        if rejects.height:
            at = rejects.get_column("row").to_numpy() - 1
            rejects = rejects.with_columns(
                helpers.get_column(_FILE_ROW).gather(at).alias("row"),
                helpers.get_column(_FILE).gather(at).alias(_FILE),
            ).with_columns(split.file_of(pl.col(_FILE)).alias("file")).drop(_FILE)
            checked.rejects.append(rejects.select(list(REJECT_SCHEMA)))
        if unmapped is not None and unmapped.height:
            checked.unmapped.append(unmapped)
        accounts = good.get_column("account_id")
        checked.accounts.append(accounts.filter(accounts.is_in(deal_accounts.implode()))
                                .unique())
        if "timestamp" in good.columns:
            latest = good.get_column("timestamp").max()
            if isinstance(latest, datetime) and (checked.latest is None
                                                 or latest > checked.latest):
                checked.latest = latest
        spread = good.with_columns(_bucket_of(pl.col("account_id"), buckets, ROW))
        del good
        distinct = spread.get_column("account_id").unique()
        checked.sample.append(distinct.filter(distinct.hash(seed=7) % SAMPLE_EVERY == 0))
        for (account_bucket,), part in spread.partition_by(_BUCKET, as_dict=True,
                                                           include_key=False).items():
            path = folder / f"{account_bucket:05d}-{bucket:05d}.parquet"
            part.write_parquet(path, compression="lz4", statistics=False)
            checked.by_account[int(account_bucket)].append(path)
    if split.rows == 0:
        raise InputError(no_rows_message(str(split.location), split.input))
    return checked


def _contact_lookup(contacts: _Checked | None, frame: pl.DataFrame,
                    mapping: dict[str, str] | None) -> pl.DataFrame | None:
    """The validated contacts a partition of touchpoints needs: those of its rows without an
    account of their own (the loader looks only those up); None without a contacts file."""
    if contacts is None:
        return None
    schema = pl.Schema([("contact_id", pl.String()), ("account_id", pl.String()),
                        ("lead_created_at", UTC_TIME)])
    account = _raw_column(frame.columns, "account_id", mapping)
    contact = _raw_column(frame.columns, "contact_id", mapping)
    lacking = (frame.select(text(account, frame).is_null()).to_series() if account is not None
               else pl.Series([True] * frame.height))
    if not lacking.any() or contact is None:
        return pl.DataFrame(schema=schema)
    wanted = frame.filter(lacking).select(text(contact, frame).alias("c")).to_series()
    wanted = wanted.drop_nulls().unique()
    paths = [p for paths in contacts.by_account for p in paths]
    if not paths:
        return pl.DataFrame(schema=schema)
    return (pl.scan_parquet(paths, glob=False)
            .filter(pl.col("contact_id").is_in(wanted.implode()))
            .select(list(schema)).collect())


# -- the run -----------------------------------------------------------------------------------
@dataclass
class _Tallied:
    """What step 3 sums over the account partitions."""

    stats: dict[str, int]
    totals: dict[str, int]
    tallies: dict[str, dict[str, list[pl.DataFrame]]]
    groups: list[pl.DataFrame]
    population: list[pl.DataFrame]
    late: list[pl.DataFrame]
    unmapped: list[pl.DataFrame]
    with_touches: int = 0
    single_touch: int = 0


def _journey_ranges(deals: pl.DataFrame, sample: pl.Series, ranges: int,
                    as_of: datetime) -> pl.Series:
    """``ranges - 1`` sorted ``journey_id`` bounds that cut the run's journeys into about
    equal ranges: from the ids of the deals in scope, each counting once, and of a sample of
    the accounts (one in :data:`SAMPLE_EVERY`), each counting for that many deal-less
    accounts. The ranges' sizes depend on the sample; their order, and so the credit's, does
    not."""
    weighted = pl.concat([
        deals.filter(pl.col("created_at") <= pl.lit(as_of, UTC_TIME)).select(
            pl.col("deal_id").alias("id"), pl.lit(1, pl.Int64).alias("w")),
        pl.DataFrame({"id": ACCOUNT_JOURNEY_PREFIX + sample.cast(pl.String)}).with_columns(
            pl.lit(SAMPLE_EVERY, pl.Int64).alias("w")),
    ]).sort("id").with_columns(pl.col("w").cum_sum().alias("upto"))
    if ranges <= 1 or not weighted.height:
        return pl.Series("bound", [], pl.String)
    total = int(weighted.get_column("upto")[-1])
    # the id at which each i/ranges share of the weight is reached
    at = weighted.get_column("upto").search_sorted(
        pl.Series([round(i * total / ranges) for i in range(1, ranges)], dtype=pl.Int64),
        side="left")
    at = at.clip(0, weighted.height - 1)
    return weighted.get_column("id").gather(at).unique(maintain_order=True).rename("bound")


def _range_of(journey_id: pl.Series, bounds: pl.Series) -> pl.Series:
    """Each id's range: how many bounds are at or below it."""
    if not bounds.len():
        return pl.Series(np.zeros(journey_id.len(), dtype=np.int32))
    return pl.Series(bounds.search_sorted(journey_id, side="right")).cast(pl.Int32)


def _stacked(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Tallies of disjoint journeys, stacked: :meth:`fit_tallies` sums them itself (integer
    columns, and whatever else its own tables say how to add)."""
    return pl.concat(frames, how="vertical_relaxed")


def _models(config: Config) -> tuple[list[AttributionModel], list[str]]:
    """The run's models, and those a default run leaves out because they fit on all the
    journeys at once (no :meth:`tally`); such a model named by the user is refused."""
    stub = Journeys.from_frames(pl.DataFrame(schema=TOUCH_SCHEMA),
                                pl.DataFrame(schema=JOURNEY_SCHEMA))
    models = resolve_models(config, stub)
    unsupported = [m.name for m in models if m.fits and not m.fits_from_tallies()]
    if unsupported and config.models:
        raise ModelError(
            f"model {unsupported[0]!r} fits on all journeys at once, which a partitioned run "
            "does not do yet; run it in memory (without --partitions, on one file)"
        )
    for model in models:
        model.check(stub)
    return [m for m in models if m.name not in unsupported], unsupported


def _partial_summary(credit: pl.DataFrame) -> pl.DataFrame:
    """A range's credit summed per model and channel; the conversion credit as the two
    integers :func:`attribution.credit.exact_sum` cuts each value into, so that ranges add up
    exactly."""
    scaled = pl.col("conversion_credit") * 2.0**32
    return credit.group_by("model", "channel", "channel_group", maintain_order=True).agg(
        pl.col("pipeline_credit_cents").sum(),
        pl.col("revenue_credit_cents").sum(),
        scaled.floor().cast(pl.Int128).sum().alias("_whole"),
        ((scaled - scaled.floor()) * 2.0**52).floor().cast(pl.Int128).sum().alias("_rest"),
    )


def _summary(partials: list[pl.DataFrame], reach: list[pl.DataFrame],
             models: Sequence[AttributionModel]) -> pl.DataFrame:
    """The channel summary of the whole run from the ranges' sums: each channel's conversion
    credit is rounded once from the summed integer parts (exact_sum's own rounding), and a
    float of at least 2^-32 passes :func:`summarise`'s exact sum unchanged."""
    order = pl.DataFrame({"model": [m.name for m in models]}).with_row_index("_order")
    totals = (
        pl.concat(partials)
        .group_by("model", "channel", "channel_group", maintain_order=True)
        .agg(pl.col("pipeline_credit_cents", "revenue_credit_cents", "_whole", "_rest").sum())
        .with_columns(((pl.col("_whole") * 2**52 + pl.col("_rest")).cast(pl.Float64)
                       * 2.0**-84).alias("conversion_credit"))
        .join(order, on="model", how="left").sort("_order", maintain_order=True)
        .select("model", "channel", "channel_group", "pipeline_credit_cents",
                "revenue_credit_cents", "conversion_credit")
    )
    touched = (pl.concat(reach).group_by("channel", maintain_order=True)
               .agg(pl.col("deals_touched").sum().cast(pl.UInt32)))
    nothing = Journeys.from_frames(pl.DataFrame(schema=TOUCH_SCHEMA),
                                   pl.DataFrame(schema=JOURNEY_SCHEMA))
    return summarise(totals, nothing, touched=touched)


def _no_journeys() -> pl.DataFrame:
    raise ConfigError("a partitioned run keeps no journeys in memory (they are written a "
                      "partition at a time); read them from a run in memory")


def _dataset_digest(files: Sequence[Path]) -> str:
    """One SHA-256 for a dataset: of its files' names (relative to the first file's folder)
    and SHA-256s, in order; a single file's is the file's own."""
    if len(files) == 1:
        return file_digest(files[0])
    digest = hashlib.sha256()
    root = files[0].parent
    for file in files:
        with contextlib.suppress(ValueError):
            name = str(file.relative_to(root))
        digest.update(f"{name}\t{file_digest(file)}\n".encode())
    return digest.hexdigest()


#: what is handed the credit: its spilled Parquet parts in the in-memory run's row order
#: (:data:`~attribution.schema.CREDIT_SCHEMA`), and the run's currency
CreditParts = Callable[[list[Path], str], None]


def run(config: Config, partitions: int, progress: Progress | None = None, *,
        on_credit: CreditParts | None = None,
        scratch: str | Path | None = None) -> RunResult:
    """``attribution run`` over ``partitions`` account partitions (see the module docstring).

    The credit is handed to ``on_credit`` as its spilled parts, in the in-memory run's row
    order, before they go (one scan of them is the in-memory run's credit table); the result
    holds no credit and no journeys (its totals, summary, fitted tables, rejects and
    accounting are the whole run's).
    ``scratch`` is the folder the partitions are written under (default: the system's
    temporary folder); it needs room for about two compressed copies of the inputs and one
    uncompressed copy of the credit.
    """
    check_supported(config)
    if config.touchpoints is None or config.deals is None:
        missing = "--touchpoints" if config.touchpoints is None else "--deals"
        raise ConfigError(f"no {missing[2:]} file: give {missing} FILE or set it under "
                          "[inputs] in the config")
    report = progress or (lambda _stage, _done, _total: None)
    with tempfile.TemporaryDirectory(prefix="attribution-partitions-", dir=scratch) as folder:
        return _run(config, partitions, report, on_credit, Path(folder))


def _run(config: Config, buckets: int, report: Progress,
         on_credit: CreditParts | None, folder: Path) -> RunResult:
    rules = load_rules(config.channel_rules)
    columns = config.columns
    for name in ("split", "contacts", "touchpoints", "built", "credit"):
        (folder / name).mkdir()
    stages = 5
    pool = ThreadPoolExecutor(1, thread_name_prefix="attribution-digest")
    digests = {name: pool.submit(_dataset_digest, dataset_files(getattr(config, name), name))
               for name in ("contacts", "touchpoints") if getattr(config, name) is not None}
    assert config.deals is not None
    digests["deals"] = pool.submit(file_digest, config.deals)
    try:
        return _stages(config, buckets, report, on_credit, folder, rules, columns, stages,
                       digests)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _stages(config: Config, buckets: int, report: Progress,
            on_credit: CreditParts | None, folder: Path,
            rules: ChannelRules, columns: dict[str, dict[str, str]], stages: int,
            digests: dict[str, Any]) -> RunResult:
    assert config.touchpoints is not None and config.deals is not None
    time_options: dict[str, Any] = {"time_formats": config.time_formats}
    deal_mapping = columns.get("deals")
    raw_deals = read_table(config.deals, "deals", deal_mapping)
    deal_accounts = (raw_deals.select(text("account_id", raw_deals)).to_series()
                     .drop_nulls().unique() if "account_id" in raw_deals.columns
                     else pl.Series([], dtype=pl.String))
    del raw_deals

    # contacts: split by contact id, validated, spread by account
    contacts: _Checked | None = None
    rejected_contacts: list[pl.DataFrame] = []  # their touches say so
    if config.contacts is not None:
        report("load contacts", 0, stages)
        mapping = columns.get("contacts")
        split = _split(config.contacts, "contacts", "contact_id", buckets,
                       folder / "split", mapping, encoding=config.encoding_of("contacts"))

        def check_contacts(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame,
                                                       Accounting, None]:
            good, bad, counted, _rows = load_contacts(raw, mapping, rejected=rejected_contacts,
                                                      **time_options)
            return good.select(ROW, "contact_id", "account_id", "lead_created_at"), bad, \
                counted, None

        contacts = _validate(split, buckets, folder / "contacts", check_contacts, deal_accounts,
                             keep_file=False)

    # touchpoints: channel spellings unified over the whole column, split by touchpoint id
    report("load touchpoints", 1, stages)
    mapping = columns.get("touchpoints")
    rewrite = _unified_channels(dataset_files(config.touchpoints, "touchpoints"), mapping)
    split = _split(config.touchpoints, "touchpoints", "touchpoint_id", buckets,
                   folder / "split", mapping, rewrite=rewrite,
                   encoding=config.encoding_of("touchpoints"))

    rejected = pl.concat(rejected_contacts) if rejected_contacts else None

    def check_touchpoints(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, Accounting,
                                                      pl.DataFrame]:
        known = _contact_lookup(contacts, raw, mapping)
        good, bad, counted, unmapped, _groups = load_touchpoints(
            raw, rules, known, mapping, rejected_contacts=rejected, **time_options)
        return good, bad, counted, unmapped

    touches = _validate(split, buckets, folder / "touchpoints", check_touchpoints,
                        deal_accounts, keep_file=True)

    # deals: whole, in memory, as the in-memory run validates them
    report("load deals", 2, stages)
    known = pl.concat([*touches.accounts, *(contacts.accounts if contacts else [])]).unique()
    checked = validate_deals(
        Path(config.deals), known.rename("account_id"), config.currency, deal_mapping,
        file=str(Path(config.deals)), statuses=config.statuses,
        encoding=config.encoding_of("deals"), **time_options,
    )
    if checked.accounting.read == 0:
        raise InputError(no_rows_message(checked.accounting.path, "deals"))
    deals = checked.good.drop("self_reported", strict=False)
    currency = checked.currency
    assert currency is not None
    deal_notes = list(checked.notes)
    horizon = latest_deal_event(deals)
    limit = None if horizon is None else horizon + HORIZON
    accounting = {a.input: a for a in ([contacts.accounting] if contacts else [])}
    accounting["touchpoints"] = touches.accounting
    accounting["deals"] = checked.accounting
    touch_file, deal_file = str(Path(config.touchpoints)), str(Path(config.deals))
    touches.accounting.path = touch_file
    if contacts is not None:
        contacts.accounting.path = str(Path(config.contacts))  # type: ignore[arg-type]

    # the run's as-of instant: the latest in the data, touches past the horizon left out
    latest_touch = touches.latest
    if limit is not None and latest_touch is not None and latest_touch > limit:
        within = (pl.scan_parquet([p for ps in touches.by_account for p in ps], glob=False)
                  .filter(pl.col("timestamp") <= limit).select(pl.col("timestamp").max())
                  .collect().item())
        latest_touch = within if isinstance(within, datetime) else None
    as_of: datetime
    if config.as_of is not None:
        as_of = config.as_of
    else:
        present = [v for v in (latest_touch, deals.get_column("created_at").max(),
                               deals.get_column("closed_at").max()) if isinstance(v, datetime)]
        as_of = max(present) if present else datetime(1970, 1, 1, tzinfo=UTC)
    bounds = _journey_ranges(deals, pl.concat(touches.sample).unique().sort(), buckets, as_of)

    # journeys and tallies per account partition
    report("journeys", 3, stages)
    models, skipped = _models(config)
    tallied = [m for m in models if m.fits]
    deal_bucket = deals.select(_bucket_of(pl.col("account_id"), buckets, ROW)).to_series()
    summed = _Tallied({n: 0 for n in _STATS}, {}, {m.name: {} for m in tallied}, [], [], [],
                      [])
    contact_columns = pl.Schema([("contact_id", pl.String()), ("account_id", pl.String()),
                                 ("lead_created_at", UTC_TIME)])
    touch_schema = _touch_schema(touches)
    for bucket in range(buckets):
        part = _read(touches.by_account[bucket], touch_schema)
        assert part is not None
        part = part.sort(ROW)
        if limit is not None:
            past = pl.col("timestamp") > limit
            if part.select(past.any()).item():
                summed.late.append(_late_rejects(part.filter(past), horizon, split,
                                                 (columns.get("touchpoints") or {}).get(
                                                     "timestamp", "timestamp")))
                part = part.filter(~past)
        part = part.drop(_FILE, _FILE_ROW)
        summed.unmapped.append(unmapped_touches(part))
        people = (_read(contacts.by_account[bucket]) if contacts is not None else None)
        people = (pl.DataFrame(schema=contact_columns) if people is None
                  else people.select(list(contact_columns)))
        own_deals = deals.filter(deal_bucket == bucket)
        journeys, stats = build_journeys(part, own_deals, people,
                                         lookback_days=config.lookback_days,
                                         dedup_minutes=config.dedup_minutes, as_of=as_of,
                                         consume=True)
        del part, people, own_deals
        _tally(summed, journeys, stats, tallied, config)
        touch_frame = journeys.touches.collect()
        journey_frame = journeys.journeys.collect()
        del journeys
        touch_range = _range_of(touch_frame.get_column("journey_id"), bounds)
        journey_range = _range_of(journey_frame.get_column("journey_id"), bounds)
        for frame, ranged, kind in ((touch_frame, touch_range, "t"),
                                    (journey_frame, journey_range, "j")):
            for (where,), piece in frame.with_columns(ranged.alias(_BUCKET)).partition_by(
                    _BUCKET, as_dict=True, include_key=False).items():
                target = folder / "built" / f"{where:05d}"
                target.mkdir(exist_ok=True)
                piece.write_parquet(target / f"{kind}-{bucket:05d}.parquet",
                                    compression="lz4", statistics=False)
        for paths in (touches.by_account[bucket],
                      contacts.by_account[bucket] if contacts is not None else []):
            for path in paths:
                path.unlink()

    # accounting and rejects as the in-memory run keeps them
    late = summed.late
    touch_count = touches.accounting
    for rejected in late:
        touch_count.used -= rejected.height
        for reason, n in rejected.group_by("reason").len().iter_rows():
            touch_count.rejected[reason] = touch_count.rejected.get(reason, 0) + n
    touch_count.deduplicated += summed.stats["touches_deduplicated"]
    touch_count.out_of_window = summed.stats["touches_out_of_window"]
    touch_count.used = summed.stats["touches_used"]
    deal_count = accounting["deals"]
    deal_count.out_of_window = summed.stats["deals_out_of_window"]
    deal_count.used -= summed.stats["deals_out_of_window"]
    order = {"contacts": 0, "touchpoints": 1, "deals": 2}
    rejects = (
        pl.concat([*(contacts.rejects if contacts else []), *touches.rejects, *late,
                   checked.rejects.select(list(REJECT_SCHEMA))], how="vertical_relaxed")
        .cast(dict(REJECT_SCHEMA))  # type: ignore[arg-type]
        .with_columns(pl.col("input").replace_strict(order, default=3).alias("_order"))
        .sort(["_order", "file", "row"], maintain_order=True)
        .drop("_order")
    )
    if config.strict and rejects.height:
        first = rejects.row(0, named=True)
        raise RejectedRowError.from_reject(first["file"], first["row"], first["column"],
                                           first["reason"], first["value"])
    check_reject_rate(accounting, config.max_reject_rate)
    unmapped = _unmapped(touches.unmapped if not late else summed.unmapped)

    # fits from the summed tallies, then credit a journey_id range at a time
    fits: dict[str, Fit] = {}
    for model in tallied:
        fits[model.name] = model.fit_tallies(
            {name: _stacked(frames) for name, frames in summed.tallies[model.name].items()})
    report("credit", 4, stages)
    channel_groups = pl.concat(
        [*[g for g in summed.groups],
         pl.DataFrame({"channel": [NO_TOUCH_CHANNEL], "channel_group": [NO_TOUCH_GROUP]})],
        how="vertical_relaxed",
    ).unique(subset="channel", keep="first", maintain_order=True)
    population = (pl.concat(summed.population).sort("journey_id") if summed.population
                  else pl.DataFrame(schema={"journey_id": pl.String, "amount_cents": pl.Int64,
                                            "revenue_cents": pl.Int64}))
    partials: list[pl.DataFrame] = []
    reach: list[pl.DataFrame] = []
    spilled: dict[tuple[int, str], list[Path]] = {}
    for where in range(bounds.len() + 1):
        target = folder / "built" / f"{where:05d}"
        if not target.exists():
            continue
        touch_read = _read(sorted(target.glob("t-*.parquet")), TOUCH_SCHEMA)
        journey_read = _read(sorted(target.glob("j-*.parquet")), JOURNEY_SCHEMA)
        assert touch_read is not None and journey_read is not None
        journey_frame = journey_read.sort("journey_id")
        touch_frame = touch_read.sort("journey_id", "touch_index")
        del touch_read, journey_read
        shutil.rmtree(target)
        batch = Journeys(touches=touch_frame.lazy(), journeys=journey_frame.lazy(), as_of=as_of)
        bare = journey_frame.filter((pl.col("status") != "none") & (pl.col("n_touches") == 0))
        bare_ids = bare.get_column("journey_id").implode()
        scopes = Scopes(batch, models)
        counted = False
        for i, model in enumerate(models):
            scope = scopes.of(model)
            fitted = fits.get(model.name)
            weights = fitted.weights(scope) if fitted is not None else model.weights(scope)
            credit = allocate(scope, weights, model.name,
                              population=population if fitted is not None else None).collect()
            if not counted:
                reach.append(deals_touched(scope).with_columns(
                    pl.col("deals_touched").cast(pl.Int64)))
                counted = True
            del weights, scope
            scopes.done(model)
            credit = (credit.drop("channel_group")
                      .join(channel_groups, on="channel", how="left", maintain_order="left")
                      .select(list(CREDIT_SCHEMA)))
            partials.append(_partial_summary(credit))
            untouched = credit.get_column("journey_id").is_in(bare_ids)
            for kind, rows in (("touched", credit.filter(~untouched)),
                               ("bare", credit.filter(untouched))):
                if rows.height:
                    path = folder / "credit" / f"{i:03d}-{kind}-{where:05d}.parquet"
                    rows.write_parquet(path, compression="lz4", statistics=False)
                    spilled.setdefault((i, kind), []).append(path)
            del credit
        del batch, touch_frame, journey_frame
    # each model's touched rows in journey_id order, then its deals without a touch
    ordered = [path for i in range(len(models)) for kind in ("touched", "bare")
               for path in spilled.get((i, kind), [])]
    if on_credit is not None:
        on_credit(ordered, currency)
    summary = (_summary(partials, reach, models) if partials
               else summarise(pl.DataFrame(schema=CREDIT_SCHEMA),
                              Journeys.from_frames(pl.DataFrame(schema=TOUCH_SCHEMA),
                                                   pl.DataFrame(schema=JOURNEY_SCHEMA))))
    report("credit", stages, stages)

    stats = JourneyStats(**summed.stats, as_of=as_of)
    files: list[InputFile] = []
    if contacts is not None:
        files.append(InputFile("contacts", str(config.contacts), contacts.accounting.read,
                               digests["contacts"].result()))
    files.append(InputFile("touchpoints", touch_file, touches.accounting.read,
                           digests["touchpoints"].result()))
    files.append(InputFile("deals", deal_file, checked.accounting.read,
                           digests["deals"].result()))
    notes = _notes(config, rules, channel_groups, summed, touch_file, touches, contacts,
                   deal_notes)
    diagnostics: dict[str, pl.DataFrame] = {}
    for model in models:
        if model.name in fits:
            diagnostics.update(fit_tables(model.name, fits[model.name]))
    journeys = Journeys(touches=pl.defer(_no_journeys, schema=TOUCH_SCHEMA),
                        journeys=pl.defer(_no_journeys, schema=JOURNEY_SCHEMA), as_of=as_of)
    return RunResult(
        config=config, journeys=journeys, models=models,
        credit=pl.DataFrame(schema=CREDIT_SCHEMA), summary=summary,
        accounting=list(accounting.values()), rejects=rejects, files=files, stats=stats,
        currency=currency, unmapped=unmapped, inputs=None, diagnostics=diagnostics,
        skipped_models=skipped, known_totals=_totals(summed), notes=notes,
    )


def _touch_schema(touches: _Checked) -> pl.Schema:
    """The validated touchpoints' columns (of any partition written; all share them)."""
    for paths in touches.by_account:
        if paths:
            return pl.Schema(pl.read_parquet_schema(paths[0]))
    raise InputError(f"{touches.accounting.path}: no touchpoint is valid")


def _late_rejects(late: pl.DataFrame, horizon: datetime | None, split: _Split,
                  column: str = "timestamp") -> pl.DataFrame:
    """The rejects of touches dated past the horizon, as
    :func:`attribution.validation.beyond_horizon` words them, at their file and row."""
    assert horizon is not None
    reason = (f"timestamp more than one year after the latest deal event "
              f"({horizon:%Y-%m-%d}), outside the run's horizon")
    return late.select(
        split.file_of(pl.col(_FILE)).alias("file"), pl.lit("touchpoints").alias("input"),
        pl.col(_FILE_ROW).alias("row"), pl.lit(column).alias("column"),
        pl.lit(reason).alias("reason"),
        pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ").alias("value"),
        pl.lit(None, pl.String).alias("key"),
    ).cast(dict(REJECT_SCHEMA))  # type: ignore[arg-type]


def _tally(summed: _Tallied, journeys: Journeys, stats: JourneyStats,
           models: Sequence[AttributionModel], config: Config) -> None:
    """Add one account partition's counts, totals, tallies and money journeys."""
    for name in _STATS:
        summed.stats[name] += getattr(stats, name)
    empty = pl.DataFrame()
    totals = RunResult(config=config, journeys=journeys, models=[], credit=empty,
                       summary=empty).totals()
    for name, value in totals.items():
        summed.totals[name] = summed.totals.get(name, 0) + int(value)
    for model in models:
        for name, table in model.tally(journeys).items():
            summed.tallies[model.name].setdefault(name, []).append(table)
    summed.groups.append(journeys.touches.select("channel", "channel_group").unique(
        maintain_order=True).collect())
    table = journeys.journeys.collect()
    summed.population.append(
        table.filter((pl.col("status") != "none") & (pl.col("n_touches") > 0))
        .select("journey_id", "amount_cents", "revenue_cents"))
    with_touches = table.filter(pl.col("n_touches") > 0)
    summed.with_touches += with_touches.height
    summed.single_touch += with_touches.filter(pl.col("n_touches") == 1).height


def _totals(summed: _Tallied) -> dict[str, Any]:
    order = ["deals", "won_deals", "lost_deals", "open_deals", "won_revenue_cents",
             "pipeline_cents", "deals_without_touch", "journeys", "touches"]
    return {name: summed.totals.get(name, 0) for name in order}


def _unmapped(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """The utm pairs no rule maps, summed over partitions, as the in-memory run sorts them."""
    schema = {"utm_source": pl.String, "utm_medium": pl.String, "touches": pl.UInt32}
    if not parts:
        return pl.DataFrame(schema=schema)
    return (
        pl.concat([p.cast(schema) for p in parts])  # type: ignore[arg-type]
        .group_by("utm_source", "utm_medium").agg(pl.col("touches").sum().cast(pl.UInt32))
        .sort(["touches", "utm_source", "utm_medium"], descending=[True, False, False],
              nulls_last=True)
    )


def _unified_channels(files: Sequence[Path], mapping: dict[str, str] | None
                      ) -> Callable[[pl.DataFrame], pl.DataFrame] | None:
    """A rewrite of the raw ``channel`` column giving each name the whole column's usual
    spelling (:func:`attribution.channels.unify_spellings`, which a partition cannot apply
    on its own counts); None when the column is absent or has one spelling per name."""
    from attribution.channels import channel_key

    if files[0].suffix.lower() not in PARQUET_EXTENSIONS:
        return None  # one text file: read whole, and unified by the loader's own counts
    raw = _raw_column(pq.read_schema(files[0]).names, "channel", mapping)
    if raw is None:
        return None
    counts = (pl.scan_parquet(list(files), glob=False).select(pl.col(raw).cast(pl.String)
                                                              .str.strip_chars()
                                                              .replace("", None).alias("name"))
              .drop_nulls().group_by("name").agg(pl.len().alias("n")).collect())
    names = counts.get_column("name").to_list()
    if len({channel_key(name) for name in names}) == len(names):
        return None
    chosen = usual_spellings(counts).filter(pl.col("name") != pl.col("label"))

    def rewrite(frame: pl.DataFrame) -> pl.DataFrame:
        trimmed = pl.col(raw).cast(pl.String).str.strip_chars()
        return frame.with_columns(
            trimmed.replace(chosen.get_column("name"), chosen.get_column("label"))
            .fill_null(pl.col(raw).cast(pl.String)).alias(raw))

    return rewrite


def _notes(config: Config, rules: ChannelRules, channel_groups: pl.DataFrame,
           summed: _Tallied, touch_file: str, touches: _Checked,
           contacts: _Checked | None, deal_notes: list[str]) -> list[str]:
    """The in-memory run's notes that a partitioned run can give from its sums."""
    notes = [*(contacts.notes if contacts else []), *touches.notes, *deal_notes]
    ungrouped = ungrouped_note(rules, [c for c in channel_groups.get_column("channel")
                                       if c != NO_TOUCH_CHANNEL])
    if ungrouped is not None:
        notes.append(ungrouped)
    counts = pl.concat([pl.repeat(1, summed.single_touch, dtype=pl.UInt32, eager=True),
                        pl.repeat(2, summed.with_touches - summed.single_touch, dtype=pl.UInt32,
                                  eager=True)]).alias("n_touches").to_frame()
    single = single_touch_note(None, touch_file, journeys=counts) if summed.with_touches else None
    if single is not None:
        notes.append(single)
    return [*notes, *lead_fallback_notes(config.contacts, config.models)]


__all__ = ["AUTO_BYTES", "PARTITION_BYTES", "arrow_bytes", "check_supported", "dataset_files",
           "is_dataset", "partitions_basis", "partitions_for", "run"]
