"""`modelhub run`'s process setup."""

from __future__ import annotations

import pytest

from modelhub.cli.run import limit_malloc_arenas, trim_malloc_every


def test_malloc_arenas_capped_by_default() -> None:
    assert limit_malloc_arenas({}) == 2  # glibc accepted the cap (this is a glibc system)


@pytest.mark.parametrize(("value", "expected"), [("4", 4), ("0", None), ("-1", None)])
def test_malloc_arenas_setting(value: str, expected: int | None) -> None:
    assert limit_malloc_arenas({"MODELHUB_MALLOC_ARENAS": value}) == expected


def test_malloc_arenas_setting_must_be_a_number() -> None:
    with pytest.raises(SystemExit, match="MODELHUB_MALLOC_ARENAS must be a whole number"):
        limit_malloc_arenas({"MODELHUB_MALLOC_ARENAS": "many"})


@pytest.mark.parametrize(("value", "expected"), [(None, 1.0), ("0.2", 0.2), ("0", None), ("-3", None)])
def test_malloc_trim_period(value: str | None, expected: float | None) -> None:
    import threading

    before = {t.ident for t in threading.enumerate() if t.name == "malloc-trim"}
    assert trim_malloc_every({} if value is None else {"MODELHUB_MALLOC_TRIM_SECONDS": value}) == expected
    started = [t for t in threading.enumerate() if t.name == "malloc-trim" and t.ident not in before]
    assert len(started) == (1 if expected else 0) and all(t.daemon for t in started)


def test_malloc_trim_setting_must_be_a_number() -> None:
    with pytest.raises(SystemExit, match="MODELHUB_MALLOC_TRIM_SECONDS must be a number"):
        trim_malloc_every({"MODELHUB_MALLOC_TRIM_SECONDS": "often"})
