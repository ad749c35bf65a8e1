"""Run configuration: one ``attribution.toml`` holds every option; CLI flags override it.

Relative paths inside a config file are resolved against the file's own folder, so a config
can sit next to its exports. Every option and its default is listed in :data:`CONFIG_TEMPLATE`
(``attribution init`` writes it).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from attribution.errors import ConfigError
from attribution.schema import INPUT_COLUMNS
from attribution.sources import PRESET_NAMES

INPUT_NAMES = ("touchpoints", "deals", "contacts", "spend", "paths")
OUTPUT_FORMATS = ("parquet", "csv", "json")


@dataclass(frozen=True)
class Config:
    """Every option of a run, with its default."""

    # inputs
    touchpoints: Path | None = None
    deals: Path | None = None
    contacts: Path | None = None
    spend: Path | None = None
    paths: Path | None = None
    #: holdout / lift results (attribution.experiments): calibrate and the report score the
    #: models against them; incremental takes them as constraints on its channel effects
    experiments: Path | None = None
    #: per input, canonical column name -> the file's column name
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    #: separator between channels in a path table's path column
    path_separator: str = ">"
    # journeys
    lookback_days: int = 180
    dedup_minutes: float = 30.0
    #: instant that closes open deals and deal-less journeys; default: latest date in the data
    as_of: datetime | None = None
    # channels
    channel_rules: Path | None = None
    direct_channels: tuple[str, ...] = ("direct",)
    # money
    currency: str | None = None
    # models
    models: tuple[str, ...] = ()
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the model whose numbers scorecard, budget and the report's headline use unless --model
    #: says otherwise: the one `attribution evaluate` ranks best (see RECOMMENDED_EVIDENCE)
    recommended: str = "incremental"
    #: ``config``: the recommended model is ``recommended``; ``experiments``: when experiments
    #: are given, the model they favour (attribution.calibrate)
    recommend_by: str = "config"
    #: fewer won deals touched than this and a channel's credit is "too few deals to tell"
    min_deals: int = 30
    #: run-level bootstrap: resamples of the accounts for every model's credit interval (0: none)
    bootstrap: int = 0
    #: coverage of those intervals (0.9: the 5th to the 95th percentile)
    interval: float = 0.9
    #: seed of the resampling: same seed, same intervals
    seed: int = 0
    # output
    out: Path | None = None
    format: str = "parquet"
    strict: bool = False
    #: write CSV cells as they are, without neutralising formula-leading text (``--csv-raw``)
    csv_raw: bool = False
    #: the attribution.toml this config was read from, if any
    config_file: Path | None = None
    #: per input read from a database, the SQL to run there (``[inputs.NAME] query``)
    queries: dict[str, str] = field(default_factory=dict)
    #: where commands other than ``run`` write the rejected rows (``--rejects``); ``run``
    #: writes them into its result set, and here too when this is set
    rejects: Path | None = None
    #: strftime patterns tried first on timestamp text (e.g. "%m/%d/%Y %I:%M %p")
    time_formats: tuple[str, ...] = ()
    #: extra CRM stage names per status: {"won": ("Signed",), "open": ("Negotiation",)}
    statuses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: source preset: a name (hubspot, salesforce, marketo_measure, ga4, generic) or the path
    #: of an edited preset file (see attribution.sources); None: the generic layout
    source: str | None = None
    #: largest share of any input's rows that may be rejected before a run stops
    max_reject_rate: float = 0.2
    #: the text inputs' encoding when it is not UTF-8 (``latin-1``, ``cp1252``); None: UTF-8
    #: (UTF-16 and UTF-32 files are recognised by their byte-order mark)
    encoding: str | None = None
    #: one input's own encoding (``{"contacts": "cp1252"}``), over ``encoding``: exports
    #: from different systems come in different encodings
    encodings: dict[str, str] = field(default_factory=dict)

    def encoding_of(self, input_name: str) -> str | None:
        """The encoding ``input_name``'s file is read in (None: UTF-8)."""
        return self.encodings.get(input_name, self.encoding)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied; ``None`` values are ignored (flag not given)."""
        given = {k: v for k, v in changes.items() if v is not None and v != ()}
        unknown = set(given) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown option {sorted(unknown)[0]!r}")
        return dataclasses.replace(self, **given)

    def params_for(self, model: str) -> dict[str, Any]:
        return dict(self.model_params.get(model, {}))


def load_config(path: str | Path | None) -> Config:
    """Read an ``attribution.toml``; ``None`` gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    config = config_from_dict(document, base=path.parent, origin=str(path))
    return dataclasses.replace(config, config_file=path)


