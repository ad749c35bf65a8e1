"""Source presets: each vendor fixture runs end to end with no rejects and exact credit; the
column rules, recognised exports, edited preset files, the reject rate and first-touch data."""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl
import pytest

from attribution.channels import load_rules
from attribution.config import config_from_dict, load_config
from attribution.errors import ColumnNotFoundError, ConfigError, RejectRateError
from attribution.loading import load_inputs
from attribution.pipeline import journeys_from, resolve_models, run_models
from attribution.sources import (
    PRESET_NAMES,
    apply_preset,
    load_preset,
    preset_text,
    recognise,
    single_touch_note,
    source_direct_channels,
    write_preset,
)
from attribution.validation import Accounting, check_reject_rate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VENDORS = ["hubspot", "salesforce", "marketo_measure", "ga4"]


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def load_fixture(source: str):
    config = load_config(FIXTURES / source / "attribution.toml")
    assert config.source == source
    inputs = load_inputs(config.touchpoints, config.deals, config.contacts, rules=load_rules(),
                         columns=config.columns, statuses=config.statuses, source=config.source,
                         max_reject_rate=config.max_reject_rate)
    return config, inputs


@pytest.mark.parametrize("source", VENDORS)
def test_vendor_fixture_runs_end_to_end_with_exact_credit(source: str) -> None:
    config, inputs = load_fixture(source)
    # no row rejected for a stage, a boolean, a date or a channel name
    assert inputs.rejects.height == 0
    assert all(a.rejected_total == 0 for a in inputs.accounting.values())
    assert "(unmapped)" not in inputs.touchpoints["channel"].to_list()
    named = inputs.touchpoints.filter(pl.col("channel").str.to_lowercase() != "other")
    assert "other" not in named["channel_group"].to_list()
    preset = load_preset(source)
    config = config.replace(
        direct_channels=(*config.direct_channels, *source_direct_channels(preset)))
    journeys, _stats = journeys_from(inputs, config)
    models = resolve_models(config, journeys)
    assert len(models) >= 8
    credit, summary = run_models(journeys, models)
    deals = inputs.deals
    won = int(deals.filter(pl.col("status") == "won")["amount_cents"].sum())
    pipeline = int(deals["amount_cents"].sum())
    assert won > 0
    for model in summary["model"].unique().to_list():
        rows = summary.filter(pl.col("model") == model)
        assert int(rows["revenue_credit_cents"].sum()) == won, model
        assert int(rows["pipeline_credit_cents"].sum()) == pipeline, model
    # every deal's credit sums to its amount, to the cent, in every model
    per_deal = credit.group_by("model", "deal_id").agg(pl.col("pipeline_credit_cents").sum())
    amounts = dict(deals.select("deal_id", "amount_cents").iter_rows())
    assert per_deal.height == len(amounts) * summary["model"].n_unique()
    for model, deal, total in per_deal.iter_rows():
        assert total == amounts[deal], (model, deal)


def test_hubspot_fixture_reads_its_stages_dates_and_association_cells() -> None:
    _config, inputs = load_fixture("hubspot")
    deals = inputs.deals.sort("_row")
    assert deals["status"].to_list() == ["open"] * 5 + ["won", "won", "lost", "lost", "won"]
    # "9001;9003": the first company listed
    assert deals["account_id"].to_list()[:2] == ["9001", "9002"]
    assert deals["amount_cents"].to_list()[:2] == [1_200_000, 1_337_525]
    first = deals.row(0, named=True)
    assert first["created_at"].isoformat() == "2025-01-23T09:28:00+00:00"
    assert inputs.notes[-1] == (
        f"{FIXTURES / 'hubspot' / 'deals.csv'}: Create Date, Close Date read as "
        "'%m/%d/%Y %I:%M %p' (month/day/year, 12-hour clock)")
    groups = dict(inputs.touchpoints.select("channel", "channel_group").unique().iter_rows())
    assert groups["Paid Social"] == "demand_creation"
    assert groups["Direct Traffic"] == "demand_capture"
    assert groups["Offline Sources"] == "sales"


