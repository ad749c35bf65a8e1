"""Config: every section read from TOML, paths resolved, defaults, and each error message."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from attribution.config import Config, check_format, config_from_dict, load_config, parse_instant
from attribution.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "attribution.toml"
    path.write_text(text, encoding="utf-8")
    return path


def from_dict(document: dict) -> Config:
    return config_from_dict(document, base=Path("/base"), origin="a.toml")


def test_no_file_gives_the_defaults() -> None:
    config = load_config(None)
    assert config == Config()
    assert (config.lookback_days, config.dedup_minutes, config.as_of) == (180, 30.0, None)
    assert config.direct_channels == ("direct",)
    assert (config.format, config.strict, config.columns) == ("parquet", False, {})


def test_every_section_is_read_and_relative_paths_follow_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [inputs]
        touchpoints = "exports/touches.csv"
        deals = "/abs/deals.parquet"
        path_separator = "|"

        [columns.touchpoints]
        timestamp = "event_time"
        account_id = "company"

        [journeys]
        lookback_days = 90
        dedup_minutes = 15
        as_of = 2025-06-30

        [channels]
        rules = "channels.toml"
        direct = ["direct", "(none)"]

        [money]
        currency = "eur"

        [models]
        run = ["last_touch", "markov"]
        [models.markov]
        order = 2

        [output]
        dir = "out"
        format = "csv"
        strict = true
        """,
    )
    config = load_config(path)
    assert config.touchpoints == tmp_path / "exports" / "touches.csv"
    assert config.deals == Path("/abs/deals.parquet")
    assert config.path_separator == "|"
    assert config.columns == {"touchpoints": {"timestamp": "event_time", "account_id": "company"}}
    assert (config.lookback_days, config.dedup_minutes) == (90, 15.0)
    assert isinstance(config.dedup_minutes, float)
    assert config.as_of == datetime(2025, 6, 30, tzinfo=UTC)
    assert config.channel_rules == tmp_path / "channels.toml"
    assert config.direct_channels == ("direct", "(none)")
    assert config.currency == "EUR"
    assert config.models == ("last_touch", "markov")
    assert config.params_for("markov") == {"order": 2}
    assert config.params_for("shapley") == {}
    assert (config.out, config.format, config.strict) == (tmp_path / "out", "csv", True)


def test_a_bare_string_is_one_name_not_its_letters() -> None:
    config = from_dict({"channels": {"direct": "direct"}, "models": {"run": "markov"}})
    assert config.direct_channels == ("direct",)
    assert config.models == ("markov",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-04", datetime(2025, 3, 4, tzinfo=UTC)),
        ("2025-03-04T10:00:00Z", datetime(2025, 3, 4, 10, tzinfo=UTC)),
        ("2025-03-04T12:00:00+02:00", datetime(2025, 3, 4, 10, tzinfo=UTC)),
        (datetime(2025, 3, 4, 10), datetime(2025, 3, 4, 10, tzinfo=UTC)),
    ],
)
def test_parse_instant_is_always_utc(value, expected) -> None:
    moment = parse_instant(value, "--as-of")
    assert moment == expected
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0


