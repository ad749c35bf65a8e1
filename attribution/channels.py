"""Channel rules: UTM source / medium / campaign -> channel and channel group.

The rules live in a TOML file (the built-in defaults are ``default_channels.toml`` beside this
module; ``attribution init`` writes a copy to edit). Rules are tried in order and the first
whose patterns all match wins; patterns are case-insensitive globs. A touch that no rule maps is
kept as channel ``(unmapped)`` and reported, never guessed.

Channel names keep the user's spelling ("LinkedIn Ads" stays "LinkedIn Ads"); they are
*compared* by :func:`channel_key` (case-folded, runs of spaces, ``_`` and ``-`` as one ``_``),
so ``[groups]``, ``[aliases]`` and ``direct_channels`` find "Paid Social" under
``paid_social`` whether it came from a rule, a ``channel`` column or a path table.

Matching is bounded: the rules compile once (:class:`ChannelMatcher`) into hash tables of their
literal patterns and, per key, one combined prefilter of the globs plus a linear-time test per
distinct glob, so the work grows with the rules plus the distinct values, not with their
product (only the values some glob matches are tested glob by glob); :data:`MAX_RULES` and
:data:`MAX_PATTERN_LENGTH` bound a rules file, and a file beyond them is refused naming the rule.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import polars as pl

from attribution.errors import ChannelRulesError, ChannelRulesLimitError, quote_input
from attribution.schema import UNMAPPED_CHANNEL

DEFAULT_RULES_FILE = "default_channels.toml"
OTHER_GROUP = "other"
_MATCH_KEYS = ("source", "medium", "campaign")

#: most rules a file may hold (the compiled matcher holds a few small objects per rule)
MAX_RULES = 50_000
#: longest pattern (glob or literal), in characters: a glob becomes a regular expression, and a
#: long one against long utm values is where unbounded work came from
MAX_PATTERN_LENGTH = 256

_SEPARATORS = re.compile(r"[\s_\-]+")


def channel_key(name: str) -> str:
    """The form channel names are compared in: trimmed, case-folded, and every run of spaces,
    underscores and hyphens one underscore.

    >>> channel_key(" Paid  Social "), channel_key("paid-social"), channel_key("LinkedIn Ads")
    ('paid_social', 'paid_social', 'linkedin_ads')
    """
    return _SEPARATORS.sub("_", name.strip().casefold())


def _map_distinct(values: pl.Series, function: Callable[[str | None], str | None],
                  return_dtype: pl.DataType | type[pl.DataType]) -> pl.Series:
    """``function`` (a Python function of one text value) applied once per distinct value of
    ``values`` and spread back to the rows by a lookup: Python work bounded by the distinct
    values, not the rows (a null is a value: it maps to ``function(None)``)."""
    distinct = values.unique(maintain_order=False)
    mapped = pl.Series([function(value) for value in distinct.to_list()], dtype=return_dtype)
    return values.replace_strict(distinct, mapped, return_dtype=return_dtype)


def unify_spellings(channel: pl.Series) -> pl.Series:
    """One spelling per channel: each name replaced by the most frequent spelling of its
    :func:`channel_key` in ``channel`` (ties: the smallest text), so "Direct" and "direct" in
    one file are one channel, under the user's usual spelling. Row order does not matter; a
    column with one spelling per key comes back unchanged.

    >>> unify_spellings(pl.Series(["Direct", "direct", "Direct", "Email"])).to_list()
    ['Direct', 'Direct', 'Direct', 'Email']
    """
    # the distinct names first: when no two share a key (the usual file) nothing is counted
    distinct = channel.unique().drop_nulls().to_list()
    if len({channel_key(name) for name in distinct}) == len(distinct):
        return channel
    chosen = usual_spellings(channel.rename("name").drop_nulls().value_counts(name="n"))
    return channel.replace_strict(chosen.get_column("name"), chosen.get_column("label"),
                                  default=None, return_dtype=pl.String)


def usual_spellings(counts: pl.DataFrame) -> pl.DataFrame:
    """``name, label``: each distinct ``name`` of ``counts`` (``name, n``: how often it occurs)
    and the most frequent name of its :func:`channel_key` (ties: the smallest text), the rule
    of :func:`unify_spellings` for a caller that has counted the names already."""
    keys = pl.Series("key", [channel_key(name) for name in counts.get_column("name").to_list()],
                     dtype=pl.String)
    return (
        counts.with_columns(keys)
        .sort(["key", "n", "name"], descending=[False, True, False])
        .with_columns(pl.col("name").first().over("key").alias("label"))
        .select("name", "label")
    )


def relabel(names: pl.Series, labels: Iterable[str]) -> pl.Series:
    """``names`` spelled as ``labels`` where their :func:`channel_key` agree: e.g. a spend
    file's "linkedin ads" becomes the touches' "LinkedIn Ads", so spend and credit join on one
    channel. Names no label matches are kept as they are.

    >>> relabel(pl.Series(["linkedin ads", "podcast", None]), ["LinkedIn Ads"]).to_list()
    ['LinkedIn Ads', 'podcast', None]
    """
    by_key: dict[str, str] = {}
    for label in sorted(labels):  # sorted: two labels of one key resolve the same way each run
        by_key.setdefault(channel_key(label), label)
    return _map_distinct(
        names, lambda name: None if name is None else by_key.get(channel_key(name), name),
        pl.String,
    ).alias(names.name)


@dataclass(frozen=True)
class ChannelRule:
    """One rule: every given key's value must match one of its glob patterns."""

    channel: str
    source: tuple[str, ...] = ()
    medium: tuple[str, ...] = ()
    campaign: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChannelRules:
    """Ordered rules, the channel -> group map and the alias -> channel map.

    ``groups`` and ``aliases`` are keyed by the user's spelling; lookups go through
    :func:`channel_key`, so their case and separators do not matter.
    """

    rules: tuple[ChannelRule, ...]
    groups: dict[str, str] = field(default_factory=dict)
    origin: str = "built-in defaults"
    aliases: dict[str, str] = field(default_factory=dict)
    #: ``[self_reported]``: answer patterns -> channel, in file order (:class:`AnswerRule`)
    answers: tuple[AnswerRule, ...] = ()

    def __getstate__(self) -> dict[str, object]:
        # pickled (to Spark workers) without the compiled matchers: rebuilt where they are used
        return {k: v for k, v in self.__dict__.items()
                if k not in ("matcher", "_group_by_key", "answer_matcher")}

    @cached_property
    def matcher(self) -> ChannelMatcher:
        """The rules compiled once (checked against the limits: see :class:`ChannelMatcher`)."""
        return ChannelMatcher(self.rules, self.origin)

    @cached_property
    def answer_matcher(self) -> AnswerMatcher:
        """The ``[self_reported]`` rules compiled once (:class:`AnswerMatcher`)."""
        return AnswerMatcher(self.answers, self.origin)

    def answer_channel(self, answers: pl.Series) -> pl.Series:
        """The channel each self-reported answer states (null for a blank answer and for one
        no ``[self_reported]`` rule matches: never guessed); each distinct answer is matched
        once."""
        matcher = self.answer_matcher
        return _map_distinct(answers, matcher.channel, pl.String).alias("channel")

    @cached_property
    def _group_by_key(self) -> dict[str, str]:
        groups = {channel_key(name): group for name, group in self.groups.items()}
        for alias, channel in self.aliases.items():
            group = groups.get(channel_key(channel))
            if group is not None:
                groups.setdefault(channel_key(alias), group)
        return groups

    def group_name(self, channel: str | None) -> str:
        """The group of one channel name (``other`` when no rule or alias groups it)."""
        if channel is None:
            return OTHER_GROUP
        return self._group_by_key.get(channel_key(channel), OTHER_GROUP)

    def group_of(self, channel: pl.Expr) -> pl.Expr:
        """Expression mapping a channel column to its group (``other`` when unlisted); the
        lookup is by :func:`channel_key`, once per distinct channel."""
        return channel.map_batches(
            lambda names: _map_distinct(names, self.group_name, pl.String),
            return_dtype=pl.String, is_elementwise=True,
        )

    def is_grouped(self, channel: str) -> bool:
        """Whether a rule, ``[groups]`` or ``[aliases]`` gives ``channel`` a group."""
        return channel_key(channel) in self._group_by_key

    def ungrouped(self, channels: Iterable[str | None]) -> list[str]:
        """The channels (sorted, once each) that no rule groups: they fall in ``other``, and a
        run lists them. Placeholders such as ``(unmapped)`` are not listed."""
        placeholders = {UNMAPPED_CHANNEL, "(no touch)"}
        return sorted({c for c in channels
                       if c is not None and c not in placeholders and not self.is_grouped(c)})

    def names_of(self, channels: Iterable[str]) -> tuple[str, ...]:
        """``channels`` and every alias of them, e.g. ``("direct", "direct traffic")`` for
        ``("direct",)`` under the built-in rules: what ``last_non_direct`` should count as
        direct, so HubSpot's "Direct Traffic" is direct like a path table's "Direct"."""
        wanted = {channel_key(c) for c in channels}
        names = list(dict.fromkeys(channels))
        names += [alias for alias, channel in self.aliases.items()
                  if channel_key(channel) in wanted and alias not in names]
        return tuple(names)

    def channel_of(self, source: pl.Expr, medium: pl.Expr, campaign: pl.Expr) -> pl.Expr:
        """Expression giving the channel of the first matching rule, or ``(unmapped)``.

        Values are trimmed and lower-cased, then matched by the compiled
        :attr:`matcher` once per distinct (source, medium, campaign).
        """
        values = [
            expr.fill_null("").str.strip_chars().str.to_lowercase().alias(key)
            for key, expr in zip(_MATCH_KEYS, (source, medium, campaign), strict=True)
        ]
        return pl.struct(values).map_batches(self.matcher.channels, return_dtype=pl.String,
                                             is_elementwise=True)


