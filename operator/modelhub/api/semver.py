"""Semantic Versioning 2.0.0: parse, compare, and match version ranges. Pure functions, stdlib only.

A range is a comma-separated list of comparators that must all hold, for example ``">=1.2.0,<1.3.1"``.
A comparator is an optional operator (``>=``, ``<=``, ``>``, ``<``, ``=``, ``==``, ``!=``; none means ``=``)
followed by a full SemVer version. Comparison is plain SemVer precedence (build metadata ignored; a
pre-release sorts before its release). Unlike npm, pre-releases are *not* excluded from a range: a
Revocation of ``<1.3.1`` also covers ``1.3.1-rc.1``, which is the safe reading for revocation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD_ID = r"[0-9a-zA-Z-]+"

#: A SemVer 2.0 version without anchors; the syntax is shared by Python, Rust (pydantic) and Go RE2 (the API
#: server), so the same text is used as a pydantic pattern and in the CRD schema.
SEMVER_BODY = rf"{_NUM}\.{_NUM}\.{_NUM}(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?"
#: An anchored SemVer 2.0 version, e.g. ``1.2.3``, ``1.0.0-rc.1``, ``2.0.0+build.7``.
SEMVER_PATTERN = rf"^{SEMVER_BODY}$"

_COMPARATOR = rf"(?:>=|<=|!=|==|>|<|=)? *{SEMVER_BODY}"
#: An anchored version range: comparators separated by commas, spaces allowed around them.
RANGE_PATTERN = rf"^ *{_COMPARATOR}(?: *, *{_COMPARATOR})* *$"

_SEMVER_RE = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?$"
)
_RANGE_RE = re.compile(RANGE_PATTERN)
_COMPARATOR_RE = re.compile(rf"^(?P<op>>=|<=|!=|==|>|<|=)? *(?P<version>{SEMVER_BODY})$")


class InvalidVersion(ValueError):
    """A string that is not a SemVer 2.0 version or range."""


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A parsed SemVer 2.0 version. Equality and ordering follow SemVer precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def _key(self) -> tuple:
        # A release sorts after all its pre-releases; numeric identifiers sort numerically and before
        # alphanumeric ones; a shorter pre-release sorts first when all shared identifiers are equal.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def is_valid(text: str) -> bool:
    """True when ``text`` is a strict SemVer 2.0 version (no leading ``v``, no missing parts)."""
    return isinstance(text, str) and _SEMVER_RE.fullmatch(text) is not None


def parse(text: str) -> Version:
    """Parse a strict SemVer 2.0 version; raise :class:`InvalidVersion` otherwise."""
    m = _SEMVER_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidVersion(f"{text!r} is not a SemVer 2.0 version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])")
    pre = tuple(m["pre"].split(".")) if m["pre"] else ()
    build = tuple(m["build"].split(".")) if m["build"] else ()
    return Version(int(m["major"]), int(m["minor"]), int(m["patch"]), pre, build)


def compare(a: str | Version, b: str | Version) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to (same precedence) or after ``b``."""
    va = a if isinstance(a, Version) else parse(a)
    vb = b if isinstance(b, Version) else parse(b)
    return (va > vb) - (va < vb)


def is_valid_range(text: str) -> bool:
    """True when ``text`` is a comma-separated list of comparators such as ``">=1.2.0,<1.3.1"``."""
    return isinstance(text, str) and _RANGE_RE.fullmatch(text) is not None


def parse_range(text: str) -> list[tuple[str, Version]]:
    """Split a range into ``(operator, version)`` pairs; a missing operator and ``==`` both become ``=``."""
    if not is_valid_range(text):
        raise InvalidVersion(
            f"{text!r} is not a version range: expected comma-separated comparators such as '>=1.2.0,<1.3.1' "
            "(operators >=, <=, >, <, =, ==, != followed by a SemVer version)"
        )
    out: list[tuple[str, Version]] = []
    for part in text.split(","):
        m = _COMPARATOR_RE.fullmatch(part.strip())
        assert m is not None  # guaranteed by the range pattern
        op = m["op"] or "="
        out.append(("=" if op == "==" else op, parse(m["version"])))
    return out


def _holds(version: Version, op: str, bound: Version) -> bool:
    if op == ">=":
        return version >= bound
    if op == "<=":
        return version <= bound
    if op == ">":
        return version > bound
    if op == "<":
        return version < bound
    if op == "!=":
        return version != bound
    return version == bound


def matches_range(version: str | Version, spec: str) -> bool:
    """True when ``version`` satisfies every comparator of ``spec``.

    >>> matches_range("1.2.5", ">=1.2.0,<1.3.1")
    True

    Raises :class:`InvalidVersion` when either argument is malformed.
    """
    v = version if isinstance(version, Version) else parse(version)
    return all(_holds(v, op, bound) for op, bound in parse_range(spec))


__all__ = [
    "RANGE_PATTERN",
    "SEMVER_BODY",
    "SEMVER_PATTERN",
    "InvalidVersion",
    "Version",
    "compare",
    "is_valid",
    "is_valid_range",
    "matches_range",
    "parse",
    "parse_range",
]
