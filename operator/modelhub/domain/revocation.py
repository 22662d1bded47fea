"""Pure revocation logic: the facts a Revocation can match on, an in-memory index of them, and enforcement status.

The index is kept current from watch events (the handlers call `upsert`/`remove`), so resolving a Revocation
never lists the cluster: each match kind is a dictionary lookup, and only the version range needs a filter over
the versions of the named model.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhub.api.conditions import set_condition
from modelhub.api.semver import InvalidVersion, matches_range
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R

VersionKey = tuple[str, str]  # (namespace, ModelVersion name)
WorkloadKey = tuple[str, str]  # (namespace, Deployment name)

AFFECTED_CAP = 100


def normalize_digest(text: str) -> str:
    """A digest as compared: trimmed and case-folded (`SHA256:AB…` and `sha256:ab…` are the same artifact)."""
    return text.strip().lower()


@dataclass(frozen=True)
class VersionFacts:
    """What a Revocation can say about one ModelVersion."""

    namespace: str
    name: str
    model: str
    version: str
    digest: str
    key_fingerprint: str | None = None
    dataset_digests: frozenset[str] = frozenset()
    certificate_fingerprint: str | None = None  # sha256 of the signing certificate's DER
    ca_fingerprints: frozenset[str] = frozenset()  # every CA certificate on its verified path

    @property
    def key(self) -> VersionKey:
        return (self.namespace, self.name)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> VersionFacts:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        datasets = ((spec.get("lineage") or {}).get("datasets")) or []
        verified = status.get("verified") or {}
        cas = verified.get("certificateAuthorityFingerprints") or []
        return cls(
            namespace=meta.get("namespace") or "",
            name=meta.get("name") or "",
            model=spec.get("model") or "",
            version=spec.get("version") or "",
            digest=normalize_digest(((spec.get("artifact") or {}).get("digest")) or ""),
            key_fingerprint=verified.get("keyFingerprint") or None,
            dataset_digests=frozenset(normalize_digest(d["digest"]) for d in datasets
                                      if isinstance(d, dict) and isinstance(d.get("digest"), str)),
            certificate_fingerprint=verified.get("certificateFingerprint") or None,
            ca_fingerprints=frozenset(c for c in cas if isinstance(c, str) and c) if isinstance(cas, list) else frozenset(),
        )


def _norm(digests: Any) -> set[str]:
    return {normalize_digest(d) for d in digests or () if isinstance(d, str)}


def _in_range(version: str, versions: str | None) -> bool:
    if not versions:
        return True
    try:
        return matches_range(version, versions)
    except InvalidVersion:
        return False


def model_rule_covers(rule: Mapping[str, Any], facts: VersionFacts) -> bool:
    if rule.get("name") != facts.model:
        return False
    if rule.get("namespace") and rule["namespace"] != facts.namespace:
        return False
    return _in_range(facts.version, rule.get("versions"))


def why_covered(match: Mapping[str, Any], facts: VersionFacts) -> str | None:
    """The first clause of `match` that covers these facts, in words, or None."""
    if facts.digest and facts.digest in _norm(match.get("digests")):
        return f"artifact digest {facts.digest}"
    if facts.key_fingerprint and facts.key_fingerprint in (match.get("keyFingerprints") or []):
        return f"signing key {facts.key_fingerprint[:16]}…"
    if facts.certificate_fingerprint and facts.certificate_fingerprint in (match.get("certificateFingerprints") or []):
        return f"signing certificate {facts.certificate_fingerprint[:16]}…"
    ca_hit = facts.ca_fingerprints.intersection(match.get("certificateAuthorities") or [])
    if ca_hit:
        return f"certificate authority {sorted(ca_hit)[0][:16]}…"
    hit = facts.dataset_digests.intersection(_norm(match.get("datasetDigests")))
    if hit:
        return f"dataset digest {sorted(hit)[0]}"
    for rule in match.get("models") or []:
        if model_rule_covers(rule, facts):
            where = f"{rule['namespace']}/" if rule.get("namespace") else ""
            return f"model {where}{rule['name']} versions {rule.get('versions') or '(all)'}"
    return None


def first_covering(revocations: Iterable[Mapping[str, Any]], facts: VersionFacts) -> tuple[Mapping[str, Any], str] | None:
    """The first live Revocation (by name) that covers `facts`, with the clause that does."""
    for rev in sorted(revocations, key=lambda r: r.get("metadata", {}).get("name", "")):
        if (rev.get("metadata") or {}).get("deletionTimestamp"):
            continue
        why = why_covered((rev.get("spec") or {}).get("match") or {}, facts)
        if why:
            return rev, why
        if facts.digest and facts.digest in _norm((rev.get("status") or {}).get("revokedDigests")):
            # Matched once through another version (e.g. by its key): the artifact stays revoked under any name.
            return rev, f"artifact digest {facts.digest}, revoked earlier through another version"
    return None


REVOKED_DIGESTS_CAP = 10_000


@dataclass
class VersionIndex:
    """ModelVersions by every key a Revocation can match on."""

    facts: dict[VersionKey, VersionFacts] = field(default_factory=dict)
    by_digest: dict[str, set[VersionKey]] = field(default_factory=lambda: defaultdict(set))
    by_key: dict[str, set[VersionKey]] = field(default_factory=lambda: defaultdict(set))
    by_dataset: dict[str, set[VersionKey]] = field(default_factory=lambda: defaultdict(set))
    by_certificate: dict[str, set[VersionKey]] = field(default_factory=lambda: defaultdict(set))
    by_ca: dict[str, set[VersionKey]] = field(default_factory=lambda: defaultdict(set))
    by_model: dict[str, set[VersionKey]] = field(default_factory=lambda: defaultdict(set))

    def _buckets(self, f: VersionFacts) -> list[tuple[dict[str, set[VersionKey]], str]]:
        out = [(self.by_digest, f.digest), (self.by_model, f.model)]
        if f.key_fingerprint:
            out.append((self.by_key, f.key_fingerprint))
        out += [(self.by_dataset, d) for d in f.dataset_digests]
        if f.certificate_fingerprint:
            out.append((self.by_certificate, f.certificate_fingerprint))
        out += [(self.by_ca, c) for c in f.ca_fingerprints]
        return out

    def upsert(self, f: VersionFacts) -> bool:
        """Index `f`; whether anything a Revocation can match on changed."""
        old = self.facts.get(f.key)
        if old == f:
            return False
        if old is not None:
            self.remove(old.key)
        self.facts[f.key] = f
        for bucket, value in self._buckets(f):
            if value:
                bucket[value].add(f.key)
        return True

    def remove(self, key: VersionKey) -> None:
        old = self.facts.pop(key, None)
        if old is None:
            return
        for bucket, value in self._buckets(old):
            keys = bucket.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del bucket[value]

    def match(self, match: Mapping[str, Any]) -> set[VersionKey]:
        """Every indexed version a Revocation's `spec.match` covers."""
        hits: set[VersionKey] = set()
        for d in _norm(match.get("digests")):
            hits |= self.by_digest.get(d, set())
        for k in match.get("keyFingerprints") or []:
            hits |= self.by_key.get(k, set())
        for d in _norm(match.get("datasetDigests")):
            hits |= self.by_dataset.get(d, set())
        for c in match.get("certificateFingerprints") or []:
            hits |= self.by_certificate.get(c, set())
        for c in match.get("certificateAuthorities") or []:
            hits |= self.by_ca.get(c, set())
        for rule in match.get("models") or []:
            for key in self.by_model.get(rule.get("name", ""), set()):
                if model_rule_covers(rule, self.facts[key]):
                    hits.add(key)
        return hits