@dataclass(frozen=True)
class AnswerRule:
    """One ``[self_reported]`` entry: an answer matching any of ``patterns`` states
    ``channel``. A pattern with ``*`` or ``?`` is a glob over the whole answer; any other is a
    keyword (one word or a phrase) found as whole words anywhere in it. Both are compared
    lower-cased, with runs of spaces and punctuation as one space."""

    channel: str
    patterns: tuple[str, ...]


_ANSWER_WORDS = re.compile(r"[^\w]+")


def answer_text(answer: str) -> str:
    """The form answers and their patterns are compared in: case-folded, each run of spaces
    and punctuation one space, trimmed (a glob keeps its ``*`` and ``?``).

    >>> answer_text("  Heard it on a PODCAST!! "), answer_text("heard on *")
    ('heard it on a podcast', 'heard on *')
    """
    return _ANSWER_WORDS.sub(" ", answer.casefold()).strip()


def _pattern_text(pattern: str) -> str:
    """A pattern in :func:`answer_text`'s form, its ``*`` and ``?`` kept as they stand
    (``"Heard on *"`` -> ``"heard on *"``)."""
    pieces = [part if part in ("*", "?") else _ANSWER_WORDS.sub(" ", part.casefold())
              for part in re.split(r"([*?])", pattern)]
    return re.sub(" +", " ", "".join(pieces)).strip()