def test_direct_traffic_from_hubspot_is_direct_for_last_non_direct() -> None:
    config, inputs = load_fixture("hubspot")
    direct = (*config.direct_channels, *source_direct_channels(load_preset("hubspot")))
    config = config.replace(models=("last_non_direct", "last_touch"), direct_channels=direct)
    journeys, _ = journeys_from(inputs, config)
    credit, _summary = run_models(journeys, resolve_models(config, journeys))
    last_touch = credit.filter((pl.col("model") == "last_touch")
                               & (pl.col("pipeline_credit_cents") > 0))
    non_direct = credit.filter((pl.col("model") == "last_non_direct")
                               & (pl.col("pipeline_credit_cents") > 0))
    assert "Direct Traffic" in last_touch["channel"].to_list()  # the fixture ends on one
    assert "Direct Traffic" not in non_direct["channel"].to_list()


def test_salesforce_booleans_decide_custom_stages() -> None:
    _config, inputs = load_fixture("salesforce")
    statuses = dict(inputs.deals.select("deal_id", "status").iter_rows())
    # "Signed Off" and "Lost to Competitor" are no default stage: IsWon / IsClosed decide
    assert statuses["0065g0000000000011"] == "won"
    assert statuses["0065g0000000000012"] == "lost"
    # a campaign member that is a converted lead counts as the contact it became
    touches = inputs.touchpoints.sort("_row")
    assert touches.row(5, named=True)["contact_id"] == "0035g0000000000006"


def test_ga4_events_are_read_as_epoch_microseconds() -> None:
    _config, inputs = load_fixture("ga4")
    assert inputs.time_formats["touchpoints.event_timestamp"].pattern == "epoch_us"
    first = inputs.touchpoints.sort("_row").row(0, named=True)
    assert first["timestamp"].isoformat() == "2025-01-03T00:00:00+00:00"
    assert first["account_id"] == "acct-00"  # through the identity file


# -- the column rules ---------------------------------------------------------------------------
def test_columns_first_present_several_coalesced_user_wins_and_first_of_a_list() -> None:
    preset = load_preset("salesforce")
    frame = pl.DataFrame({
        "Id": ["m1", "m2"], "FirstRespondedDate": ["2025-01-02", "2025-01-03"],
        "ContactId": ["c1", ""], "Lead.ConvertedContactId": [None, "c2"],
        "Campaign.Type": ["Webinar", "Email"], "Kind": ["x", "y"],
    })
    made, mapping = apply_preset(frame, preset, "touchpoints", {"touch_type": "Kind"})
    assert mapping["timestamp"] == "FirstRespondedDate" and mapping["touch_type"] == "Kind"
    assert made.get_column(mapping["contact_id"]).to_list() == ["c1", "c2"]
    hubspot = load_preset("hubspot")
    deals = pl.DataFrame({"Associated Company IDs": ["11; 12", "13", None]})
    made, mapping = apply_preset(deals, hubspot, "deals")
    assert made.get_column(mapping["account_id"]).to_list() == ["11", "13", None]


