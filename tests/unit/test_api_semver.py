"""SemVer 2.0 parsing, precedence and range matching (modelhub.api.semver)."""

from __future__ import annotations

import re

import pytest

from modelhub.api import semver


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0",
        "1.2.3",
        "10.20.30",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-0.3.7",
        "1.0.0-x.7.z.92",
        "1.0.0+20130313144700",
        "1.0.0-beta+exp.sha.5114f85",
        "1.0.0-x-y-z.--",
        "2.0.0-rc.1+build.123",
    ],
)
def test_valid_versions(text):
    assert semver.is_valid(text)
    assert str(semver.parse(text)) == text
    assert re.match(semver.SEMVER_PATTERN, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "v1.2.3",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-",
        "1.2.3-01",
        "1.2.3+",
        "1.2.3-alpha..1",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\n",
        "latest",
        "1.2.x",
    ],
)
def test_invalid_versions(text):
    assert not semver.is_valid(text)
    assert not re.match(semver.SEMVER_PATTERN, text) or text.endswith("\n")  # Python's $ allows a final \n
    with pytest.raises(semver.InvalidVersion):
        semver.parse(text)


def test_precedence_order_from_the_spec():
    # semver.org, section 11: each version sorts before the next.
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
        "10.0.0",
    ]
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert semver.compare(a, b) == -1, (a, b)
        assert semver.compare(b, a) == 1, (a, b)
    assert sorted(reversed(ordered), key=semver.parse) == ordered


def test_build_metadata_is_ignored_for_precedence():
    assert semver.compare("1.0.0+a", "1.0.0+b") == 0
    assert semver.parse("1.0.0+a") == semver.parse("1.0.0")
    assert hash(semver.parse("1.0.0+a")) == hash(semver.parse("1.0.0"))


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        ("1.2.5", ">=1.2.0,<1.3.1", True),
        ("1.2.0", ">=1.2.0,<1.3.1", True),
        ("1.3.0", ">=1.2.0,<1.3.1", True),
        ("1.3.1", ">=1.2.0,<1.3.1", False),
        ("1.1.9", ">=1.2.0,<1.3.1", False),
        ("1.3.1-rc.1", ">=1.2.0,<1.3.1", True),  # pre-releases are covered (safe for revocation)
        ("1.2.0-rc.1", ">=1.2.0,<1.3.1", False),
        ("1.2.3", "1.2.3", True),
        ("1.2.3", "=1.2.3", True),
        ("1.2.3", "==1.2.3", True),
        ("1.2.3+build.5", "==1.2.3", True),
        ("1.2.4", "=1.2.3", False),
        ("1.2.3", "!=1.2.3", False),
        ("1.2.4", "!=1.2.3", True),
        ("2.0.0", ">1.9.9", True),
        ("1.9.9", ">1.9.9", False),
        ("1.9.9", "<=1.9.9", True),
        ("1.2.3", " >= 1.0.0 , < 2.0.0 ", True),
        ("1.5.0", ">=1.0.0,<2.0.0,!=1.5.0", False),
    ],
)
def test_matches_range(version, spec, expected):
    assert semver.is_valid_range(spec)
    assert re.match(semver.RANGE_PATTERN, spec)
    assert semver.matches_range(version, spec) is expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "~1.2",
        "^1.2.0",
        ">=1.2",
        ">=1.2.0,",
        ",>=1.2.0",
        ">=1.2.0 <2.0.0",
        ">>1.0.0",
        "=>1.0.0",
        "1.x",
        "*",
        ">=1.2.0,<2",
    ],
)
def test_invalid_ranges(spec):
    assert not semver.is_valid_range(spec)
    assert not re.match(semver.RANGE_PATTERN, spec)
    with pytest.raises(semver.InvalidVersion):
        semver.matches_range("1.2.3", spec)


def test_matches_range_rejects_a_bad_version():
    with pytest.raises(semver.InvalidVersion):
        semver.matches_range("1.2", ">=1.0.0")


def test_parse_range_normalises_operators():
    assert [(op, str(v)) for op, v in semver.parse_range("1.0.0, ==2.0.0,>3.0.0")] == [
        ("=", "1.0.0"),
        ("=", "2.0.0"),
        (">", "3.0.0"),
    ]