class AnswerMatcher:
    """The ``[self_reported]`` rules compiled for matching, once.

    Keywords of one word go in a hash table (word -> the first rule listing it), phrases are
    looked for as `` phrase `` in the answer padded with spaces, and globs are tested whole by
    the linear-time glob test of the channel rules (:func:`_glob_matcher`). An answer's work is
    its words once plus one bounded test per phrase and glob: linear in the answer's length
    times the (bounded) patterns, never backtracking. The first rule (in file order) with a
    matching pattern wins.
    """

    def __init__(self, rules: tuple[AnswerRule, ...], origin: str) -> None:
        _check_rule_count(len(rules), origin)
        self.channels_by_rule = [rule.channel for rule in rules]
        self.words: dict[str, int] = {}
        self.phrases: list[tuple[str, int]] = []
        self.globs: list[tuple[Callable[[str], bool], int]] = []
        for index, rule in enumerate(rules):
            for raw in rule.patterns:
                if len(raw) > MAX_PATTERN_LENGTH:
                    raise ChannelRulesLimitError(
                        f"{origin}: [self_reported] pattern {quote_input(raw, 40)} (channel "
                        f"{quote_input(rule.channel)}) is {len(raw):,} characters; at most "
                        f"{MAX_PATTERN_LENGTH} are allowed"
                    )
                pattern = _pattern_text(raw)
                if not pattern.strip("*? "):
                    if pattern:  # "*": every answer (a catch-all, as the user wrote it)
                        self.globs.append((_glob_matcher(pattern), index))
                    continue
                if _is_glob(pattern):
                    self.globs.append((_glob_matcher(pattern), index))
                elif " " in pattern:
                    self.phrases.append((f" {pattern} ", index))
                else:
                    self.words.setdefault(pattern, index)

    def rule_of(self, answer: str | None) -> int | None:
        """The first rule whose pattern matches ``answer`` (None: blank or no match)."""
        if answer is None:
            return None
        text = answer_text(answer)
        if not text:
            return None
        best: int | None = None
        for word in text.split(" "):
            rule = self.words.get(word)
            if rule is not None and (best is None or rule < best):
                best = rule
        padded = f" {text} "
        for phrase, rule in self.phrases:
            if (best is None or rule < best) and phrase in padded:
                best = rule
        for test, rule in self.globs:
            if (best is None or rule < best) and test(text):
                best = rule
        return best

    def channel(self, answer: str | None) -> str | None:
        """The channel ``answer`` states, or None."""
        rule = self.rule_of(answer)
        return None if rule is None else self.channels_by_rule[rule]