# -- recognised exports -------------------------------------------------------------------------
def test_a_salesforce_opportunity_export_without_source_says_which_flag(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestamp,account_id,channel\n2025-01-01,A,email\n")
    deals = write(tmp_path, "d.csv", "Id,AccountId,StageName,Amount,CloseDate,CreatedDate\n"
                  "O1,A,Closed Won,10,2025-02-01,2025-01-02\n")
    with pytest.raises(ColumnNotFoundError) as caught:
        load_inputs(touches, deals, rules=load_rules())
    assert str(caught.value) == (
        f"{deals}: missing column 'deal_id', 'account_id' (did you mean 'AccountId'?), "
        "'created_at' (did you mean 'CreatedDate'?), 'status', 'amount' (did you mean "
        "'Amount'?); the file has 'Id', 'AccountId', 'StageName', 'Amount', 'CloseDate', "
        "'CreatedDate'; map a differently named column with [columns.deals] in the config; "
        "this looks like a Salesforce Opportunity export: add --source salesforce "
        '(or [inputs] source = "salesforce" in the config)'
    )
    again = load_inputs(touches, deals, rules=load_rules(), source="salesforce")
    assert again.deals.select("deal_id", "status").rows() == [("O1", "won")]


def test_recognise_each_fixture_layout() -> None:
    header = pl.read_csv(FIXTURES / "hubspot" / "deals.csv", n_rows=0).columns
    assert recognise(header, "deals")[0].name == "hubspot"
    header = pl.read_csv(FIXTURES / "marketo_measure" / "touchpoints.csv", n_rows=0).columns
    assert recognise(header, "touchpoints")[1].export == "Marketo Measure Buyer Touchpoint export"
    header = pl.read_csv(FIXTURES / "ga4" / "events.csv", n_rows=0).columns
    assert recognise(header, "touchpoints")[0].name == "ga4"
    assert recognise(["timestamp", "account_id", "channel"], "touchpoints") is None


# -- preset files and config ----------------------------------------------------------------------
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_is_valid_toml_that_loads(name: str) -> None:
    preset = load_preset(name)
    assert preset.name == name
    tomllib.loads(preset_text(name))


def test_an_edited_preset_file_is_used(tmp_path: Path) -> None:
    path = write_preset("hubspot", tmp_path)
    assert path == tmp_path / "hubspot.toml"
    assert path.read_text("utf-8") == preset_text("hubspot")
    with pytest.raises(ConfigError) as caught:
        write_preset("hubspot", tmp_path)
    assert str(caught.value) == f"{path}: already exists; remove it or edit it"
    path.write_text(path.read_text("utf-8").replace(
        'won = ["Closed Won", "closedwon"]', 'won = ["Closed Won", "closedwon", "Signed"]'))
    config = config_from_dict({"inputs": {"source": "hubspot.toml"}}, base=tmp_path, origin="a")
    assert config.source == str(path)
    assert load_preset(config.source).statuses["won"] == ("Closed Won", "closedwon", "Signed")


def test_config_source_and_max_reject_rate(tmp_path: Path) -> None:
    config = config_from_dict({"inputs": {"source": "ga4", "max_reject_rate": 0.05}},
                              base=tmp_path, origin="a.toml")
    assert (config.source, config.max_reject_rate) == ("ga4", 0.05)
    assert config_from_dict({}, base=tmp_path, origin="a.toml").max_reject_rate == 0.2
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"inputs": {"source": "hubspt"}}, base=tmp_path, origin="a.toml")
    assert str(caught.value) == (
        "a.toml: [inputs] source: unknown source 'hubspt' (did you mean 'hubspot'?); valid: "
        "generic, hubspot, salesforce, marketo_measure, ga4, or the path of a preset file (.toml)")
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"inputs": {"max_reject_rate": 20}}, base=tmp_path, origin="a.toml")
    assert str(caught.value) == (
        "a.toml: [inputs] max_reject_rate must be a number from 0 to 1 (0.2 is 20%), not 20")


def test_a_bad_preset_file_names_the_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.toml", '[source]\nname = "mine"\n[columns.deals]\nvalue = "V"\n')
    with pytest.raises(ConfigError) as caught:
        load_preset(path)
    assert str(caught.value) == (
        f"{path}: unknown deals column 'value' in [columns.deals]; valid: deal_id, account_id, "
        "created_at, closed_at, status, amount, currency, is_won, is_closed, segment, "
        "self_reported")


