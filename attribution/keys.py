"""Joins on text keys through their 64-bit hashes, checked against the text.

Hash-joining millions of text keys (contact and account ids) is among the slowest steps of a
run; joining their 64-bit hashes instead is much faster (bench/RESULTS.md). A hash match is
not proof of a text match, so every match is checked against the text (a vectorised
comparison), and any mismatch, or two table keys that hash alike, falls back to the plain text
join: the result is always exactly the text join's.
"""

from __future__ import annotations

import polars as pl

_SEED = 17


def _hashed(key: pl.Expr) -> pl.Expr:
    return key.hash(_SEED)


def lookup(keys: pl.Series, table: pl.Series) -> pl.Series:
    """For each of ``keys``, the row number (UInt32) of the equal value of ``table``, null for a
    null key or one ``table`` lacks. ``table`` holds distinct values (nulls never match).

    >>> lookup(pl.Series(["b", None, "z", "a"]), pl.Series(["a", "b"])).to_list()
    [1, None, None, 0]
    """
    rows = pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")
    table = table.rechunk()  # gathered by row below: a gather over many chunks is slow
    hashed = table.to_frame("_key").select(_hashed(pl.col("_key")).alias("_hash"), rows)
    if hashed.get_column("_hash").n_unique() == hashed.height:
        found = (
            keys.to_frame("_key")
            .select(pl.when(pl.col("_key").is_not_null()).then(_hashed(pl.col("_key")))
                    .alias("_hash"))
            .join(hashed, on="_hash", how="left", maintain_order="left")
            .get_column("_row")
        )
        matched = found.is_not_null()
        if (table.gather(found).eq_missing(keys) | ~matched).all():
            return found.alias(keys.name)
    return (  # hashes collide: the text join itself
        keys.to_frame("_key")
        .join(table.to_frame("_key").with_columns(rows), on="_key", how="left",
              nulls_equal=False, maintain_order="left")
        .get_column("_row")
        .alias(keys.name)
    )


__all__ = ["lookup"]
