"""Channel rules: globs, rule order, groups, the built-in defaults, rule-file errors; names
kept and compared case-insensitively; the compiled matcher against the plain definition and
its limits."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import attribution.channels as channels_module
from attribution.channels import (
    OTHER_GROUP,
    ChannelRule,
    ChannelRules,
    channel_key,
    default_rules_text,
    load_rules,
    parse_rules,
    unify_spellings,
)
from attribution.errors import ChannelRulesError, ChannelRulesLimitError
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
        ("[rules]\n", "r.toml: unknown section 'rules'; expected [groups], [aliases], "
                       "[self_reported] and [[rule]]"),
        ("[groups]\na = 1\n", "r.toml: [groups] must map channel names to group names"),
        ("[rule]\nchannel = 'x'\n",
         "r.toml: rules must be an array of tables: write [[rule]], not [rule]"),
        ("[[rule]]\nsource = 'x'\n", "r.toml: rule 1: needs a non-empty string 'channel'"),
        ("[[rule]]\nchannel = ' '\n", "r.toml: rule 1: needs a non-empty string 'channel'"),
        (
            "[[rule]]\nchannel = 'a'\n[[rule]]\nchannel = 'b'\nsouce = 'x'\n",
            "r.toml: rule 2: unknown key 'souce'; valid keys are channel, group, source, medium, "
            "campaign",
        ),
        ("[[rule]]\nchannel = 'a'\nmedium = 3\n",
         "r.toml: rule 1: 'medium' must be a string or list of strings"),
        ("[[rule]]\nchannel = 'a'\ngroup = 3\n",
         "r.toml: rule 1: 'group' must be a non-empty string"),
    ],
)
def test_rule_file_errors(text: str, message: str | None) -> None:
    with pytest.raises(ChannelRulesError) as caught:
        parse_rules(text, origin="r.toml")
    if message is None:
        assert str(caught.value).startswith("r.toml: not valid TOML (")
    else:
        assert str(caught.value) == message


# -- names keep their spelling; matching is case-insensitive (issue #20, item 6) ------------
def test_channel_key_folds_case_and_separators() -> None:
    assert [channel_key(n) for n in (" Paid  Social ", "paid-social", "PAID_social", "LinkedIn Ads")
            ] == ["paid_social", "paid_social", "paid_social", "linkedin_ads"]


def test_groups_are_found_whatever_the_case_and_the_label_is_kept() -> None:
    rules = load_rules()
    frame = pl.DataFrame({"channel": ["Paid Social", "LinkedIn Ads", "ORGANIC SEARCH",
                                      "Direct Traffic", "Email Marketing", None]})
    out = frame.with_columns(rules.group_of(pl.col("channel")).alias("group"))
    assert out.rows() == [
        ("Paid Social", "demand_creation"),
        ("LinkedIn Ads", OTHER_GROUP),
        ("ORGANIC SEARCH", "demand_capture"),
        ("Direct Traffic", "demand_capture"),    # an alias of direct
        ("Email Marketing", "demand_capture"),   # an alias of email
        (None, OTHER_GROUP),
    ]
    assert rules.ungrouped(out["channel"]) == ["LinkedIn Ads"]


def test_user_groups_and_aliases_match_case_insensitively_and_rule_labels_are_kept() -> None:
    rules = parse_rules(
        """
        [groups]
        "linkedin ads" = "demand_creation"

        [aliases]
        "LI Sponsored" = "LinkedIn Ads"

        [[rule]]
        channel = "LinkedIn Ads"
        source = "linkedin"
        """
    )
    assert mapped(rules, [("LinkedIn", None, None)]) == [("LinkedIn Ads", "demand_creation")]
    assert rules.group_name("li-sponsored") == "demand_creation"
    assert rules.names_of(["linkedin_ads"]) == ("linkedin_ads", "LI Sponsored")
    assert rules.ungrouped(["LinkedIn Ads", "li sponsored", "(unmapped)", "Podcast"]) == ["Podcast"]


def test_built_in_aliases_make_direct_traffic_direct() -> None:
    assert load_rules().names_of(["direct"]) == ("direct", "direct traffic", "(direct)")


def test_unify_spellings_takes_the_most_frequent_then_the_smallest() -> None:
    series = pl.Series("channel", ["direct", "Direct", "Direct", "Paid Social", "paid_social",
                                   None, "email"])
    assert unify_spellings(series).to_list() == [
        "Direct", "Direct", "Direct", "Paid Social", "Paid Social", None, "email",
    ]
    # row order does not change the choice
    backwards = unify_spellings(series.reverse()).reverse()
    assert backwards.to_list() == unify_spellings(series).to_list()
    plain = pl.Series("channel", ["a", "b"])
    assert unify_spellings(plain) is plain


def test_rule_errors_quote_at_most_200_characters() -> None:
    long = "x" * 5000
    with pytest.raises(ChannelRulesError) as caught:
        parse_rules(f'[{long}]\n', origin="r.toml")
    assert str(caught.value) == (
        f"r.toml: unknown section {'x' * 200!r}... (5,000 characters); "
        "expected [groups], [aliases], [self_reported] and [[rule]]"
    )


# -- bounded work (issue #21, item 6) ---------------------------------------------------------
def test_too_many_rules_are_refused_naming_the_first_beyond_the_limit(monkeypatch) -> None:
    monkeypatch.setattr(channels_module, "MAX_RULES", 3)
    text = "".join(f'[[rule]]\nchannel = "c{n}"\nsource = "s{n}"\n' for n in range(4))
    with pytest.raises(ChannelRulesLimitError) as caught:
        parse_rules(text, origin="r.toml")
    assert str(caught.value) == (
        "r.toml: 4 rules; at most 3 are allowed (rule 4 is the first beyond the limit)"
    )


def test_a_long_glob_is_refused_naming_the_rule() -> None:
    glob = "*a" * 200
    text = ('[[rule]]\nchannel = "ok"\nsource = "x"\n'
            f'[[rule]]\nchannel = "Long\\nOne"\nmedium = "{glob}"\n')
    with pytest.raises(ChannelRulesLimitError) as caught:
        parse_rules(text, origin="r.toml")
    assert str(caught.value) == (
        "r.toml: rule 2 (channel 'Long\\nOne'): medium pattern "
        f"{glob[:40]!r}... (400 characters) is 400 characters; at most 256 are allowed"
    )


def test_a_glob_of_many_stars_against_a_long_value_is_linear() -> None:
    # a backtracking regular expression takes time growing with the 8th power of the value
    # here; the segment matcher scans it a few times
    rules = parse_rules('[[rule]]\nchannel = "x"\nsource = "*a*a*a*a*a*a*a*b"\n')
    assert mapped(rules, [("a" * 20_000, None, None), ("a" * 20_000 + "b", None, None)]) == [
        (UNMAPPED_CHANNEL, OTHER_GROUP), ("x", OTHER_GROUP),
    ]


def reference_channel(rules, source: str | None, medium: str | None, campaign: str | None) -> str:
    """The rules' definition, plainly: the first rule whose every key's value matches one of
    its patterns (fnmatch semantics for * and ?, on trimmed, lower-cased text)."""
    values = {"source": source, "medium": medium, "campaign": campaign}
    for rule in rules.rules:
        if all(
            any(re.fullmatch(fnmatch.translate(p.strip().lower()),
                             (values[key] or "").strip().lower(), re.DOTALL)
                for p in getattr(rule, key))
            for key in ("source", "medium", "campaign") if getattr(rule, key)
        ):
            return rule.channel
    return UNMAPPED_CHANNEL


_pattern = st.text(alphabet="ab*?", min_size=0, max_size=4)
_value = st.one_of(st.none(), st.text(alphabet="abAB \n", max_size=5))


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(
        st.tuples(st.lists(_pattern, max_size=2), st.lists(_pattern, max_size=2),
                  st.lists(_pattern, max_size=2)),
        max_size=8,
    ),
    rows=st.lists(st.tuples(_value, _value, _value), min_size=1, max_size=12),
)
def test_the_compiled_matcher_agrees_with_the_plain_definition(specs, rows) -> None:
    rules = ChannelRules(rules=tuple(
        ChannelRule(channel=f"c{n}", source=tuple(s), medium=tuple(m), campaign=tuple(c))
        for n, (s, m, c) in enumerate(specs)
    ))
    got = [channel for channel, _ in mapped(rules, rows)]
    assert got == [reference_channel(rules, *row) for row in rows]


def test_rules_pickle_without_their_compiled_matcher() -> None:
    import pickle

    rules = parse_rules('[[rule]]\nchannel = "pod"\nsource = ["*podcast*", "spotify"]\n')
    assert mapped(rules, [("a podcast", None, None)]) == [("pod", OTHER_GROUP)]
    assert "matcher" in rules.__dict__
    copy = pickle.loads(pickle.dumps(rules))
    assert "matcher" not in copy.__dict__ and copy == rules
    assert mapped(copy, [("a podcast", None, None), ("x", None, None)]) == [
        ("pod", OTHER_GROUP), (UNMAPPED_CHANNEL, OTHER_GROUP)]


@settings(max_examples=300, deadline=None)
@given(pattern=st.text(alphabet="ab*?\n", max_size=8), value=st.text(alphabet="abc\n", max_size=12))
def test_the_glob_test_agrees_with_fnmatch(pattern, value) -> None:
    expected = re.fullmatch(fnmatch.translate(pattern), value, re.DOTALL) is not None
    assert channels_module._glob_matcher(pattern)(value) is expected


def test_relabel_spells_names_as_the_labels_whatever_the_case() -> None:
    spend = pl.Series("channel", ["linkedin ads", "LINKEDIN-ADS", "podcast", None, "Events"])
    assert channels_module.relabel(spend, ["LinkedIn Ads", "events", "Direct"]).to_list() == [
        "LinkedIn Ads", "LinkedIn Ads", "podcast", None, "events"]
