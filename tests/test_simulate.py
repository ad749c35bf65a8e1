"""Tests of the export simulator: determinism, shape, causal structure, exact ground truth."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from attribution.errors import ConfigError
from attribution.simulate import (
    CHANNELS,
    SCENARIOS,
    World,
    baseline_revenue,
    channel_truth,
    ground_truth,
    random_world,
    scenario,
    simulate,
    write_export,
)
from tests.factories import hand_world

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"

#: the utm pairs the brief promises per channel (the default channel rules map exactly these)
EXPECTED_UTMS = {
    "podcast": {("spotify", "podcast"), ("apple_podcasts", "podcast")},
    "newsletter": {("newsletter", "newsletter")},
    "community": {("slack", "community"), ("discord", "community")},
    "events": {("saastr", "event"), ("dreamforce", "event")},
    "webinar": {("zoom", "webinar"), ("on24", "webinar")},
    "organic_social": {("linkedin", "social")},
    "paid_social": {("linkedin", "paid_social")},
    "content": {("blog", "content")},
    "organic_search": {("google", "organic")},
    "paid_search": {("google", "cpc"), ("bing", "cpc")},
    "review_sites": {("g2", "referral"), ("capterra", "referral")},
    "retargeting": {("adroll", "retargeting")},
    "email": {("hubspot", "email")},
    "direct": {("(direct)", "(none)")},
}
PAIR_CHANNEL = {pair: channel for channel, pairs in EXPECTED_UTMS.items() for pair in pairs}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MONEY = re.compile(r"^\d+\.\d\d$")


@pytest.fixture(scope="module")
def baseline():
    return simulate(3000, seed=11)


def with_channel(touchpoints: pl.DataFrame) -> pl.DataFrame:
    """Touchpoints with the channel their utm pair stands for (test-side mapping)."""
    mapping = pl.DataFrame(
        [(s, m, c) for (s, m), c in PAIR_CHANNEL.items()],
        schema=["utm_source", "utm_medium", "channel"],
        orient="row",
    )
    return touchpoints.join(mapping, on=["utm_source", "utm_medium"], how="left")


def with_account(export) -> pl.DataFrame:
    """Touchpoints with the account filled in through contacts, as the loader must do."""
    return with_channel(export.touchpoints).join(
        export.contacts.select("contact_id", pl.col("account_id").alias("contact_account")),
        on="contact_id",
        how="left",
    )


# -- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ndjson"])
def test_same_seed_same_bytes(tmp_path, fmt):
    for run in ("a", "b"):
        write_export(simulate(400, seed=5, messy=True), tmp_path / run, format=fmt)
    for name in ("touchpoints", "deals", "contacts", "spend"):
        first = (tmp_path / "a" / f"{name}.{fmt}").read_bytes()
        assert first == (tmp_path / "b" / f"{name}.{fmt}").read_bytes(), name
        assert len(first) > 0


def test_seeds_differ():
    one, two = simulate(400, seed=1), simulate(400, seed=2)
    assert not one.touchpoints.equals(two.touchpoints)
    assert not one.deals.equals(two.deals)


def test_write_export_round_trips_every_format(tmp_path):
    export = simulate(300, seed=3, messy=True)
    for fmt, read in (
        ("csv", lambda p: pl.read_csv(p, infer_schema=False)),
        ("parquet", pl.read_parquet),
        ("ndjson", pl.read_ndjson),
    ):
        paths = write_export(export, tmp_path / fmt, format=fmt)
        assert sorted(paths) == ["contacts", "deals", "spend", "touchpoints"]
        assert {p.name for p in paths.values()} == {
            f"{n}.{fmt}" for n in ("touchpoints", "deals", "contacts", "spend")
        }
        for name, table in export.tables().items():
            back = read(paths[name])
            if fmt == "csv":  # an empty cell reads back as null
                assert_frame_equal(back, table)
            else:
                assert_frame_equal(back.cast(pl.String), table)


def test_unknown_format_and_scenario_are_config_errors(tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown export format 'parquett' \(did you mean 'parquet'\?\)"
    ):
        write_export(simulate(50), tmp_path, format="parquett")
    with pytest.raises(
        ConfigError, match=r"unknown scenario 'baseline2'.*valid scenarios: baseline, "
    ):
        scenario("baseline2")


def test_worlds_are_immutable():
    world = scenario("baseline")
    with pytest.raises(TypeError):
        world.reach["podcast"] = 1.0  # type: ignore[index]
    assert world == scenario("baseline")


def test_world_validation_reports_every_problem():
    with pytest.raises(ConfigError) as caught:
        World(
            name="bad",
            reach={"podcast": 1.5, "paid_search": 0.1},
            stage={"podcast": 0.1, "paid_search": 0.8},
            causes={("podcast", "paid_search"): 0.5, ("paid_search", "podcast"): 0.5},
        )
    message = str(caught.value)
    assert "reach['podcast'] = 1.5 is not a probability" in message
    assert "causes contain a cycle" in message
    with pytest.raises(
        ConfigError, match=r"unknown channel 'podcasts' \(did you mean 'podcast'\?\)"
    ):
        World(name="typo", reach={"podcasts": 0.1}, stage={"podcasts": 0.1})


# -- schema ------------------------------------------------------------------------------------


def test_columns_and_formats(baseline):
    assert baseline.touchpoints.columns == [
        "touchpoint_id", "timestamp", "contact_id", "account_id",
        "utm_source", "utm_medium", "utm_campaign", "touch_type",
    ]  # fmt: skip
    assert baseline.deals.columns == [
        "deal_id", "account_id", "created_at", "closed_at", "status", "amount", "currency",
    ]  # fmt: skip
    assert baseline.contacts.columns == ["contact_id", "account_id", "lead_created_at"]
    assert baseline.spend.columns == ["channel", "period_start", "period_end", "amount", "currency"]
    for table in baseline.tables().values():
        assert set(table.dtypes) == {pl.String}

    touches, deals = baseline.touchpoints, baseline.deals
    assert touches["timestamp"].str.contains(ISO_UTC.pattern).all()
    assert touches["touchpoint_id"].n_unique() == touches.height
    assert set(touches["touch_type"]) <= {
        "ad_click", "page_view", "form_fill", "email_click",
        "event_attend", "podcast_listen", "webinar_attend",
    }  # fmt: skip
    assert touches.select("timestamp").to_series().is_sorted()
    assert deals["deal_id"].n_unique() == deals.height
    assert deals["account_id"].n_unique() == deals.height  # one deal per account
    assert deals["amount"].str.contains(MONEY.pattern).all()
    assert set(deals["currency"]) == {"USD"}
    assert set(deals["status"]) == {"won", "lost", "open"}
    assert (deals["closed_at"].is_null() == (deals["status"] == "open")).all()
    closed = deals.filter(pl.col("closed_at").is_not_null())
    assert (closed["closed_at"] > closed["created_at"]).all()
    for column in ("created_at", "closed_at"):
        assert closed[column].str.contains(ISO_UTC.pattern).all()


def test_every_timestamp_inside_the_window():
    export = simulate(500, seed=8, start=date(2024, 7, 1), days=90)
    stamps = pl.concat(
        [
            export.touchpoints["timestamp"],
            export.deals["created_at"],
            export.deals["closed_at"].drop_nulls(),
            export.contacts["lead_created_at"].drop_nulls(),
        ]
    )
    assert stamps.min() >= "2024-07-01T00:00:00Z"
    assert stamps.max() < "2024-09-29T00:00:00Z"


def test_utm_pairs_are_exactly_the_promised_ones(baseline):
    pairs = set(baseline.touchpoints.select("utm_source", "utm_medium").unique().iter_rows())
    assert pairs <= set(PAIR_CHANNEL)
    assert {PAIR_CHANNEL[p] for p in pairs} == set(CHANNELS)  # baseline uses every channel


def test_touches_join_through_contacts(baseline):
    touches = with_account(baseline)
    assert touches["contact_account"].null_count() == 0  # every contact is known
    given = touches.filter(pl.col("account_id").is_not_null())
    assert (given["account_id"] == given["contact_account"]).all()
    blank = touches["account_id"].null_count() / touches.height
    assert 0.55 < blank < 0.65


def test_spend_is_monthly_per_paid_channel(baseline):
    spend = baseline.spend
    assert spend["amount"].str.contains(MONEY.pattern).all()
    assert set(spend["channel"]) == {
        "podcast", "newsletter", "events", "webinar", "paid_social",
        "content", "paid_search", "review_sites", "retargeting", "email",
    }  # fmt: skip
    assert spend.height == 10 * 12
    for start, end in spend.select("period_start", "period_end").unique().iter_rows():
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        assert first.day == 1 and (last + timedelta(days=1)).day == 1 and first.month == last.month
    # money: keep names from here (the file's column)
    totals = spend.group_by("channel").agg(pl.col("amount").cast(pl.Float64).sum())
    # money: keep names to here
    assert (totals["amount"] > 0).all()


# -- statistical shape -------------------------------------------------------------------------


def test_buying_groups_have_one_to_eight_contacts(baseline):
    sizes = baseline.contacts.group_by("account_id").len()["len"]
    assert sizes.min() == 1 and sizes.max() == 8
    assert 3.0 < sizes.mean() < 4.5


def test_early_channels_come_before_late_ones(baseline):
    touches = (
        with_account(baseline)
        .with_columns(
            (
                (pl.col("timestamp").rank("ordinal").over("contact_account") - 1)
                / (pl.len().over("contact_account") - 1)
            ).alias("position")
        )
        .filter(pl.len().over("contact_account") > 3)
    )
    mean = dict(touches.group_by("channel").agg(pl.col("position").mean()).iter_rows())
    for early in ("podcast", "newsletter", "community", "events", "webinar", "organic_social"):
        for late in ("paid_search", "review_sites", "retargeting", "direct"):
            assert mean[early] < mean[late], (early, late)


def test_leads_are_created_at_or_after_the_first_touch(baseline):
    first = baseline.touchpoints.group_by("contact_id").agg(pl.col("timestamp").min())
    joined = baseline.contacts.join(first, on="contact_id")
    assert (joined["lead_created_at"] >= joined["timestamp"]).all()
    assert baseline.contacts["lead_created_at"].str.contains(ISO_UTC.pattern).mean() > 0.7


def test_deal_less_accounts_and_touch_less_deals_exist(baseline):
    touched = set(with_account(baseline)["contact_account"])
    dealt = set(baseline.deals["account_id"])
    assert len(touched - dealt) > len(touched) / 2  # most touched accounts never buy
    untouched_deals = dealt - touched
    assert 0 < len(untouched_deals) < len(dealt) / 5


def test_no_marketing_world_mostly_closes_without_touches():
    export = simulate(2000, seed=4, world=scenario("no_marketing"))
    touched = set(with_account(export)["contact_account"])
    dealt = export.deals["account_id"]
    assert (~dealt.is_in(list(touched))).mean() > 0.7


def test_exposure_raises_the_deal_rate(baseline):
    # review sites carry a strong deal effect in the baseline world
    touches = with_account(baseline)
    reviewed = set(touches.filter(pl.col("channel") == "review_sites")["contact_account"])
    others = set(touches["contact_account"]) - reviewed
    dealt = set(baseline.deals["account_id"])
    assert len(reviewed & dealt) / len(reviewed) > 1.5 * len(others & dealt) / len(others)


# -- causal structure --------------------------------------------------------------------------


def test_removing_podcast_removes_the_search_it_caused():
    world = scenario("brand_drives_search")
    factual = simulate(3000, seed=9, world=world)
    counterfactual = simulate(3000, seed=9, world=world, removed=("podcast",))

    def touches(export, channel):
        frame = with_channel(export.touchpoints).filter(pl.col("channel") == channel)
        return set(frame.select("contact_id", "timestamp", "utm_source", "touch_type").iter_rows())

    assert touches(counterfactual, "podcast") == set()
    # paid search touches only disappear (they are caused by podcast, or else untouched)...
    paid_before, paid_after = (
        touches(factual, "paid_search"),
        touches(counterfactual, "paid_search"),
    )
    assert len(paid_after) < 0.9 * len(paid_before)
    # ...channels podcast does not cause are exactly the same touches
    for channel in ("newsletter", "community"):
        assert touches(factual, channel) == touches(counterfactual, channel)
    # noise channels only lose the stray visits of accounts podcast alone had reached
    for channel in ("content", "organic_search"):
        assert touches(counterfactual, channel) <= touches(factual, channel)


def test_ground_truth_matches_the_counterfactual_exports():
    world = scenario("brand_drives_search")
    factual = simulate(1500, seed=21, world=world)

    def won_cents(export) -> int:
        won = export.deals.filter(pl.col("status") == "won")["amount"]
        return round(won.cast(pl.Float64).sum() * 100)

    assert baseline_revenue(factual) == won_cents(factual)
    truth = dict(ground_truth(factual).select("channel", "revenue_removed_cents").iter_rows())
    assert set(truth) == set(world.channels)
    for channel in ("podcast", "paid_search", "direct", "content"):
        without = simulate(1500, seed=21, world=world, removed=(channel,))
        assert truth[channel] == won_cents(factual) - won_cents(without), channel
        assert truth[channel] == channel_truth(factual, channel)
    assert truth["podcast"] > 0  # its only value is the search and direct visits it causes


_hand_world = hand_world


def test_ground_truth_on_a_hand_worked_world():
    export = simulate(40, seed=1, world=_hand_world())
    deals = export.deals
    assert set(deals["status"]) <= {"won", "open"} and set(deals["amount"]) == {"20000.00"}
    closed = deals.filter(pl.col("status") == "won").height
    assert closed > 0
    revenue = closed * 20_000_00
    # removing podcast removes the paid search it caused: no deal is won any more;
    # removing paid search does the same; removing direct halves every amount
    expected = pl.DataFrame(
        {
            "channel": ["podcast", "paid_search", "direct"],
            "revenue_removed_cents": [revenue, revenue, revenue // 2],
            "share": [0.4, 0.4, 0.2],
        }
    )
    assert_frame_equal(ground_truth(export), expected)
    assert baseline_revenue(export) == revenue


def test_last_touch_world_only_the_last_channel_counts():
    # direct is always the last touch and does nothing; podcast would create every deal
    world = _hand_world(
        reach={"podcast": 1.0, "direct": 1.0},
        stage={"podcast": 0.0, "direct": 1.0},
        stage_spread=0.0,
        causes={},
        base_deal_logit=-60.0,
        deal_effect={"podcast": 120.0},
        base_win_logit=60.0,
        win_effect={},
        size_effect={},
        last_touch_only=True,
    )
    export = simulate(40, seed=2, world=world)
    assert export.deals.height == 0
    without_direct = simulate(40, seed=2, world=world, removed=("direct",))
    won = without_direct.deals.filter(pl.col("status") == "won").height
    assert won > 0
    truth = dict(ground_truth(export).select("channel", "revenue_removed_cents").iter_rows())
    assert truth == {"podcast": 0, "direct": -won * 10_000_00}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_simulates(name):
    export = simulate(800, seed=3, world=scenario(name))
    assert export.deals.height > 0
    truth = ground_truth(export)
    assert truth["channel"].to_list() == list(scenario(name).channels)


@pytest.mark.parametrize("seed", range(4))
def test_random_worlds_are_valid_and_deterministic(seed):
    world = random_world(seed)
    assert world == random_world(seed)
    export = simulate(600, seed=seed, world=world)
    assert export.touchpoints.height > 0
    truth = ground_truth(export)
    assert truth["channel"].to_list() == list(world.channels)
    # the fast path (recompute only what a channel causes) agrees with a full recompute
    for channel, removed in truth.select("channel", "revenue_removed_cents").iter_rows():
        assert removed == channel_truth(export, channel)


# -- messy rows and the demo -------------------------------------------------------------------


def test_messy_adds_each_documented_defect_once(tmp_path):
    clean = simulate(1200, seed=13)
    messy = simulate(1200, seed=13, messy=True)
    defects = messy.defects
    assert sorted(defects["defect"]) == sorted(
        [
            "duplicate_deal_id", "negative_amount", "unknown_status",
            "naive_timestamp", "naive_timestamp", "offset_timestamp", "offset_timestamp",
            "repeated_click", "unknown_contact", "unmapped_utm", "unparseable_timestamp",
        ]
    )  # fmt: skip
    assert messy.touchpoints.height == clean.touchpoints.height + 4
    assert messy.deals.height == clean.deals.height + 3
    assert_frame_equal(messy.contacts, clean.contacts)
    paths = write_export(messy, tmp_path)
    files = {
        name: pl.read_csv(paths[name], infer_schema=False) for name in ("touchpoints", "deals")
    }
    for table, row, key, defect, column, value in defects.iter_rows():
        written = files[table].row(row - 1, named=True)
        assert written[column] == value, defect
        assert written["touchpoint_id" if table == "touchpoints" else "deal_id"] == key
    values = dict(zip(defects["defect"], defects["value"], strict=False))
    assert values["unparseable_timestamp"] == "2025-02-30T09:15:00Z"
    assert values["unknown_status"] == "pending"
    assert values["negative_amount"] == "-12500.00"
    assert values["unmapped_utm"] == "tiktok"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+02:00$", values["offset_timestamp"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", values["naive_timestamp"])


def test_demo_fixture_is_what_its_readme_says(tmp_path):
    readme = (DEMO / "README.md").read_text()
    call = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert call is not None
    code = call.group(1).replace('"fixtures/demo"', repr(str(tmp_path)))
    exec(code, {})  # noqa: S102 - the README's own generating call
    for name in ("touchpoints", "deals", "contacts", "spend"):
        assert (tmp_path / f"{name}.csv").read_bytes() == (DEMO / f"{name}.csv").read_bytes(), name
    deals = pl.read_csv(DEMO / "deals.csv", infer_schema=False)
    assert 300 <= deals.height <= 400
    defects = simulate(1600, seed=2025, messy=True).defects
    for table, row, key, defect, _column, value in defects.iter_rows():
        assert f"| {table} | {row} | {key} | `{defect}` | " in readme, defect
        assert value in readme