def affected_list(facts: Iterable[VersionFacts]) -> list[dict[str, str]]:
    ordered = sorted(facts, key=lambda f: (f.namespace, f.name))
    return [{"namespace": f.namespace, "name": f.name, "model": f.model, "version": f.version} for f in ordered][
        :AFFECTED_CAP
    ]


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def is_enforced(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == C.ENFORCED and c.get("status") == C.TRUE for c in status.get("conditions") or [])


def tearing_down_status(
    old: Mapping[str, Any], *, generation: int | None, targets: int, now: dt.datetime
) -> dict[str, Any]:
    """The status written as teardown starts, so a crash mid-way neither loses nor double-counts the workloads.

    A run that resumes an interrupted teardown (Enforced=False/TearingDown) has already counted its targets.
    """
    cond: Mapping[str, Any] = next((c for c in old.get("conditions") or [] if c.get("type") == C.ENFORCED), {})
    resumed = cond.get("status") == C.FALSE and cond.get("reason") == R.TEARING_DOWN
    torn = int(old.get("workloadsTornDown") or 0) + (0 if resumed else targets)
    return {
        **old,
        "observedGeneration": generation,
        "workloadsTornDown": torn,
        "conditions": set_condition(
            old.get("conditions"), C.ENFORCED, C.FALSE, R.TEARING_DOWN, f"deleting {targets} workloads", generation, now
        ),
    }


def enforcement_status(
    old: Mapping[str, Any],
    *,
    generation: int | None,
    matched: list[VersionFacts],
    remaining: int,
    created: str,
    now: dt.datetime,
    digests: Iterable[str] = (),
) -> tuple[dict[str, Any], float | None]:
    """The Revocation's status after a teardown pass, and the enforcement seconds when it just completed.

    `enforcementSeconds` runs from the Revocation's creation to the pass that found no matching workload left;
    it is measured once and kept (a later pass that deletes a newly appeared workload does not restart it).
    """
    status = dict(old)
    status["observedGeneration"] = generation
    status["matchedVersions"] = len(matched)
    status["workloadsTornDown"] = int(old.get("workloadsTornDown") or 0)
    status["affected"] = affected_list(matched)
    status["affectedTotal"] = len(matched)
    # Every artifact digest matched so far (kept when the version that linked it is deleted): admission and the
    # reconcilers refuse it under any name, by any match kind.
    known = set(_norm(old.get("revokedDigests"))) | {normalize_digest(d) for d in digests if d}
    status["revokedDigests"] = sorted(known)[:REVOKED_DIGESTS_CAP] or None
    just_completed = None
    if remaining:
        status["conditions"] = set_condition(
            old.get("conditions"), C.ENFORCED, C.FALSE, R.TEARING_DOWN, f"{remaining} workloads remain", generation, now
        )
        return status, None
    if not (old.get("enforcedAt") and is_enforced(old)) and "enforcementSeconds" not in old:
        just_completed = max(0.0, (now - _parse_time(created)).total_seconds())
        status["enforcedAt"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        status["enforcementSeconds"] = round(just_completed, 3)
    status["conditions"] = set_condition(
        old.get("conditions"), C.ENFORCED, C.TRUE, R.ENFORCED,
        f"{len(matched)} versions revoked; {status['workloadsTornDown']} workloads torn down", generation, now,
    )
    return status, just_completed