# -- reject rate --------------------------------------------------------------------------------
def test_reject_rate_above_the_maximum_names_the_input_and_its_rate(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestamp,account_id,channel\n2025-01-01,A,email\n")
    rows = "".join(f"D{i},A,2025-01-02,2025-02-01,{'won' if i < 13 else 'Stalled'},10\n"
                   for i in range(25))
    deals = write(tmp_path, "d.csv", "deal_id,account_id,created_at,closed_at,status,amount\n"
                  + rows)
    with pytest.raises(RejectRateError) as caught:
        load_inputs(touches, deals, rules=load_rules(), max_reject_rate=0.2)
    assert str(caught.value) == (
        f"{deals}: 12 of 25 deals rows rejected (48.0%): unknown status; expected won, lost or "
        "open (12); above the maximum reject rate 20% (fix the rows, or raise it with "
        "--max-reject-rate or [inputs] max_reject_rate)")
    # at the rate itself it passes, and without a maximum nothing is checked
    at_rate = load_inputs(touches, deals, rules=load_rules(), max_reject_rate=0.48)
    assert at_rate.rejects.height == 12
    assert load_inputs(touches, deals, rules=load_rules()).rejects.height == 12


def test_check_reject_rate_lists_every_input_above() -> None:
    counted = [Accounting("touchpoints", "t.csv", read=4, rejected={"missing timestamp": 4}),
               Accounting("deals", "d.csv", read=10, rejected={"a": 1, "b": 2}),
               Accounting("contacts", "c.csv", read=0)]
    with pytest.raises(RejectRateError) as caught:
        check_reject_rate(counted, 0.25)
    assert str(caught.value) == (
        "t.csv: 4 of 4 touchpoints rows rejected (100.0%): missing timestamp (4); d.csv: 3 of 10 "
        "deals rows rejected (30.0%): b (2), a (1); above the maximum reject rate 25% (fix the "
        "rows, or raise it with --max-reject-rate or [inputs] max_reject_rate)")
    check_reject_rate(counted, 1.0)


# -- first-touch data ---------------------------------------------------------------------------
def test_a_contact_export_as_touches_is_flagged_first_touch_only(tmp_path: Path) -> None:
    contacts = FIXTURES / "hubspot" / "contacts.csv"
    inputs = load_inputs(contacts, FIXTURES / "hubspot" / "deals.csv", contacts,
                         rules=load_rules(), source="hubspot")
    assert inputs.rejects.height == 0
    assert inputs.notes[-1] == (
        f"{contacts}: every contact has exactly one touch (12 contacts): the export carries "
        "first-touch data only, and the multi-touch models have no paths to weigh; pull "
        + load_preset("hubspot").touch_export)
    _config, multi = load_fixture("hubspot")
    assert not any("first-touch" in note for note in multi.notes)


def test_single_touch_journeys_are_flagged() -> None:
    journeys = pl.DataFrame({"n_touches": [1] * 19 + [2, 0]})
    note = single_touch_note(None, "t.csv", journeys=journeys)
    assert note == (
        "t.csv: 19 of 20 journeys (95%) have one touch: the export carries first-touch data "
        "only, and the multi-touch models have no paths to weigh; pull "
        + load_preset("generic").touch_export)
    mixed = pl.DataFrame({"n_touches": [1] * 18 + [2, 3]})
    assert single_touch_note(None, "t.csv", journeys=mixed) is None


def test_a_missing_column_lists_the_files_headers_escaped_and_cut(tmp_path: Path) -> None:
    # through a preset: the file's own names, each escaped, the whole cut to 200 characters
    touches = write(tmp_path, "t.csv", "timestamp,account_id,channel\n2025-01-01,A,email\n")
    names = ["Record ID", "Deal Stage", "Amount", "[red]x\x1b[0m"] + [f"Field {i}"
                                                                     for i in range(60)]
    deals = write(tmp_path, "d.csv", ",".join(names) + "\n" + ",".join(["1"] * 64) + "\n")
    with pytest.raises(ColumnNotFoundError) as caught:
        load_inputs(touches, deals, rules=load_rules(), source="hubspot")
    message = str(caught.value)
    listing = ", ".join(repr(n) for n in names)
    assert (f"; the file has {listing[:200]}... (64 columns); map a differently named column"
            in message)
    assert "'[red]x\\x1b[0m'" in message and "\x1b" not in message
    assert "'amount'" not in message.split("; the file has ")[1].split(";")[0]


def test_a_preset_names_the_columns_it_looked_for(tmp_path: Path) -> None:
    touches = write(tmp_path, "t.csv", "timestamp,account_id,channel\n2025-01-01,A,email\n")
    deals = write(tmp_path, "d.csv", "Record ID,Deal Stage,Amount,Create Date\n"
                  "1,closedwon,10,2025-01-02\n")
    with pytest.raises(ColumnNotFoundError) as caught:
        load_inputs(touches, deals, rules=load_rules(), source="salesforce")
    # the file's own headers (the preset had renamed 'Amount' to 'amount': a new user's trial
    # read that as a column of the file), and no guess from a renamed one
    assert str(caught.value) == (
        f"{deals}: missing column 'deal_id', 'account_id', 'created_at' "
        "(did you mean 'Create Date'?), 'status'; the file has 'Record ID', 'Deal Stage', "
        "'Amount', 'Create Date'; map a differently named column with [columns.deals] in the "
        "config; the salesforce preset looks for deal_id in 'Id' or 'Opportunity ID' or "
        "'Opportunity Id'; account_id in 'AccountId' or 'Account ID'; created_at in "
        "'CreatedDate' or 'Created Date'; status in 'StageName' or 'Stage'; this looks like a "
        "HubSpot deals export: add --source hubspot (or [inputs] "
        'source = "hubspot" in the config)'
    )


@pytest.mark.parametrize("source", VENDORS)
def test_attribution_run_with_source_on_each_vendor_export(source: str, tmp_path: Path) -> None:
    """The issue's own check: `attribution run --source NAME ...` on an export in that
    system's layout runs end to end, rejects nothing, says which date format it read, and its
    result set reconciles to the cent."""
    import json

    from click.testing import CliRunner

    from attribution.cli import cli

    config = load_config(FIXTURES / source / "attribution.toml")
    inputs = ["--touchpoints", str(config.touchpoints), "--deals", str(config.deals)]
    if config.contacts is not None:
        inputs += ["--contacts", str(config.contacts)]
    extra = ["--as-of", config.as_of.isoformat()] if config.as_of else []
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--source", source, *inputs, *extra,
                                      "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert not (out / "rejects.csv").exists()
    record = json.loads((out / "run.json").read_text())
    assert all(a["rejected"] == 0 for a in record["accounting"])
    summary = pl.read_parquet(out / "summary.parquet")
    won = record["totals"]["won_revenue_cents"]
    for model in summary["model"].unique().to_list():
        rows = summary.filter(pl.col("model") == model)
        credited = rows["revenue_credit"].sum()  # money: keep name (the file's)
        assert int(credited * 100) == won, model
    if source == "hubspot":  # US-style dates: the run says how it read them
        assert "read as '%m/%d/%Y" in result.stderr


def test_spend_channels_take_the_presets_groups_as_the_touches_do(tmp_path) -> None:
    # a new user's trial: budget showed "Offline Sources" as other, scorecard as sales
    spend = tmp_path / "spend.csv"
    spend.write_text("channel,period_start,period_end,amount\n"
                     "Offline Sources,2025-01-01,2025-03-31,900.00\n"
                     "other campaigns,2025-01-01,2025-03-31,300.00\n"
                     "Podcast,2025-01-01,2025-03-31,100.00\n")
    from attribution import api
    from attribution.pipeline import run

    config = load_config(FIXTURES / "hubspot" / "attribution.toml").replace(
        models=("last_touch",))
    read = api.read_spend(run(config), spend)
    assert dict(read.rows.select("channel", "channel_group").iter_rows()) == {
        "Offline Sources": "sales", "Other Campaigns": "demand_creation",
        "Podcast": "demand_creation"}  # not the run's: the rules' group
