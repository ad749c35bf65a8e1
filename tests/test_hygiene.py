"""Pipeline hygiene on the hand-made export in fixtures/economics/hygiene (see its README)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from attribution import pipeline
from attribution.config import Config
from attribution.errors import ConfigError
from attribution.hygiene import (
    CHANNEL_HYGIENE_SCHEMA,
    FLAG_SCHEMA,
    HYGIENE_REPORT_SCHEMA,
    HygieneRules,
    channel_hygiene,
    flag_deals,
    hygiene_report,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "economics" / "hygiene"


@pytest.fixture(scope="module")
def run():
    config = Config(
        touchpoints=FIXTURES / "touchpoints.csv",
        deals=FIXTURES / "deals.csv",
        contacts=FIXTURES / "contacts.csv",
        models=("last_touch", "linear"),
    )
    inputs = pipeline.load(config)
    assert inputs.rejects.height == 0
    journeys, _stats = pipeline.journeys_from(inputs, config)
    credit, _summary = pipeline.run_models(journeys, pipeline.resolve_models(config, journeys))
    return journeys, credit


def reasons(flags: pl.DataFrame) -> dict[str, str | None]:
    return dict(zip(flags["deal_id"], flags["reason"], strict=True))


def test_default_rules_flag_the_sign_up_and_the_untouched_deals(run) -> None:
    journeys, _credit = run
    flags = flag_deals(journeys)
    assert flags.schema == FLAG_SCHEMA
    assert reasons(flags) == {
        "D1": None,  # a paid search click 8 days before creation
        "D2": "signup",  # trial sign-up at 10:00, deal at 10:04, nobody from sales after
        "D3": None,  # same sign-up, but an outbound (sales group) email followed
        "D4": None,  # sign-up 60 minutes before creation: more than 10
        "D5": "no_prior_touch",  # its only touch came 10 days after creation
        "D6": "no_prior_touch",  # its only touch is outside the 180-day lookback
        # webinar before; the trial 5 minutes after creation was followed by a sales call
        "D7": None,
    }


def test_configured_rules(run) -> None:
    journeys, _credit = run
    flags = flag_deals(journeys, HygieneRules(window_days=7, signup_minutes=60))
    assert reasons(flags)["D1"] == "no_prior_touch"  # 8 days > 7
    assert reasons(flags)["D4"] == "signup"  # Signup_Form matches signup* case-insensitively
    both_off = flag_deals(journeys, HygieneRules(no_prior_touch=False, signup=False))
    assert not both_off["flagged"].any()
    no_sales_types = flag_deals(journeys, HygieneRules(sales_touch_types=(), sales_groups=()))
    # without any sales touch definition D3 and D7's sign-ups count as never followed up
    assert reasons(no_sales_types)["D3"] == "signup"
    only_trials = flag_deals(journeys, HygieneRules(signup_touch_types=("free_trial",)))
    assert reasons(only_trials)["D2"] is None


def test_report_with_and_without_flagged_deals(run) -> None:
    journeys, _credit = run
    report = hygiene_report(flag_deals(journeys))
    assert report.schema == HYGIENE_REPORT_SCHEMA
    assert report.rows() == [
        # won D1 D2 D6 D7, lost D3 D4, open D5: 4 / 6; pipeline 1000+500+800+300+200+100+400
        ("all", 7, 1, 4, 2, 4 / 6, 330000, 200000),
        # D1 D3 D4 D7: 2 won of 4 closed; 1000+800+300+400; won 1000+400
        ("not flagged", 4, 0, 2, 2, 0.5, 250000, 140000),
        # D2 D5 D6: 2 won, none lost; 500+200+100; won 500+100
        ("flagged", 3, 1, 2, 0, 1.0, 80000, 60000),
        ("flagged: no_prior_touch", 2, 1, 1, 0, 1.0, 30000, 10000),
        ("flagged: signup", 1, 0, 1, 0, 1.0, 50000, 50000),
    ]


def test_channel_win_rates_with_and_without_flagged_deals(run) -> None:
    journeys, credit = run
    table = channel_hygiene(credit, flag_deals(journeys))
    assert table.schema == CHANNEL_HYGIENE_SCHEMA
    last = {r["channel"]: r
            for r in table.filter(pl.col("model") == "last_touch").iter_rows(named=True)}
    # direct is the last touch of D2 (won, flagged) and D4 (lost): 1/2, and 0/1 without D2
    assert (last["direct"]["opportunities"], last["direct"]["flagged_opportunities"]) == (2.0, 1.0)
    assert (last["direct"]["win_rate"], last["direct"]["win_rate_not_flagged"]) == (0.5, 0.0)
    # (no touch) holds D6 alone, flagged: no clean closed deal left
    no_touch = last["(no touch)"]
    assert (no_touch["win_rate"], no_touch["win_rate_not_flagged"]) == (1.0, None)


def test_flags_never_change_credit(run) -> None:
    journeys, credit = run
    before = credit.clone()
    flag_deals(journeys)
    assert credit.equals(before)


def test_path_tables_have_nothing_to_flag() -> None:
    from attribution.paths import read_paths

    table = read_paths(Path(__file__).parent.parent / "fixtures" / "paths" / "sample.csv")
    assert flag_deals(table.journeys).height == 0


def test_bad_rules() -> None:
    with pytest.raises(ConfigError, match="window_days must be >= 0"):
        HygieneRules(window_days=-1)
    with pytest.raises(ConfigError, match="signup_minutes must be >= 0"):
        HygieneRules(signup_minutes=-5)