def writes_outside(config: Config) -> Path | None:
    """The result folder a config file names outside its own folder (a config someone else
    wrote can point a run's replace-the-whole-folder write anywhere), or None."""
    if config.config_file is None or config.out is None or isinstance(config.out, str):
        return None
    home = config.config_file.resolve().parent
    target = Path(config.out).resolve()
    return None if target.is_relative_to(home) else target


def config_from_dict(document: dict[str, Any], *, base: Path, origin: str) -> Config:
    """Build a :class:`Config` from a parsed TOML document."""
    known = {"inputs", "columns", "journeys", "channels", "money", "models", "output",
             "formats", "statuses"}
    unknown = set(document) - known
    if unknown:
        raise ConfigError(
            f"{origin}: unknown section [{sorted(unknown)[0]}]; "
            f"valid sections: {', '.join(sorted(known))}"
        )
    options: dict[str, Any] = {}

    def section(name: str, keys: set[str]) -> dict[str, Any]:
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: [{name}] must be a table")
        bad = set(table) - keys
        if bad and name != "models":
            raise ConfigError(
                f"{origin}: unknown key {sorted(bad)[0]!r} in [{name}]; "
                f"valid keys: {', '.join(sorted(keys))}"
            )
        return table

    inputs = section("inputs", {*INPUT_NAMES, "path_separator", "source", "max_reject_rate",
                                "encoding", "experiments"})
    if "experiments" in inputs:
        options["experiments"] = _resolve(base, inputs["experiments"])
    queries: dict[str, str] = {}
    for name in INPUT_NAMES:
        if name in inputs and isinstance(inputs[name], dict):
            # [inputs.touchpoints] uri = "postgresql://..." / query = "SELECT ..."
            table = inputs[name]
            bad = set(table) - {"uri", "query"}
            if bad or "uri" not in table:
                raise ConfigError(
                    f"{origin}: [inputs.{name}] takes uri (a database) and optionally query; "
                    f"got {', '.join(sorted(table)) or 'nothing'}")
            options[name] = _resolve(base, str(table["uri"]))
            if "query" in table:
                queries[name] = str(table["query"])
        elif name in inputs:
            options[name] = _resolve(base, inputs[name])
    if queries:
        options["queries"] = queries
    if "path_separator" in inputs:
        options["path_separator"] = str(inputs["path_separator"])
    if "source" in inputs:
        options["source"] = check_source(inputs["source"], base, f"{origin}: [inputs] source")
    if "max_reject_rate" in inputs:
        options["max_reject_rate"] = check_reject_rate_option(
            inputs["max_reject_rate"], f"{origin}: [inputs] max_reject_rate")
    if "encoding" in inputs:
        where = f"{origin}: [inputs] encoding"
        if isinstance(inputs["encoding"], dict):  # encoding = { contacts = "cp1252" }
            options["encodings"] = {
                check_encoding_input(name, where): check_encoding(value, f"{where}.{name}")
                for name, value in inputs["encoding"].items()}
        else:
            options["encoding"] = check_encoding(inputs["encoding"], where)

    columns = section("columns", {*INPUT_NAMES, "experiments"})
    options["columns"] = {
        name: _column_mapping(name, mapping, origin) for name, mapping in columns.items()
    }

    journeys = section("journeys", {"lookback_days", "dedup_minutes", "as_of"})
    if "lookback_days" in journeys:
        options["lookback_days"] = _number(journeys["lookback_days"], "lookback_days", origin, int)
    if "dedup_minutes" in journeys:
        options["dedup_minutes"] = _number(
            journeys["dedup_minutes"], "dedup_minutes", origin, float
        )
    if "as_of" in journeys:
        options["as_of"] = parse_instant(journeys["as_of"], f"{origin}: [journeys] as_of")

    channels = section("channels", {"rules", "direct"})
    if "rules" in channels:
        options["channel_rules"] = _resolve(base, channels["rules"])
    if "direct" in channels:
        options["direct_channels"] = _names(channels["direct"], "[channels] direct", origin)

    money = section("money", {"currency"})
    if "currency" in money:
        options["currency"] = str(money["currency"]).upper()

    formats = section("formats", {"timestamp"})
    if "timestamp" in formats:
        options["time_formats"] = _names(formats["timestamp"], "[formats] timestamp", origin)

    statuses = section("statuses", {"won", "lost", "open"})
    options["statuses"] = {
        status: _names(names, f"[statuses] {status}", origin) for status, names in statuses.items()
    }

    models = section("models", {"run"})
    if "run" in models:
        options["models"] = _names(models["run"], "[models] run", origin)
    if "recommended" in models:
        options["recommended"] = check_recommended(models["recommended"],
                                                   f"{origin}: [models] recommended")
    if "recommend_by" in models:
        options["recommend_by"] = check_recommend_by(models["recommend_by"],
                                                     f"{origin}: [models] recommend_by")
    for key, kind in (("min_deals", int), ("bootstrap", int), ("seed", int),
                      ("interval", float)):
        if key in models:
            options[key] = _number(models[key], key, origin, kind)
    if "min_deals" in options:
        check_min_deals(options["min_deals"], f"{origin}: [models] min_deals")
    if "bootstrap" in options:
        check_bootstrap(options["bootstrap"], f"{origin}: [models] bootstrap")
    if "interval" in options:
        check_interval(options["interval"], f"{origin}: [models] interval")
    for name, params in models.items():
        if name in RUN_LEVEL_MODEL_KEYS:
            continue
        if name != "run" and not isinstance(params, dict):
            raise ConfigError(
                f"{origin}: [models] {name} must be a table of that model's parameters "
                f"([models.{name}]), not {params!r}"
            )
    options["model_params"] = {
        name: dict(params) for name, params in models.items()
        if isinstance(params, dict) and name not in RUN_LEVEL_MODEL_KEYS
    }

    output = section("output", {"dir", "format", "strict", "csv_raw"})
    if "dir" in output:
        options["out"] = _resolve(base, output["dir"])
    if "format" in output:
        options["format"] = check_format(str(output["format"]), origin)
    if "strict" in output:
        if not isinstance(output["strict"], bool):
            raise ConfigError(
                f"{origin}: [output] strict must be true or false, not {output['strict']!r}"
            )
        options["strict"] = output["strict"]
    if "csv_raw" in output:
        if not isinstance(output["csv_raw"], bool):
            raise ConfigError(
                f"{origin}: [output] csv_raw must be true or false, not {output['csv_raw']!r}"
            )
        options["csv_raw"] = output["csv_raw"]
    return Config(**options)


