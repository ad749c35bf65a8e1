"""Channel rules: globs, rule order, groups, the built-in defaults, and rule-file errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from attribution.channels import OTHER_GROUP, default_rules_text, load_rules, parse_rules
from attribution.errors import ChannelRulesError
from attribution.schema import UNMAPPED_CHANNEL


def mapped(rules, rows: list[tuple[str | None, str | None, str | None]]) -> list[tuple[str, str]]:
    """(channel, group) of each (source, medium, campaign)."""
    frame = pl.DataFrame(rows, schema=["s", "m", "c"], orient="row")
    out = frame.select(
        rules.channel_of(pl.col("s"), pl.col("m"), pl.col("c")).alias("channel")
    ).with_columns(rules.group_of(pl.col("channel")).alias("group"))
    return list(out.iter_rows())


def test_globs_are_case_insensitive_trimmed_and_anchored() -> None:
    rules = parse_rules(
        """
        [[rule]]
        channel = "pod"
        source = ["*podcast*", "spot?fy"]
        """
    )
    assert mapped(rules, [
        ("  The-PODCAST-Show ", None, None),
        ("spotify", None, None),
        ("spotiify", None, None),       # ? is exactly one character
        ("xspotify", None, None),       # anchored at both ends
        (None, None, None),
    ]) == [
        ("pod", OTHER_GROUP), ("pod", OTHER_GROUP),
        (UNMAPPED_CHANNEL, OTHER_GROUP), (UNMAPPED_CHANNEL, OTHER_GROUP),
        (UNMAPPED_CHANNEL, OTHER_GROUP),
    ]


def test_regex_characters_in_patterns_are_literal() -> None:
    rules = parse_rules('[[rule]]\nchannel = "a"\nsource = ["[a-z]+.com"]\n')
    assert [c for c, _ in mapped(rules, [("[a-z]+.com", None, None), ("b.com", None, None)])] == [
        "a", UNMAPPED_CHANNEL,
    ]


def test_first_matching_rule_wins_and_every_key_must_match() -> None:
    rules = parse_rules(
        """
        [groups]
        paid = "capture"

        [[rule]]
        channel = "paid"
        source = "google"
        medium = ["cpc", "ppc"]

        [[rule]]
        channel = "organic"
        source = "google"
        group = "capture"

        [[rule]]
        channel = "launch"
        campaign = "launch-*"
        """
    )
    assert mapped(rules, [
        ("google", "cpc", None),
        ("google", "organic", "launch-1"),
        ("bing", "cpc", "launch-1"),
        ("bing", "cpc", None),
    ]) == [
        ("paid", "capture"),
        ("organic", "capture"),          # a rule's group adds to [groups]
        ("launch", OTHER_GROUP),
        (UNMAPPED_CHANNEL, OTHER_GROUP),
    ]


def test_no_rules_maps_everything_to_unmapped() -> None:
    assert mapped(parse_rules(""), [("google", "cpc", None)]) == [(UNMAPPED_CHANNEL, OTHER_GROUP)]


@pytest.mark.parametrize(
    ("source", "medium", "channel", "group"),
    [
        ("google", "cpc", "paid_search", "demand_capture"),
        ("Google", " CPC ", "paid_search", "demand_capture"),
        ("google", "organic", "organic_search", "demand_capture"),
        ("(direct)", "(none)", "direct", "demand_capture"),
        ("linkedin", "cpc", "paid_social", "demand_creation"),
        ("linkedin", "social", "organic_social", "demand_creation"),
        ("g2", "referral", "review_sites", "demand_capture"),
        ("criteo", "display", "retargeting", "demand_capture"),
        ("hubspot", "email", "email", "demand_capture"),
        ("acme-podcast", "audio", "podcast", "demand_creation"),
        ("substack", "email", "newsletter", "demand_creation"),
        ("on24", None, "webinar", "demand_creation"),
        ("partner.io", "referral", "referral", "demand_capture"),
        (None, "sdr", "outbound", "sales"),
        ("google", "display", UNMAPPED_CHANNEL, OTHER_GROUP),
        (None, None, UNMAPPED_CHANNEL, OTHER_GROUP),
    ],
)
def test_built_in_defaults(source, medium, channel, group) -> None:
    assert mapped(load_rules(), [(source, medium, None)]) == [(channel, group)]


def test_default_rules_file_parses_and_every_rule_channel_has_a_group() -> None:
    rules = parse_rules(default_rules_text(), origin="defaults")
    assert rules.rules
    assert {rule.channel for rule in rules.rules} <= set(rules.groups)
    assert load_rules().origin == "built-in defaults"


def test_load_rules_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "channels.toml"
    path.write_text('[[rule]]\nchannel = "x"\nmedium = "m"\n', encoding="utf-8")
    rules = load_rules(path)
    assert rules.origin == str(path)
    assert mapped(rules, [(None, "M", None)]) == [("x", OTHER_GROUP)]


def test_missing_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ChannelRulesError) as caught:
        load_rules(path)
    assert str(caught.value) == f"{path}: cannot read channel rules (No such file or directory)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]\n", None),  # not TOML: message comes from tomllib
        ("[rules]\n", "r.toml: unknown section 'rules'; expected [groups], [aliases] and [[rule]]"),
        ("[groups]\na = 1\n", "r.toml: [groups] must map channel names to group names"),
        ("[rule]\nchannel = 'x'\n", "r.toml: rules must be an array of tables: write [[rule]], not [rule]"),
        ("[[rule]]\nsource = 'x'\n", "r.toml: rule 1: needs a non-empty string 'channel'"),
        ("[[rule]]\nchannel = ' '\n", "r.toml: rule 1: needs a non-empty string 'channel'"),
        (
            "[[rule]]\nchannel = 'a'\n[[rule]]\nchannel = 'b'\nsouce = 'x'\n",
            "r.toml: rule 2: unknown key 'souce'; valid keys are channel, group, source, medium, campaign",
        ),
        ("[[rule]]\nchannel = 'a'\nmedium = 3\n", "r.toml: rule 1: 'medium' must be a string or list of strings"),
        ("[[rule]]\nchannel = 'a'\ngroup = 3\n", "r.toml: rule 1: 'group' must be a non-empty string"),
    ],
)
def test_rule_file_errors(text: str, message: str | None) -> None:
    with pytest.raises(ChannelRulesError) as caught:
        parse_rules(text, origin="r.toml")
    if message is None:
        assert str(caught.value).startswith("r.toml: not valid TOML (")
    else:
        assert str(caught.value) == message
