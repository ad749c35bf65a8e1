"""Channels keep their names (issue #20, item 6): the user's spelling is the label; rules,
groups and ``direct_channels`` match case-insensitively, identically for touch files and path
tables, and HubSpot's "Direct Traffic" is direct like a path table's "Direct"."""

from __future__ import annotations

from pathlib import Path

from attribution.channels import load_rules
from attribution.config import load_config
from attribution.credit import allocate
from attribution.models import get_model
from attribution.paths import read_paths
from attribution.pipeline import load_paths
from tests.factories import channel_credit, journeys_of

DEAL = [("D", "A", "2025-01-06", "2025-01-10", "won", 1000)]


def last_non_direct_credit(touches, **params) -> dict[str, int]:
    journeys = journeys_of(touches, DEAL)
    model = get_model("last_non_direct", **params)
    return channel_credit(allocate(journeys, model.weights(journeys), model.name).collect())


def test_direct_channels_match_whatever_the_case():
    touches = [("A", "x", "Paid Search", "2025-01-01"), ("A", "y", "DIRECT", "2025-01-05")]
    # (allocate writes only the touches that get credit)
    assert last_non_direct_credit(touches) == {"Paid Search": 1000}
    assert last_non_direct_credit(touches, direct_channels=("Direct",)) == {"Paid Search": 1000}
    assert last_non_direct_credit(touches, direct_channels=("paid_search",)) == {"DIRECT": 1000}


def test_direct_traffic_is_direct_through_the_rules_aliases():
    touches = [("A", "x", "Organic Search", "2025-01-01"),
               ("A", "y", "Direct Traffic", "2025-01-05")]
    direct = load_rules().names_of(("direct",))
    assert direct == ("direct", "direct traffic", "(direct)")
    assert last_non_direct_credit(touches, direct_channels=direct) == {"Organic Search": 1000}
    # without the aliases "Direct Traffic" is a channel like any other
    assert last_non_direct_credit(touches) == {"Direct Traffic": 1000}


def test_a_path_tables_direct_is_direct_and_its_spellings_are_one_channel(tmp_path: Path):
    path = tmp_path / "paths.csv"
    path.write_text(
        "path,total_conversions,total_conversion_value\n"
        "Email > Direct,1,100\n"
        "email > direct > Direct,1,50\n"
        "Paid Social > Direct,1,10\n",
        encoding="utf-8",
    )
    table = read_paths(path)
    channels = table.journeys.touches.collect()["channel"].to_list()
    # the usual spelling of each channel labels it everywhere
    assert channels == ["Email", "Direct", "Email", "Direct", "Direct", "Paid Social", "Direct"]
    config = load_config(None).replace(paths=path)
    journeys, _, _ = load_paths(config)
    touches = journeys.touches.collect()
    assert dict(touches.select("channel", "channel_group").unique().iter_rows()) == {
        "Email": "demand_capture", "Direct": "demand_capture", "Paid Social": "demand_creation",
    }
    model = get_model("last_non_direct")
    credit = allocate(journeys, model.weights(journeys), model.name).collect()
    assert channel_credit(credit) == {"Email": 15000, "Paid Social": 1000}


def touch_file(tmp_path: Path) -> Path:
    path = tmp_path / "touchpoints.csv"
    path.write_text(
        "touchpoint_id,timestamp,account_id,channel,utm_source,utm_medium\n"
        "t1,2025-01-01T00:00:00Z,A,Paid Social,,\n"
        "t2,2025-01-02T00:00:00Z,A,Direct Traffic,,\n"
        "t3,2025-01-03T00:00:00Z,A,LinkedIn Ads,,\n"
        "t4,2025-01-04T00:00:00Z,A,,linkedin,cpc\n",
        encoding="utf-8",
    )
    return path


def test_a_channel_columns_names_go_through_the_rules_groups(tmp_path: Path):
    from attribution.loading import load_touchpoints

    rules = load_rules()
    good, _rejects, _accounting, _unmapped, _groups = load_touchpoints(
        touch_file(tmp_path), rules, None)
    groups = dict(zip(good["touchpoint_id"], good["channel_group"], strict=True))
    assert groups == {"t1": "demand_creation", "t2": "demand_capture", "t3": "other",
                      "t4": "demand_creation"}
    assert rules.ungrouped(good["channel"]) == [good["channel"][2]]


def test_a_channel_columns_names_keep_their_spelling(tmp_path: Path):
    from attribution.loading import load_touchpoints

    good = load_touchpoints(touch_file(tmp_path), load_rules(), None)[0]
    assert good["channel"].to_list() == ["Paid Social", "Direct Traffic", "LinkedIn Ads",
                                         "paid_social"]


def test_a_run_counts_direct_traffic_as_direct(tmp_path: Path):
    from attribution import pipeline

    touches = tmp_path / "touches.csv"
    touches.write_text("touchpoint_id,timestamp,account_id,channel\n"
                       "t1,2025-01-01T00:00:00Z,A,Organic Search\n"
                       "t2,2025-01-03T00:00:00Z,A,Direct Traffic\n", encoding="utf-8")
    deals = tmp_path / "deals.csv"
    deals.write_text("deal_id,account_id,created_at,closed_at,status,amount\n"
                     "D,A,2025-01-05T00:00:00Z,2025-01-10T00:00:00Z,won,100.00\n", encoding="utf-8")
    config = load_config(None).replace(touchpoints=touches, deals=deals,
                                       models=("last_non_direct",))
    credit = dict(pipeline.run(config).summary.select("channel",
                                                      "revenue_credit_cents").iter_rows())
    assert {channel.lower(): cents for channel, cents in credit.items() if cents} == {
        "organic search": 10_000}
