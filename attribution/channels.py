"""Channel rules: UTM source / medium / campaign -> channel and channel group.

The rules live in a TOML file (the built-in defaults are ``default_channels.toml`` beside this
module; ``attribution init`` writes a copy to edit). Rules are tried in order and the first
whose patterns all match wins; patterns are case-insensitive globs. A touch that no rule maps is
kept as channel ``(unmapped)`` and reported, never guessed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import polars as pl

from attribution.errors import ChannelRulesError
from attribution.schema import UNMAPPED_CHANNEL

DEFAULT_RULES_FILE = "default_channels.toml"
OTHER_GROUP = "other"
_MATCH_KEYS = ("source", "medium", "campaign")


@dataclass(frozen=True)
class ChannelRule:
    """One rule: every given key's value must match one of its glob patterns."""

    channel: str
    source: tuple[str, ...] = ()
    medium: tuple[str, ...] = ()
    campaign: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChannelRules:
    """Ordered rules plus the channel -> group map."""

    rules: tuple[ChannelRule, ...]
    groups: dict[str, str] = field(default_factory=dict)
    origin: str = "built-in defaults"

    def group_of(self, channel: pl.Expr) -> pl.Expr:
        """Expression mapping a channel column to its group (``other`` when unlisted)."""
        return channel.replace_strict(
            self.groups, default=pl.lit(OTHER_GROUP), return_dtype=pl.String
        )

    def channel_of(self, source: pl.Expr, medium: pl.Expr, campaign: pl.Expr) -> pl.Expr:
        """Expression giving the channel of the first matching rule, or ``(unmapped)``."""
        values = {
            "source": source.fill_null("").str.strip_chars().str.to_lowercase(),
            "medium": medium.fill_null("").str.strip_chars().str.to_lowercase(),
            "campaign": campaign.fill_null("").str.strip_chars().str.to_lowercase(),
        }
        chain = None
        for rule in self.rules:
            conditions = [
                values[key].str.contains(_globs_to_regex(getattr(rule, key)))
                for key in _MATCH_KEYS
                if getattr(rule, key)
            ]
            condition = pl.all_horizontal(conditions) if conditions else pl.lit(True)
            chain = (pl.when(condition) if chain is None else chain.when(condition)).then(
                pl.lit(rule.channel)
            )
        if chain is None:
            return pl.lit(UNMAPPED_CHANNEL)
        return chain.otherwise(pl.lit(UNMAPPED_CHANNEL))


def _globs_to_regex(patterns: tuple[str, ...]) -> str:
    parts = []
    for pattern in patterns:
        text = "".join(
            ".*" if char == "*" else "." if char == "?" else re.escape(char)
            for char in pattern.strip().lower()
        )
        parts.append(text)
    return "^(?:" + "|".join(parts) + ")$"


def default_rules_text() -> str:
    """The built-in rules file, as text (``attribution init`` writes it out)."""
    return resources.files("attribution").joinpath(DEFAULT_RULES_FILE).read_text("utf-8")


def load_rules(path: str | Path | None = None) -> ChannelRules:
    """Read channel rules from ``path``, or the built-in defaults when ``path`` is None."""
    if path is None:
        return parse_rules(default_rules_text(), origin="built-in defaults")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ChannelRulesError(f"{path}: cannot read channel rules ({exc.strerror})") from None
    return parse_rules(text, origin=str(path))


def parse_rules(text: str, origin: str = "<rules>") -> ChannelRules:
    """Parse the TOML text of a rules file, checking every rule."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChannelRulesError(f"{origin}: not valid TOML ({exc})") from None
    unknown = set(document) - {"groups", "rule"}
    if unknown:
        raise ChannelRulesError(
            f"{origin}: unknown section {sorted(unknown)[0]!r}; expected [groups] and [[rule]]"
        )
    groups = document.get("groups", {})
    if not isinstance(groups, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in groups.items()
    ):
        raise ChannelRulesError(f"{origin}: [groups] must map channel names to group names")
    raw_rules = document.get("rule", [])
    if not isinstance(raw_rules, list):
        raise ChannelRulesError(
            f"{origin}: rules must be an array of tables: write [[rule]], not [rule]"
        )
    rules = []
    for number, raw in enumerate(raw_rules, start=1):
        where = f"{origin}: rule {number}"
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("channel"), str)
            or not raw["channel"].strip()
        ):
            raise ChannelRulesError(f"{where}: needs a non-empty string 'channel'")
        extra = set(raw) - {"channel", "group", *_MATCH_KEYS}
        if extra:
            raise ChannelRulesError(
                f"{where}: unknown key {sorted(extra)[0]!r}; "
                "valid keys are channel, group, source, medium, campaign"
            )
        patterns = {}
        for key in _MATCH_KEYS:
            value = raw.get(key, [])
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ChannelRulesError(f"{where}: {key!r} must be a string or list of strings")
            patterns[key] = tuple(value)
        if "group" in raw:
            if not isinstance(raw["group"], str) or not raw["group"].strip():
                raise ChannelRulesError(f"{where}: 'group' must be a non-empty string")
            groups = {**groups, raw["channel"]: raw["group"]}
        rules.append(ChannelRule(channel=raw["channel"], **patterns))
    return ChannelRules(rules=tuple(rules), groups=dict(groups), origin=origin)
