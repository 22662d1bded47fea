from modelhub.domain.revocation import VersionFacts, VersionIndex, affected_list, first_covering, why_covered

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
K1 = "a" * 64
DS = "sha256:" + "d" * 64


def mv(ns: str, name: str, model: str, version: str, digest: str, key: str | None = None, datasets=()) -> dict:
    obj = {
        "metadata": {"namespace": ns, "name": name},
        "spec": {"model": model, "version": version, "artifact": {"digest": digest},
                 "lineage": {"datasets": [{"name": "d", "uri": "s3://x", "digest": d} for d in datasets]}},
    }
    if key:
        obj["status"] = {"verified": {"keyFingerprint": key}}
    return obj


def index(*objs: dict) -> VersionIndex:
    idx = VersionIndex()
    for o in objs:
        idx.upsert(VersionFacts.from_object(o))
    return idx


def test_each_match_kind_resolves_from_the_index() -> None:
    idx = index(
        mv("a", "m-1", "m", "1.2.0", D1, K1),
        mv("b", "m-2", "m", "1.3.1", D2, datasets=[DS]),
        mv("b", "n-1", "n", "1.2.5", D2),
    )
    assert idx.match({"digests": [D1]}) == {("a", "m-1")}
    assert idx.match({"keyFingerprints": [K1]}) == {("a", "m-1")}
    assert idx.match({"datasetDigests": [DS]}) == {("b", "m-2")}
    assert idx.match({"models": [{"name": "m", "versions": ">=1.2.0,<1.3.1"}]}) == {("a", "m-1")}
    assert idx.match({"models": [{"name": "m"}]}) == {("a", "m-1"), ("b", "m-2")}
    assert idx.match({"models": [{"namespace": "b", "name": "m"}]}) == {("b", "m-2")}
    assert idx.match({"digests": [D2]}) == {("b", "m-2"), ("b", "n-1")}
    assert idx.match({"digests": ["sha256:" + "9" * 64]}) == set()


def test_upsert_moves_a_version_between_buckets_and_remove_forgets_it() -> None:
    idx = index(mv("a", "m-1", "m", "1.0.0", D1))
    assert idx.match({"keyFingerprints": [K1]}) == set()
    idx.upsert(VersionFacts.from_object(mv("a", "m-1", "m", "1.0.0", D1, K1)))  # verified later
    assert idx.match({"keyFingerprints": [K1]}) == {("a", "m-1")}
    idx.remove(("a", "m-1"))
    assert idx.match({"digests": [D1]}) == set()
    assert not idx.by_digest and not idx.by_key and not idx.by_model


def test_first_covering_names_the_clause_and_skips_deleted_revocations() -> None:
    facts = VersionFacts.from_object(mv("a", "m-1", "m", "1.2.0", D1, K1))
    revs = [
        {"metadata": {"name": "b-leak", "deletionTimestamp": "now"}, "spec": {"match": {"digests": [D1]}}},
        {"metadata": {"name": "c-key"}, "spec": {"match": {"keyFingerprints": [K1]}}},
    ]
    rev, why = first_covering(revs, facts)
    assert rev["metadata"]["name"] == "c-key"
    assert why.startswith("signing key")
    assert why_covered({"models": [{"name": "m", "versions": "<1.0.0"}]}, facts) is None


def test_affected_list_is_sorted_and_capped() -> None:
    facts = [VersionFacts("ns", f"v{i:03d}", "m", "1.0.0", D1) for i in range(150)]
    out = affected_list(reversed(facts))
    assert len(out) == 100 and out[0]["name"] == "v000"


def test_teardown_counts_survive_a_crash_without_double_counting() -> None:
    import datetime as dt

    from modelhub.domain.revocation import enforcement_status, tearing_down_status

    t0 = dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
    first = tearing_down_status({}, generation=1, targets=50, now=t0)
    assert first["workloadsTornDown"] == 50
    # Crash after some deletes; the resumed run finds 20 left, which were already counted.
    resumed = tearing_down_status(first, generation=1, targets=20, now=t0)
    assert resumed["workloadsTornDown"] == 50
    facts = [VersionFacts("ns", f"v{i}", "m", "1.0.0", D1) for i in range(50)]
    done, seconds = enforcement_status(resumed, generation=1, matched=facts, remaining=0,
                                       created="2026-01-01T00:00:00Z", now=t0 + dt.timedelta(seconds=1.5))
    assert seconds == 1.5 and done["enforcementSeconds"] == 1.5
    assert done["matchedVersions"] == 50 and done["affectedTotal"] == 50 and len(done["affected"]) == 50
    assert [c["status"] for c in done["conditions"]] == ["True"]
    # A later pass (a new third-party workload deleted) keeps the measured time.
    again = tearing_down_status(done, generation=1, targets=1, now=t0)
    assert again["workloadsTornDown"] == 51
    final, seconds = enforcement_status(again, generation=1, matched=facts, remaining=0,
                                        created="2026-01-01T00:00:00Z", now=t0 + dt.timedelta(seconds=9))
    assert seconds is None and final["enforcementSeconds"] == 1.5
    still, _ = enforcement_status(again, generation=1, matched=facts, remaining=3,
                                  created="2026-01-01T00:00:00Z", now=t0)
    assert still["conditions"][0]["reason"] == "TearingDown"