#: keys of [models] that are options of the run, not a model's parameter table
RUN_LEVEL_MODEL_KEYS = ("recommended", "recommend_by", "min_deals", "bootstrap", "interval",
                        "seed")

#: how the recommended model is chosen (``[models] recommend_by``)
RECOMMEND_BY = ("config", "experiments")

#: why ``recommended`` defaults to ``incremental`` (README, ``attribution models``, the report)
RECOMMENDED_EVIDENCE = (
    "`attribution evaluate` ranks incremental best across the shipped evaluation worlds: mean "
    "absolute error of channel revenue shares 0.065 against last-touch's 0.109 (40% lower), "
    "better than last-touch in 23 of 27 worlds (10,000 accounts each; bench/RESULTS-evaluate.md)"
)


def check_recommended(value: Any, where: str = "--model") -> str:
    """A registered model's name for ``[models] recommended``."""
    from attribution.models import MODELS

    if not isinstance(value, str) or value not in MODELS:
        raise ConfigError(f"{where}: {value!r} is not a model; valid: {', '.join(MODELS)}")
    return value


def check_recommend_by(value: Any, where: str = "--recommend-by") -> str:
    """``config`` or ``experiments`` for ``[models] recommend_by``."""
    if value not in RECOMMEND_BY:
        raise ConfigError(f"{where}: {value!r} is not one of: {', '.join(RECOMMEND_BY)}")
    return str(value)


