"""Hash joins on text keys: always the text join's answer, collisions included."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribution import keys
from attribution.keys import lookup


def text_join_rows(probe: list[str | None], table: list[str | None]) -> list[int | None]:
    where = {value: row for row, value in enumerate(table) if value is not None}
    return [None if value is None else where.get(value) for value in probe]


def test_rows_of_equal_values_null_for_missing_and_null_keys() -> None:
    found = lookup(pl.Series("contact_id", ["c2", None, "zz", "c1", "c2"]),
                   pl.Series(["c1", "c2", None]))
    assert found.name == "contact_id"
    assert found.dtype == pl.UInt32
    assert found.to_list() == [1, None, None, 0, 1]


def test_a_hash_match_with_other_text_is_no_match(monkeypatch: pytest.MonkeyPatch) -> None:
    # table keys hash apart (lengths 1 and 2) but "z" hashes like "a": the check finds the
    # text differs and the text join answers
    monkeypatch.setattr(keys, "_hashed", lambda key: key.str.len_bytes().cast(pl.UInt64))
    assert lookup(pl.Series(["z", "bb", "a"]), pl.Series(["a", "bb"])).to_list() == [None, 1, 0]


def test_table_keys_that_hash_alike_use_the_text_join(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "_hashed", lambda key: key.str.len_bytes().cast(pl.UInt64) * 0)
    assert lookup(pl.Series(["b", "c", "a"]), pl.Series(["a", "b"])).to_list() == [1, None, 0]


ids = st.one_of(st.none(), st.text(alphabet="ab1", max_size=3))


@given(st.lists(ids, max_size=40), st.lists(ids, max_size=20, unique=True))
def test_same_rows_as_a_text_join(probe: list[str | None], table: list[str | None]) -> None:
    found = lookup(pl.Series(probe, dtype=pl.String), pl.Series(table, dtype=pl.String))
    assert found.to_list() == text_join_rows(probe, table)
