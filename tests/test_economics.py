"""Channel economics on the hand-made export in fixtures/economics (every figure by hand).

The export (see fixtures/economics/README.md)::

    leads (first touch)   paid_social: c1..c6 (6)   events: c7 (1)   paid_search: c8 (1)
    D1  A1  won   $1,000   created Jan 21, closed Feb 10 (20 days)   paid_social -> paid_search
    D2  A2  lost  $2,000   created Feb 3,  closed Mar 1               paid_social
    D3  A5  won  $60,000   created Jan 26, closed Mar 15 (48 days)   events -> paid_search
    D4  A3  open  $5,000   created Feb 10                            paid_social
    spend  paid_social $600 (January)   events $3,000 (Jan 10-12)
           paid_search $1,000 (Jan 1 - Feb 28)

Linear splits each two-touch deal 0.5 / 0.5; last-touch gives D1 and D3 to paid_search.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from attribution import pipeline
from attribution.config import Config
from attribution.economics import (
    CHANNEL_SCORECARD_SCHEMA,
    LEAD_SCHEMA,
    SCORECARD_SCHEMA,
    channel_scorecard,
    first_touch_leads,
    scorecard,
)
from attribution.errors import ConfigError, ModelError
from attribution.spend import load_spend

FIXTURES = Path(__file__).parent.parent / "fixtures" / "economics"
D = dt.date


def run_export(folder: Path, models: tuple[str, ...] = ("last_touch", "linear")):
    """credit, journeys and first-touch leads of an export folder."""
    config = Config(
        touchpoints=folder / "touchpoints.csv",
        deals=folder / "deals.csv",
        contacts=folder / "contacts.csv",
        models=models,
    )
    inputs = pipeline.load(config)
    journeys, _stats = pipeline.journeys_from(inputs, config)
    credit, _summary = pipeline.run_models(journeys, pipeline.resolve_models(config, journeys))
    return credit, journeys, first_touch_leads(inputs.touchpoints, inputs.contacts)


@pytest.fixture(scope="module")
def export():
    credit, journeys, leads = run_export(FIXTURES)
    return credit, journeys, leads, load_spend(FIXTURES / "spend.csv")


def rows_by_channel(card: pl.DataFrame, model: str) -> dict[str, dict]:
    return {
        row["channel"]: {k: v for k, v in row.items() if k not in ("model", "period", "channel")}
        for row in card.filter(pl.col("model") == model).iter_rows(named=True)
    }


def test_first_touch_leads(export) -> None:
    _credit, _journeys, leads, _spend = export
    assert leads.schema == LEAD_SCHEMA
    assert leads.group_by("channel").len().sort("channel").rows() == [
        ("events", 1), ("paid_search", 1), ("paid_social", 6),
    ]
    # c1's first touch is paid_social (Jan 5), not its later paid_search click (Jan 20)
    assert leads.filter(pl.col("contact_id") == "c1")["channel"].item() == "paid_social"


def test_linear_scorecard_every_figure(export) -> None:
    credit, journeys, leads, spend = export
    card = channel_scorecard(credit, journeys, leads, spend)
    assert card.schema == CHANNEL_SCORECARD_SCHEMA
    assert card["period"].null_count() == card.height
    linear = rows_by_channel(card, "linear")
    assert list(linear) == ["paid_search", "events", "paid_social"]  # by revenue credit
    assert linear["paid_social"] == {
        "channel_group": "demand_creation",
        "leads": 6,
        "opportunities": 2.5,  # D1 0.5 + D2 1 + D4 1
        "opportunities_touched": 3,  # D1, D2, D4
        "pipeline_credit_cents": 750000,  # 500.00 of D1 + 2,000.00 of D2 + 5,000.00 of D4
        "closed_deals": 1.5,  # D1 0.5 + D2 1 (D4 is open)
        "won_deals": 0.5,  # D1 0.5
        "revenue_credit_cents": 50000,  # half of D1's 1,000.00
        "win_rate": pytest.approx(1 / 3),  # 0.5 / 1.5
        "avg_deal_size_cents": 100000,  # 50000 / 0.5
        "days_to_close": 20.0,  # D1: Jan 21 -> Feb 10
        "lead_to_opportunity": pytest.approx(2.5 / 6),
        "revenue_per_lead_cents": 8333,  # 50000 / 6 = 8333.33
        "spend_cents": 60000,
        "cost_per_lead_cents": 10000,  # 60000 / 6: the cheapest leads
        "cost_per_opportunity_cents": 24000,  # 60000 / 2.5
        "cost_per_won_deal_cents": 120000,  # 60000 / 0.5
        "roi": pytest.approx(-1 / 6),  # (50000 - 60000) / 60000
        "roas": pytest.approx(5 / 6),  # 50000 / 60000
    }
    assert linear["events"] == {
        "channel_group": "demand_creation",
        "leads": 1,
        "opportunities": 0.5,  # D3 0.5
        "opportunities_touched": 1,
        "pipeline_credit_cents": 3000000,  # half of D3's 60,000.00
        "closed_deals": 0.5,
        "won_deals": 0.5,
        "revenue_credit_cents": 3000000,
        "win_rate": 1.0,
        "avg_deal_size_cents": 6000000,  # 3000000 / 0.5: one large deal
        "days_to_close": 48.0,  # D3: Jan 26 -> Mar 15 = 31 + 17
        "lead_to_opportunity": 0.5,
        "revenue_per_lead_cents": 3000000,
        "spend_cents": 300000,
        "cost_per_lead_cents": 300000,  # 30x paid_social's cost per lead ...
        "cost_per_opportunity_cents": 600000,
        "cost_per_won_deal_cents": 600000,
        "roi": 9.0,  # (3000000 - 300000) / 300000
        "roas": 10.0,  # ... and 12x its return
    }
    assert linear["paid_search"] == {
        "channel_group": "demand_capture",
        "leads": 1,
        "opportunities": 1.0,  # D1 0.5 + D3 0.5
        "opportunities_touched": 2,
        "pipeline_credit_cents": 3050000,  # 50000 + 3000000
        "closed_deals": 1.0,
        "won_deals": 1.0,
        "revenue_credit_cents": 3050000,
        "win_rate": 1.0,
        "avg_deal_size_cents": 3050000,
        "days_to_close": 34.0,  # (0.5 x 20 + 0.5 x 48) / 1.0
        "lead_to_opportunity": 1.0,
        "revenue_per_lead_cents": 3050000,
        "spend_cents": 100000,
        "cost_per_lead_cents": 100000,
        "cost_per_opportunity_cents": 100000,
        "cost_per_won_deal_cents": 100000,
        "roi": 29.5,  # (3050000 - 100000) / 100000
        "roas": 30.5,
    }


def test_last_touch_scorecard_every_figure(export) -> None:
    credit, journeys, leads, spend = export
    last = rows_by_channel(channel_scorecard(credit, journeys, leads, spend), "last_touch")
    assert last["paid_search"] == {
        "channel_group": "demand_capture", "leads": 1,
        "opportunities": 2.0, "opportunities_touched": 2,  # D1, D3 whole
        "pipeline_credit_cents": 6100000, "closed_deals": 2.0, "won_deals": 2.0,
        "revenue_credit_cents": 6100000, "win_rate": 1.0, "avg_deal_size_cents": 3050000,
        "days_to_close": 34.0,  # (20 + 48) / 2
        "lead_to_opportunity": 2.0, "revenue_per_lead_cents": 6100000, "spend_cents": 100000,
        "cost_per_lead_cents": 100000, "cost_per_opportunity_cents": 50000,
        "cost_per_won_deal_cents": 50000,
        "roi": 60.0, "roas": 61.0,
    }
    assert last["paid_social"] == {
        "channel_group": "demand_creation", "leads": 6,
        "opportunities": 2.0, "opportunities_touched": 3,  # D2, D4 credited; D1 touched
        "pipeline_credit_cents": 700000, "closed_deals": 1.0, "won_deals": 0.0,  # D2 lost
        "revenue_credit_cents": 0, "win_rate": 0.0, "avg_deal_size_cents": None,
        "days_to_close": None,
        "lead_to_opportunity": pytest.approx(1 / 3), "revenue_per_lead_cents": 0,
        "spend_cents": 60000,
        "cost_per_lead_cents": 10000, "cost_per_opportunity_cents": 30000,
        "cost_per_won_deal_cents": None,
        "roi": -1.0, "roas": 0.0,
    }
    # last-touch never sees the event that opened the $60,000 deal
    assert last["events"] == {
        "channel_group": "demand_creation", "leads": 1,
        "opportunities": 0.0, "opportunities_touched": 1,
        "pipeline_credit_cents": 0, "closed_deals": 0.0, "won_deals": 0.0,
        "revenue_credit_cents": 0,
        "win_rate": None, "avg_deal_size_cents": None, "days_to_close": None,
        "lead_to_opportunity": 0.0, "revenue_per_lead_cents": 0, "spend_cents": 300000,
        "cost_per_lead_cents": 300000, "cost_per_opportunity_cents": None,
        "cost_per_won_deal_cents": None,
        "roi": -1.0, "roas": 0.0,
    }


def test_leads_next_to_revenue_tell_opposite_stories(export) -> None:
    credit, journeys, leads, spend = export
    card = channel_scorecard(credit, journeys, leads, spend, models=["linear"])
    by_leads = card.sort("leads", descending=True)["channel"].to_list()
    by_roas = card.sort("roas", descending=True)["channel"].to_list()
    cheapest = card.sort("cost_per_lead_cents")["channel"].to_list()
    assert by_leads[0] == "paid_social" and cheapest[0] == "paid_social"
    assert by_roas[-1] == "paid_social"  # most leads, cheapest leads, least revenue per dollar
    social, events = (
        card.filter(pl.col("channel") == c).row(0, named=True) for c in ("paid_social", "events")
    )
    assert social["leads"] == 6 * events["leads"]
    assert events["revenue_credit_cents"] == 60 * social["revenue_credit_cents"]


def test_totals_reconcile_with_the_deals_file(export) -> None:
    credit, journeys, leads, spend = export
    card = channel_scorecard(credit, journeys, leads, spend)
    totals = card.group_by("model").agg(
        pl.col(
            "leads", "opportunities", "pipeline_credit_cents", "won_deals", "revenue_credit_cents",
            "spend_cents"
        ).sum()
    ).sort("model")
    # 8 leads, 4 deals, $68,000 pipeline, 2 won worth $61,000, $4,600 spend, for every model
    assert totals.rows() == [
        ("last_touch", 8, 4.0, 6800000, 2.0, 6100000, 460000),
        ("linear", 8, 4.0, 6800000, 2.0, 6100000, 460000),
    ]


def test_monthly_channel_scorecard_places_each_figure_in_its_period(export) -> None:
    credit, journeys, leads, spend = export
    card = channel_scorecard(credit, journeys, leads, spend, grain="month", models=["linear"])
    social = card.filter(pl.col("channel") == "paid_social").select(
        "period", "leads", "opportunities", "pipeline_credit_cents", "closed_deals", "won_deals",
        "revenue_credit_cents", "spend_cents",
    )
    assert social.rows() == [
        # leads Jan 5-10; D1 created Jan 21 (0.5, 500.00); January spend $600
        (D(2025, 1, 1), 6, 0.5, 50000, 0.0, 0.0, 0, 60000),
        # D2 and D4 created in February; D1 won Feb 10 (0.5, 500.00)
        (D(2025, 2, 1), 0, 2.0, 700000, 0.5, 0.5, 50000, 0),
        # D2 lost Mar 1
        (D(2025, 3, 1), 0, 0.0, 0, 1.0, 0.0, 0, 0),
    ]


def test_monthly_funnel_total_and_by_group(export) -> None:
    credit, journeys, leads, spend = export
    funnel = scorecard(credit, journeys, leads, spend, grain="month", models=["linear"])
    assert funnel.schema == SCORECARD_SCHEMA
    columns = ["period", "channel_group", "leads", "opportunities", "pipeline_cents",
               "closed_deals",
               "won_deals", "won_revenue_cents", "win_rate", "avg_deal_size_cents",
               "avg_cycle_days", "spend_cents"]
    assert funnel.select(columns).rows() == [
        # January: 8 leads (7 creation, 1 capture); D1 and D3 created, each split 0.5 / 0.5;
        # spend 600 + 3000 (creation) + 31 days of paid_search at 16.95 = 525.45
        (D(2025, 1, 1), "total", 8, 2.0, 6100000, 0.0, 0.0, 0, None, None, None, 412545),
        (D(2025, 1, 1), "demand_capture", 1, 1.0, 3050000, 0.0, 0.0, 0, None, None, None, 52545),
        (D(2025, 1, 1), "demand_creation", 7, 1.0, 3050000, 0.0, 0.0, 0, None, None, None, 360000),
        # February: D2, D4 created (paid_social); D1 won (20 days); paid_search 474.55
        (D(2025, 2, 1), "total", 0, 2.0, 700000, 1.0, 1.0, 100000, 1.0, 100000, 20.0, 47455),
        (D(2025, 2, 1), "demand_capture", 0, 0.0, 0, 0.5, 0.5, 50000, 1.0, 100000, 20.0, 47455),
        (D(2025, 2, 1), "demand_creation", 0, 2.0, 700000, 0.5, 0.5, 50000, 1.0, 100000, 20.0, 0),
        # March: D2 lost (creation 1.0), D3 won (48 days): creation 0.5 won of 1.5 closed
        (D(2025, 3, 1), "total", 0, 0.0, 0, 2.0, 1.0, 6000000, 0.5, 6000000, 48.0, 0),
        (D(2025, 3, 1), "demand_capture", 0, 0.0, 0, 0.5, 0.5, 3000000, 1.0, 6000000, 48.0, 0),
        (D(2025, 3, 1), "demand_creation", 0, 0.0, 0, 1.5, 0.5, 3000000, 1 / 3, 6000000, 48.0, 0),
    ]
    feb = funnel.filter((pl.col("period") == D(2025, 2, 1)) & (pl.col("channel_group") == "total"))
    assert feb["roas"].item() == pytest.approx(100000 / 47455)
    # opportunities 2 -> 2 in total; creation 1 -> 2; no leads in February: no split
    assert funnel.filter(pl.col("period") == D(2025, 2, 1))["opportunities_change"].to_list() == [
        0.0, -1.0, 1.0,
    ]
    assert funnel["volume_effect"].null_count() == funnel.height


def test_weekly_funnel_has_a_row_for_every_week_even_empty_ones(export) -> None:
    credit, journeys, leads, spend = export
    weekly = scorecard(credit, journeys, leads, spend, grain="week", models=["linear"])
    totals = weekly.filter(pl.col("channel_group") == "total")
    periods = totals["period"].to_list()
    assert periods[0] == D(2024, 12, 30) and periods[-1] == D(2025, 3, 10)
    assert all(b - a == dt.timedelta(days=7) for a, b in zip(periods, periods[1:], strict=False))
    assert totals["leads"].sum() == 8 and totals["opportunities"].sum() == 4.0
    assert totals["spend_cents"].sum() == 460000 and totals["won_revenue_cents"].sum() == 6100000
    quarterly = scorecard(credit, journeys, leads, spend, grain="quarter", models=["linear"])
    assert quarterly.filter(pl.col("channel_group") == "total").select(
        "leads", "opportunities", "won_revenue_cents", "spend_cents"
    ).rows() == [(8, 4.0, 6100000, 460000)]


def write_export(folder: Path, touches: str, deals: str, contacts: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "touchpoints.csv").write_text(
        "touchpoint_id,timestamp,contact_id,channel\n" + touches
    )
    (folder / "deals.csv").write_text(
        "deal_id,account_id,created_at,closed_at,status,amount\n" + deals
    )
    (folder / "contacts.csv").write_text("contact_id,account_id,lead_created_at\n" + contacts)
    return folder


def test_a_change_in_opportunities_splits_into_volume_and_conversion(tmp_path: Path) -> None:
    # week of Jan 6: 4 leads, 2 deals (rate 0.5); week of Jan 13: 2 leads, 2 deals (rate 1.0)
    folder = write_export(
        tmp_path / "x",
        "t1,2025-01-06T09:00:00Z,c1,webinar\nt2,2025-01-06T09:00:00Z,c2,webinar\n"
        "t3,2025-01-07T09:00:00Z,c3,webinar\nt4,2025-01-07T09:00:00Z,c4,webinar\n"
        "t5,2025-01-13T09:00:00Z,c5,webinar\nt6,2025-01-13T09:00:00Z,c6,webinar\n",
        "D1,A1,2025-01-08,,open,10\nD2,A2,2025-01-08,,open,10\n"
        "D3,A5,2025-01-14,,open,10\nD4,A6,2025-01-14,,open,10\n",
        "c1,A1,\nc2,A2,\nc3,A3,\nc4,A4,\nc5,A5,\nc6,A6,\n",
    )
    credit, journeys, leads = run_export(folder, ("linear",))
    weekly = scorecard(credit, journeys, leads, grain="week").filter(
        pl.col("channel_group") == "total"
    )
    second = weekly.row(1, named=True)
    assert (
        second["leads"], second["opportunities"], second["lead_to_opportunity"]
    ) == (2, 2.0, 1.0)
    # change 0 = volume (2 - 4) x 0.5 = -1  +  conversion 2 x (1.0 - 0.5) = +1
    assert (
        second["opportunities_change"], second["volume_effect"], second["conversion_effect"]
    ) == (0.0, -1.0, 1.0)


def test_leads_without_touch_without_contacts_file_and_without_spend(tmp_path: Path) -> None:
    touches = pl.DataFrame(
        {
            "contact_id": ["c1", "c9", None],
            "account_id": ["A1", "A9", "A1"],
            "timestamp": [dt.datetime(2025, 1, 3, tzinfo=dt.UTC)] * 3,
            "channel": ["podcast", "email", "direct"],
            "channel_group": ["demand_creation", "demand_capture", "demand_capture"],
        }
    )
    contacts = pl.DataFrame(
        {"contact_id": ["c1", "c2"], "account_id": ["A1", "A1"],
         "lead_created_at": [None, dt.datetime(2025, 2, 1, tzinfo=dt.UTC)]}
    )
    leads = first_touch_leads(touches, contacts)
    # c2 never touched: (no touch); c9 touched but unknown to the contacts file: still a lead;
    # the account-level touch (no contact) makes no lead; c1 has no lead date: its first touch
    assert leads.select("contact_id", "channel", "lead_at").rows() == [
        ("c1", "podcast", dt.datetime(2025, 1, 3, tzinfo=dt.UTC)),
        ("c2", "(no touch)", dt.datetime(2025, 2, 1, tzinfo=dt.UTC)),
        ("c9", "email", dt.datetime(2025, 1, 3, tzinfo=dt.UTC)),
    ]
    assert first_touch_leads(touches).height == 2


def test_without_spend_or_leads_the_ratios_are_null(export) -> None:
    credit, journeys, _leads, _spend = export
    card = channel_scorecard(credit, journeys, models=["linear"])
    assert card["spend_cents"].to_list() == [0, 0, 0]
    assert card["leads"].to_list() == [0, 0, 0]
    for column in ("roi", "roas", "cost_per_lead_cents", "lead_to_opportunity",
                   "revenue_per_lead_cents"):
        assert card[column].null_count() == 3


def test_unknown_model_and_grain(export) -> None:
    credit, journeys, leads, spend = export
    with pytest.raises(
        ModelError, match="model 'markov' is not in the run; the run has last_touch, linear"
    ):
        channel_scorecard(credit, journeys, leads, spend, models=["markov"])
    with pytest.raises(ConfigError, match="unknown grain 'fortnight'"):
        scorecard(credit, journeys, leads, spend, grain="fortnight")