def test_replace_ignores_flags_not_given_and_rejects_unknown_options() -> None:
    config = Config().replace(lookback_days=30, as_of=None, models=())
    assert (config.lookback_days, config.as_of, config.models) == (30, None, ())
    with pytest.raises(ConfigError) as caught:
        Config().replace(lookbak_days=3)
    assert str(caught.value) == "unknown option 'lookbak_days'"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"journey": {}},
            ("a.toml: unknown section [journey]; valid sections: channels, columns, formats, "
            "inputs, journeys, models, money, output, statuses"),
        ),
        (
            {"journeys": {"lookback": 3}},
            ("a.toml: unknown key 'lookback' in [journeys]; valid keys: as_of, dedup_minutes, "
            "lookback_days"),
        ),
        ({"inputs": "x"}, "a.toml: [inputs] must be a table"),
        (
            {"journeys": {"lookback_days": -1}},
            "a.toml: lookback_days must be a non-negative whole number, not -1",
        ),
        (
            {"journeys": {"lookback_days": 1.5}},
            "a.toml: lookback_days must be a non-negative whole number, not 1.5",
        ),
        (
            {"journeys": {"dedup_minutes": True}},
            "a.toml: dedup_minutes must be a non-negative number, not True",
        ),
        (
            {"journeys": {"dedup_minutes": float("inf")}},
            "a.toml: dedup_minutes must be a non-negative number, not inf",
        ),
        (
            {"journeys": {"as_of": "31/12/2025"}},
            ("a.toml: [journeys] as_of: '31/12/2025' is not a date; expected ISO-8601 like "
             "2025-12-31"),
        ),
        (
            {"output": {"format": "xlsx"}},
            "a.toml: unknown output format 'xlsx'; valid: parquet, csv, json",
        ),
        ({"output": {"strict": "false"}},
         "a.toml: [output] strict must be true or false, not 'false'"),
        (
            {"channels": {"direct": ["direct", 1]}},
            "a.toml: [channels] direct must be a string or a list of strings, not ['direct', 1]",
        ),
        (
            {"models": {"run": 3}},
            "a.toml: [models] run must be a string or a list of strings, not 3",
        ),
        (
            {"models": {"markov": 3}},
            ("a.toml: [models] markov must be a table of that model's parameters "
             "([models.markov]), not 3"),
        ),
        (
            {"columns": {"touchpoints": "event_time"}},
            ("a.toml: [columns.touchpoints] must map column names to the file's column names, "
            'like timestamp = "event_time"'),
        ),
        (
            {"columns": {"touchpoints": {"timestmp": "event_time"}}},
            ("a.toml: unknown touchpoints column 'timestmp' (did you mean 'timestamp'?) in "
            "[columns.touchpoints]; valid: timestamp, contact_id, account_id, channel, utm_source, "
            "utm_medium, utm_campaign, touch_type, touchpoint_id"),
        ),
        (
            {"columns": {"deals": {"value": "amount_usd"}}},
            ("a.toml: unknown deals column 'value' in [columns.deals]; valid: deal_id, account_id, "
            "created_at, closed_at, status, amount, currency, is_won, is_closed, segment, "
             "self_reported"),
        ),
        (
            {"columns": {"touchpoint": {}}},
            ("a.toml: unknown key 'touchpoint' in [columns]; valid keys: contacts, deals, "
            "experiments, paths, spend, touchpoints"),
        ),
    ],
)
def test_config_errors(document: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(document)
    assert str(caught.value) == message


def test_spend_and_paths_column_maps_are_passed_through() -> None:
    # their canonical names are checked by their own readers
    config = from_dict({"columns": {"spend": {"amount": "cost"}, "paths": {"path": "p"}}})
    assert config.columns == {"spend": {"amount": "cost"}, "paths": {"path": "p"}}


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.toml")
    assert str(caught.value) == (
        f"{tmp_path / 'missing.toml'}: cannot read config (No such file or directory)")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[journeys\n"))
    assert str(caught.value).startswith(f"{tmp_path / 'attribution.toml'}: not valid TOML (")


def test_check_format() -> None:
    assert check_format("json") == "json"
    with pytest.raises(ConfigError) as caught:
        check_format("xml")
    assert str(caught.value) == "--format: unknown output format 'xml'; valid: parquet, csv, json"


def test_formats_and_statuses_sections(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('[formats]\ntimestamp = "%d.%m.%Y"\n[statuses]\nwon = ["Signed", "Booked"]\n')
    config = load_config(path)
    assert config.time_formats == ("%d.%m.%Y",)
    assert config.statuses == {"won": ("Signed", "Booked")}


def test_config_template_for_a_source_names_its_editable_copy(tmp_path):
    from attribution.config import config_template

    plain = config_template()
    hubspot = config_template("hubspot")
    assert 'source = "hubspot.toml"             # the hubspot preset\'s copy: edit it' in hubspot
    assert plain.replace(
        '# source = "hubspot"                # an export layout: hubspot, salesforce, '
        "marketo_measure, ga4,",
        'source = "hubspot.toml"             # the hubspot preset\'s copy: edit it') == hubspot
    (tmp_path / "attribution.toml").write_text(hubspot)
    from attribution.sources import write_preset

    write_preset("hubspot", tmp_path)
    config = load_config(tmp_path / "attribution.toml")
    assert config.source == str(tmp_path / "hubspot.toml")
    assert config.max_reject_rate == 0.2