def check_min_deals(value: Any, where: str = "--min-deals") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a whole number >= 1, not {value!r}")
    return value


def check_bootstrap(value: Any, where: str = "--bootstrap") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a number of resamples >= 1, not {value!r}")
    return value


def check_interval(value: Any, where: str = "--interval") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ConfigError(f"{where}: expected a coverage between 0 and 1 (e.g. 0.9), "
                          f"not {value!r}")
    return float(value)


def check_format(value: str, origin: str = "--format") -> str:
    if value not in OUTPUT_FORMATS:
        raise ConfigError(
            f"{origin}: unknown output format {value!r}; valid: {', '.join(OUTPUT_FORMATS)}"
        )
    return value


def config_template(source: str | None = None) -> str:
    """The commented ``attribution.toml`` that ``attribution init`` writes; with ``source``
    (a preset name) its ``[inputs] source`` names the preset's editable copy, ``NAME.toml``
    (written beside it from :func:`attribution.sources.preset_text`)."""
    from importlib import resources

    template = resources.files("attribution").joinpath("config_template.toml").read_text("utf-8")
    if source is None:
        return template
    check_source(source)
    line = next(line for line in template.splitlines() if line.startswith("# source = "))
    return template.replace(
        line, f'source = "{source}.toml"'.ljust(36) + f"# the {source} preset's copy: edit it",
        1)


def check_source(value: Any, base: Path | None = None, where: str = "--source") -> str:
    """A preset name, or a preset file's path (``*.toml``, resolved against ``base``)."""
    text = str(value) if isinstance(value, str) else ""
    if text.endswith(".toml"):
        return str(_resolve(base, text)) if base is not None else text
    if text not in PRESET_NAMES:
        close = difflib.get_close_matches(text, PRESET_NAMES, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{where}: unknown source {value!r}{guess}; valid: {', '.join(PRESET_NAMES)}, "
            "or the path of a preset file (.toml)"
        )
    return text


def check_reject_rate_option(value: Any, where: str = "--max-reject-rate") -> float:
    """A share between 0 and 1 (0.2 lets a fifth of an input's rows be rejected)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{where} must be a number from 0 to 1 (0.2 is 20%), not {value!r}")
    return float(value)


def parse_instant(value: Any, where: str) -> datetime:
    """A date or date-time (TOML value or ISO text) as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{where}: {value!r} is not a date; expected ISO-8601 like 2025-12-31"
            ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _resolve(base: Path, value: Any) -> Path:
    """A path relative to the config's folder; a URL-like location (``s3a://...``,
    ``postgresql://...``) unchanged; a ``duckdb:///relative.duckdb`` file relative to it."""
    text = str(value)
    if text.startswith("duckdb:///") and not text.startswith("duckdb:////"):
        return f"duckdb:///{os.path.normpath(base / text[len('duckdb:///'):])}"  # type: ignore[return-value]
    if "://" in text:
        return text  # type: ignore[return-value]
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(os.path.normpath(base / path))


def _number(value: Any, name: str, origin: str, kind: type) -> Any:
    allowed = int if kind is int else int | float
    if (
        isinstance(value, bool)
        or not isinstance(value, allowed)
        or not math.isfinite(value)
        or value < 0
    ):
        what = "a non-negative whole number" if kind is int else "a non-negative number"
        raise ConfigError(f"{origin}: {name} must be {what}, not {value!r}")
    return kind(value)


def _names(value: Any, where: str, origin: str) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple (a bare string is one name, not letters)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{origin}: {where} must be a string or a list of strings, not {value!r}")