def _check_rule_count(count: int, origin: str) -> None:
    if count > MAX_RULES:
        raise ChannelRulesLimitError(
            f"{origin}: {count:,} rules; at most {MAX_RULES:,} are allowed "
            f"(rule {MAX_RULES + 1:,} is the first beyond the limit)"
        )


def _is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _glob_to_regex(pattern: str) -> str:
    text = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return f"^(?s:{text})$"


def _segment(text: str) -> tuple[Callable[[str, int], bool], Callable[[str, int, int], int]]:
    """A fixed-length piece of a glob: (does it match at this position, where is it first
    found between two positions, -1 if nowhere). Literal text uses the string methods; a piece
    with ``?`` a regular expression without repetition."""
    if "?" not in text:
        return (lambda value, at: value.startswith(text, at),
                lambda value, start, end: value.find(text, start, end))
    piece = re.compile("".join("." if c == "?" else re.escape(c) for c in text), re.DOTALL)

    def search(value: str, start: int, end: int) -> int:
        found = piece.search(value, start, end)
        return -1 if found is None else found.start()

    return (lambda value, at: piece.match(value, at) is not None), search


def _glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A test of whole values against a glob that takes time linear in the value times the
    pattern, whatever the pattern (a backtracking regular expression such as ``.*a.*a.*b``
    can take time growing with a power of the value's length).

    The glob splits at its ``*`` into fixed-length segments (``?`` is any one character). The
    first must match at the start, the last at the end, and the middle ones are found left to
    right, each at its leftmost place after the previous one: with fixed-length segments the
    leftmost place never loses a match a later place would give.
    """
    if "*" not in pattern:
        whole, _ = _segment(pattern)
        return lambda value: len(value) == len(pattern) and whole(value, 0)
    first, *middle, last = pattern.split("*")
    (head, _), (tail, _) = _segment(first), _segment(last)
    inner = [(len(text), _segment(text)[1]) for text in middle if text]

    def match(value: str) -> bool:
        end = len(value) - len(last)
        if end < len(first) or not head(value, 0) or not tail(value, end):
            return False
        position = len(first)
        for size, search in inner:
            found = search(value, position, end)
            if found < 0:
                return False
            position = found + size
        return True

    return match


def globs_to_regex(patterns: tuple[str, ...]) -> str:
    """One anchored regular expression matching any of ``patterns`` (trimmed, lower-cased):
    for callers matching a few globs over a column (``hygiene``), not the channel rules."""
    parts = [_glob_to_regex(pattern.strip().lower())[1:-1] for pattern in patterns]
    return "^(?:" + "|".join(parts) + ")$"


class ChannelMatcher:
    """The rules compiled for matching, once.

    Per key (source, medium, campaign): a hash table from each literal pattern to the rules
    that list it, and each distinct glob with its rules; a rule's *keys* are the keys it
    constrains. :meth:`channels` finds, for each distinct (source, medium, campaign), the first
    rule whose every key matches: the candidates are the rules a value's hash-table entry and
    matching globs name, so the work is the rules once (compiling) plus, per distinct value,
    one lookup, the globs' combined prefilter, and (for a value some glob matches) one test per
    glob, then the few candidate rules: never rules x rows.
    """

    def __init__(self, rules: tuple[ChannelRule, ...], origin: str) -> None:
        _check_rule_count(len(rules), origin)
        self.origin = origin
        self.channels_by_rule = [rule.channel for rule in rules]
        self.keys_of: list[tuple[str, ...]] = []
        self.literals: dict[str, dict[str, list[int]]] = {key: {} for key in _MATCH_KEYS}
        # per key: glob -> the rules listing it; each glob's test is built when first needed
        self.globs: dict[str, dict[str, list[int]]] = {key: {} for key in _MATCH_KEYS}
        self._glob_tests: dict[str, Callable[[str], bool]] = {}
        self.catch_all: int | None = None  # the first rule without any pattern
        for index, rule in enumerate(rules):
            keys = tuple(key for key in _MATCH_KEYS if getattr(rule, key))
            self.keys_of.append(keys)
            if not keys and self.catch_all is None:
                self.catch_all = index
            for key in keys:
                for raw in dict.fromkeys(getattr(rule, key)):
                    pattern = raw.strip().lower()
                    if len(pattern) > MAX_PATTERN_LENGTH:
                        raise ChannelRulesLimitError(
                            f"{origin}: rule {index + 1} (channel {quote_input(rule.channel)}): "
                            f"{key} pattern {quote_input(pattern, 40)} is {len(pattern):,} "
                            f"characters; at most {MAX_PATTERN_LENGTH} are allowed"
                        )
                    if _is_glob(pattern):
                        owners = self.globs[key].setdefault(pattern, [])
                    else:
                        owners = self.literals[key].setdefault(pattern, [])
                    if not owners or owners[-1] != index:
                        owners.append(index)
        self.prefilter: dict[str, str | None] = {
            key: "^(?s:" + "|".join(_glob_to_regex(g)[1:-1] for g in self.globs[key]) + ")$"
            if self.globs[key] else None
            for key in _MATCH_KEYS
        }

    def _rules_matching(self, key: str, values: list[str]) -> list[list[int]]:
        """For each value, the rules (ascending) one of whose ``key`` patterns it matches."""
        found: list[list[int]] = [list(self.literals[key].get(value, ())) for value in values]
        globs = self.globs[key]
        if not globs or not values:
            return found
        # one pass of every glob at once (one regular expression, run by polars' linear-time
        # engine) finds the values some glob matches; only those are tested glob by glob
        candidates: list[int] | range = range(len(values))
        prefilter = self.prefilter[key]
        if prefilter is not None:
            try:
                hits = pl.Series(values, dtype=pl.String).str.contains(prefilter)
                candidates = hits.arg_true().to_list()
            except pl.exceptions.PolarsError:  # beyond the engine's size limit: test them all
                self.prefilter[key] = None
        for position in candidates:
            value = values[position]
            for pattern, owners in globs.items():
                test = self._glob_tests.get(pattern)
                if test is None:
                    test = self._glob_tests[pattern] = _glob_matcher(pattern)
                if test(value):
                    found[position].extend(owners)
            found[position] = sorted(set(found[position]))
        return found

    def first_rules(self, source: list[str], medium: list[str], campaign: list[str]
                    ) -> list[int | None]:
        """The index of the first rule matching each (source, medium, campaign), or None."""
        columns = {"source": source, "medium": medium, "campaign": campaign}
        matching: dict[str, dict[str, set[int]]] = {}
        ordered: dict[str, dict[str, list[int]]] = {}
        for key, column in columns.items():
            distinct = list(dict.fromkeys(column))
            rules = self._rules_matching(key, distinct)
            ordered[key] = dict(zip(distinct, rules, strict=True))
            matching[key] = {value: set(r) for value, r in ordered[key].items()}
        result: list[int | None] = []
        for values in zip(source, medium, campaign, strict=True):
            best = self.catch_all
            for key, value in zip(_MATCH_KEYS, values, strict=True):
                for rule in ordered[key][value]:
                    if best is not None and rule >= best:
                        break  # ascending: no later candidate of this key can win
                    keys = self.keys_of[rule]
                    if keys[0] == key and all(
                            rule in matching[other][values[_MATCH_KEYS.index(other)]]
                            for other in keys[1:]):
                        best = rule
                        break
            result.append(best)
        return result

    def channels(self, values: pl.Series) -> pl.Series:
        """The channel of each row of a struct series of trimmed, lower-cased ``source``,
        ``medium`` and ``campaign`` text (``(unmapped)`` when no rule matches); each distinct
        combination is matched once."""
        frame = values.struct.unnest()
        distinct = frame.unique(maintain_order=False)
        first = self.first_rules(*(distinct.get_column(key).to_list() for key in _MATCH_KEYS))
        names = pl.Series([UNMAPPED_CHANNEL if rule is None else self.channels_by_rule[rule]
                           for rule in first], dtype=pl.String)
        mapped = distinct.with_columns(names.alias("_channel"))
        return frame.join(mapped, on=list(_MATCH_KEYS), how="left", nulls_equal=True,
                          maintain_order="left").get_column("_channel")


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


def _name_table(document: dict, section: str, origin: str) -> dict[str, str]:
    table = document.get(section, {})
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        what = "channel names to group names" if section == "groups" else "names to channel names"
        raise ChannelRulesError(f"{origin}: [{section}] must map {what}")
    return dict(table)


def parse_rules(text: str, origin: str = "<rules>") -> ChannelRules:
    """Parse the TOML text of a rules file, checking every rule (and the limits)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChannelRulesError(f"{origin}: not valid TOML ({exc})") from None
    unknown = set(document) - {"groups", "aliases", "rule", "self_reported"}
    if unknown:
        raise ChannelRulesError(
            f"{origin}: unknown section {quote_input(min(unknown))}; "
            "expected [groups], [aliases], [self_reported] and [[rule]]"
        )
    groups = _name_table(document, "groups", origin)
    aliases = _name_table(document, "aliases", origin)
    raw_rules = document.get("rule", [])
    if not isinstance(raw_rules, list):
        raise ChannelRulesError(
            f"{origin}: rules must be an array of tables: write [[rule]], not [rule]"
        )
    _check_rule_count(len(raw_rules), origin)  # before checking each rule
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
                f"{where}: unknown key {quote_input(min(extra))}; "
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
            groups[raw["channel"]] = raw["group"]
        rules.append(ChannelRule(channel=raw["channel"], **patterns))
    # a rules file written before [self_reported] existed (or without one) reads answers by
    # the built-in entries; an empty [self_reported] table maps none
    answers = (_answer_rules(document, origin) if "self_reported" in document
               else _default_answer_rules())
    parsed = ChannelRules(rules=tuple(rules), groups=groups, origin=origin, aliases=aliases,
                          answers=answers)
    parsed.matcher  # noqa: B018 - compiled (and checked against the limits) when read
    parsed.answer_matcher  # noqa: B018
    return parsed


@functools.cache
def _default_answer_rules() -> tuple[AnswerRule, ...]:
    """The built-in ``[self_reported]`` entries (``default_channels.toml``)."""
    return _answer_rules(tomllib.loads(default_rules_text()), "built-in defaults")


def _answer_rules(document: dict, origin: str) -> tuple[AnswerRule, ...]:
    """``[self_reported]``: ``"pattern|pattern" = "channel"`` entries, in file order (TOML
    tables keep it): the first whose pattern matches an answer names its channel."""
    table = document.get("self_reported", {})
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in table.items()
    ):
        raise ChannelRulesError(
            f"{origin}: [self_reported] must map answer patterns to channel names, like "
            '"friend|colleague" = "word_of_mouth"'
        )
    _check_rule_count(len(table), origin)
    rules = []
    for key, channel in table.items():
        patterns = tuple(part.strip() for part in key.split("|") if part.strip())
        if not patterns:
            raise ChannelRulesError(
                f"{origin}: [self_reported] {quote_input(key)} has no pattern")
        rules.append(AnswerRule(channel=channel.strip(), patterns=patterns))
    return tuple(rules)
