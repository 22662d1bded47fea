"""`modelhub run`'s process setup."""

from __future__ import annotations

import pytest

from modelhub.cli.run import limit_malloc_arenas


def test_malloc_arenas_capped_by_default() -> None:
    assert limit_malloc_arenas({}) == 2  # glibc accepted the cap (this is a glibc system)


@pytest.mark.parametrize(("value", "expected"), [("4", 4), ("0", None), ("-1", None)])
def test_malloc_arenas_setting(value: str, expected: int | None) -> None:
    assert limit_malloc_arenas({"MODELHUB_MALLOC_ARENAS": value}) == expected


def test_malloc_arenas_setting_must_be_a_number() -> None:
    with pytest.raises(SystemExit, match="MODELHUB_MALLOC_ARENAS must be a whole number"):
        limit_malloc_arenas({"MODELHUB_MALLOC_ARENAS": "many"})