def _column_mapping(input_name: str, mapping: Any, origin: str) -> dict[str, str]:
    """``[columns.<input>]``: canonical column -> the file's column, canonical names checked."""
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ConfigError(
            f"{origin}: [columns.{input_name}] must map column names to the file's column "
            'names, like timestamp = "event_time"'
        )
    canonical = INPUT_COLUMNS.get(input_name)
    if canonical is not None:
        for name in mapping:
            if name not in canonical:
                close = difflib.get_close_matches(name, list(canonical), n=1)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"{origin}: unknown {input_name} column {name!r}{guess} in "
                    f"[columns.{input_name}]; valid: {', '.join(canonical)}"
                )
    return {str(k): v for k, v in mapping.items()}


def from_options(config_path: str | Path | None = None, model_names: tuple[str, ...] = (),
                 half_life_days: float | None = None, params: tuple[str, ...] = (),
                 as_of: str | None = None, markov_order: int | None = None,
                 bootstrap: int | None = None, shapley_variant: str | None = None,
                 **flags: Any) -> Config:
    """The config file (or the defaults) with the command line's options applied: flags that
    were not given (``None``, ``()``) leave the file's values; ``--param MODEL.KEY=VALUE`` items
    and the model shortcuts (``--half-life-days``, ``--markov-order``, ``--shapley-variant``)
    go into the models' parameters. ``--bootstrap`` is the run's (every model's intervals);
    Markov's own removal-effect bootstrap is ``--param markov.bootstrap=N``."""
    config = load_config(config_path)
    model_params = {name: dict(values) for name, values in config.model_params.items()}
    for model, key, value in [
        ("time_decay", "half_life_days", half_life_days),
        ("markov", "order", markov_order),
        ("shapley", "variant", shapley_variant),
    ]:
        if value is not None:
            model_params.setdefault(model, {})[key] = value
    for item in params:
        key, equals, value = item.partition("=")
        model, _, name = key.partition(".")
        if not model or not name or not equals:
            raise ConfigError(
                f"--param {item!r}: expected MODEL.KEY=VALUE, e.g. u_shaped.first=0.3")
        model_params.setdefault(model, {})[name] = parse_value(value)
    if flags.get("currency"):
        flags["currency"] = flags["currency"].upper()
    if flags.get("source") is not None:
        flags["source"] = check_source(flags["source"])
    if flags.get("max_reject_rate") is not None:
        flags["max_reject_rate"] = check_reject_rate_option(flags["max_reject_rate"])
    given = flags.pop("encoding", None) or ()
    for option in (given,) if isinstance(given, str) else given:
        name, _, value = option.rpartition("=")
        if name:  # --encoding contacts=cp1252: that input's own
            flags.setdefault("encodings", {})[check_encoding_input(name, "--encoding")] = \
                check_encoding(value)
        else:
            flags["encoding"] = check_encoding(value)
    return config.replace(
        models=tuple(model_names) or None,
        model_params=model_params,
        bootstrap=check_bootstrap(bootstrap) if bootstrap is not None else None,
        as_of=parse_instant(as_of, "--as-of") if as_of else None,
        **flags,
    )


#: the inputs that can have an encoding of their own
ENCODED_INPUTS = ("touchpoints", "deals", "contacts", "spend", "paths", "experiments")


def check_encoding_input(name: str, where: str) -> str:
    """An input's name for a per-input encoding (``--encoding contacts=cp1252``)."""
    if name.strip() not in ENCODED_INPUTS:
        raise ConfigError(f"{where}: {name!r} is not an input; expected one of "
                          f"{', '.join(ENCODED_INPUTS)} (as in contacts=cp1252)")
    return name.strip()


def check_encoding(value: Any, where: str = "--encoding") -> str:
    """A text encoding Python knows (``latin-1``, ``cp1252``, ``utf-16``), as given."""
    import codecs

    if isinstance(value, str) and value.strip():
        try:
            codecs.lookup(value.strip())
            return value.strip()
        except LookupError:
            pass
    raise ConfigError(f"{where}: unknown encoding {value!r}; expected a text encoding such as "
                      "utf-8, latin-1, cp1252 or utf-16")


def parse_value(text: str) -> Any:
    """A ``--param`` value: a whole number, a number, true/false, a comma-separated list, or
    the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "," in text:
        return tuple(part.strip() for part in text.split(","))
    return text
