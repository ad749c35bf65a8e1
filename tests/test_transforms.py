"""Path transforms: each one alone, combined, and the bookkeeping (indexes, n_touches)."""

from __future__ import annotations

import polars as pl
import pytest

from attribution.errors import ConfigError
from attribution.journeys import Journeys
from attribution.transforms import SOURCE_INDEX, apply_transforms, transform_touches


def journeys(paths: dict[str, str]) -> Journeys:
    touches = pl.DataFrame(
        [
            {"journey_id": j, "touch_index": i, "channel": c, "touchpoint_id": f"{j}-{i}"}
            for j, path in paths.items()
            for i, c in enumerate(path.split())
        ]
    )
    rows = pl.DataFrame(
        {
            "journey_id": [*paths, "empty"],
            "status": "won",
            "n_touches": [*(len(p.split()) for p in paths.values()), 0],
        }
    )
    # shuffle the rows: transforms must not rely on the physical order
    return Journeys.from_frames(touches.reverse(), rows)


def paths_of(result: Journeys) -> dict[str, str]:
    touches = result.touches.collect().sort("journey_id", "touch_index")
    grouped = touches.group_by("journey_id", maintain_order=True).agg("channel", "touch_index")
    out = {}
    for journey, channels, indexes in grouped.iter_rows():
        assert indexes == list(range(len(channels)))
        out[journey] = " ".join(channels)
    return out


SAMPLE = {"j1": "d a b b c d c c", "j2": "direct email email direct"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, SAMPLE),
        ({"collapse_repeats": True}, {"j1": "d a b c d c", "j2": "direct email direct"}),
        ({"first_touch_per_channel": True}, {"j1": "d a b c", "j2": "direct email"}),
        ({"frequency": True}, {"j1": "d(2) a(1) b(2) c(3)", "j2": "direct(2) email(2)"}),
        ({"last_n": 3}, {"j1": "d c c", "j2": "email email direct"}),
        ({"drop_channels": ["direct"]}, {"j1": "d a b b c d c c", "j2": "email email"}),
        (
            {"drop_channels": ["direct"], "collapse_repeats": True, "last_n": 2},
            {"j1": "d c", "j2": "email"},
        ),
        ({"drop_channels": ["direct", "email"]}, {"j1": "d a b b c d c c"}),
    ],
)
def test_each_transform(options: dict, expected: dict[str, str]) -> None:
    result = apply_transforms(journeys(SAMPLE), **options)
    assert paths_of(result) == expected
    n_touches = dict(result.journeys.collect().select("journey_id", "n_touches").iter_rows())
    assert n_touches == {j: len(expected.get(j, "").split()) for j in [*SAMPLE, "empty"]}


def test_surviving_touches_keep_their_own_columns() -> None:
    result = apply_transforms(journeys(SAMPLE), collapse_repeats=True)
    j2 = result.touches.filter(pl.col("journey_id") == "j2").collect()
    assert j2["touchpoint_id"].to_list() == ["j2-0", "j2-1", "j2-3"]


def test_source_index_maps_back_to_the_original_touch() -> None:
    touches = transform_touches(journeys(SAMPLE).touches, first_touch_per_channel=True).collect()
    j1 = touches.filter(pl.col("journey_id") == "j1")
    assert j1[SOURCE_INDEX].to_list() == [0, 1, 2, 4]


def test_bad_last_n() -> None:
    with pytest.raises(ConfigError, match="last_n"):
        apply_transforms(journeys(SAMPLE), last_n=0)
