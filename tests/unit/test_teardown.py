"""What a Revocation deletes: declared digests (case-folded, trimmed, malformed ones named) and top-most owners."""

from __future__ import annotations

from typing import Any

import pytest

from modelhub.domain.teardown import declared_digest, teardown_targets, top_owner
from modelhub.vocab import annotations as A

D = "sha256:" + "ab" * 32


def meta(name: str, digest: str | None = D, owner: tuple[str, str] | None = None, deleting: bool = False,
         controller: bool = True) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "namespace": "ns", "annotations": {} if digest is None else {A.ARTIFACT_DIGEST: digest}}
    if owner:
        m["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": controller, "apiVersion": "x"}]
    if deleting:
        m["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    return m


@pytest.mark.parametrize(("value", "digest", "problem"), [
    (D, D, None),
    (f"  {D.upper()} \n", D, None),  # case-folded and trimmed
    (None, None, "no modelhub.dev/artifact-digest annotation"),
    ("sha256:abc", None, "is not sha256:<64 hex>"),
    ("md5:" + "a" * 32, None, "is not sha256:<64 hex>"),
    ("x" * 5000, None, "is not sha256:<64 hex>"),
])
def test_declared_digest(value: str | None, digest: str | None, problem: str | None) -> None:
    d = declared_digest({"metadata": meta("w", value)})
    assert d.digest == digest
    assert (d.problem is None) if problem is None else (problem in (d.problem or ""))
    if d.problem:
        assert len(d.problem) < 300  # a hostile value is not echoed whole


OBJECTS = {
    ("Deployment", "ns", "web"): meta("web"),
    ("ReplicaSet", "ns", "web-abc"): meta("web-abc", owner=("Deployment", "web")),
    ("CronJob", "ns", "nightly"): meta("nightly"),
    ("Job", "ns", "nightly-1"): meta("nightly-1", owner=("CronJob", "nightly")),
    ("StatefulSet", "ns", "db"): meta("db", owner=("ModelVersion", "db-1-0-0")),  # not a workload owner
    ("ReplicaSet", "ns", "orphan-rs"): meta("orphan-rs", owner=("Deployment", "gone")),
}


def lookup(kind: str, ns: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((kind, ns, name))


@pytest.mark.parametrize(("ref", "m", "top"), [
    (("Pod", "ns", "p"), meta("p"), ("Pod", "ns", "p")),  # a bare Pod
    (("Pod", "ns", "p"), meta("p", owner=("ReplicaSet", "web-abc")), ("Deployment", "ns", "web")),
    (("Pod", "ns", "p"), meta("p", owner=("Job", "nightly-1")), ("CronJob", "ns", "nightly")),
    (("StatefulSet", "ns", "db"), OBJECTS[("StatefulSet", "ns", "db")], ("StatefulSet", "ns", "db")),
    (("Pod", "ns", "p"), meta("p", owner=("ReplicaSet", "orphan-rs")), None),  # its chain is being collected
    (("Pod", "ns", "p"), meta("p", deleting=True), None),  # already terminating
    (("Pod", "ns", "p"), meta("p", owner=("ReplicaSet", "web-abc"), controller=False), ("Pod", "ns", "p")),
])
def test_top_owner(ref: tuple[str, str, str], m: dict[str, Any], top: tuple[str, str, str] | None) -> None:
    assert top_owner(ref, m, lookup) == top


def test_unreadable_owner_deletes_what_is_at_hand() -> None:
    def forbidden(kind: str, ns: str, name: str) -> dict[str, Any] | None:
        raise PermissionError("403")

    assert top_owner(("Pod", "ns", "p"), meta("p", owner=("ReplicaSet", "x")), forbidden) == ("Pod", "ns", "p")


def test_an_owner_cycle_ends() -> None:
    loop = {("ReplicaSet", "ns", "a"): meta("a", owner=("ReplicaSet", "b")),
            ("ReplicaSet", "ns", "b"): meta("b", owner=("ReplicaSet", "a"))}
    assert top_owner(("ReplicaSet", "ns", "a"), loop[("ReplicaSet", "ns", "a")],
                     lambda k, n, nm: loop.get((k, n, nm))) in loop


def test_teardown_targets_are_distinct_top_owners() -> None:
    serving = [(("Pod", "ns", f"p{i}"), meta(f"p{i}", owner=("ReplicaSet", "web-abc"))) for i in range(3)]
    serving.append((("Deployment", "ns", "web"), OBJECTS[("Deployment", "ns", "web")]))
    serving.append((("Pod", "ns", "bare"), meta("bare")))
    assert teardown_targets(serving, lookup) == [("Deployment", "ns", "web"), ("Pod", "ns", "bare")]


def test_owners_among_the_serving_workloads_need_no_lookup() -> None:
    """Right after a rollout, a cache may have the Pod and its Deployment but not yet the ReplicaSet, and the API
    may not answer: the owners that also declare the artifact are enough."""
    def nothing(kind: str, ns: str, name: str) -> dict[str, Any] | None:
        raise TimeoutError("the API server does not answer")

    serving = [
        (("Pod", "ns", "p"), meta("p", owner=("ReplicaSet", "web-abc"))),
        (("ReplicaSet", "ns", "web-abc"), meta("web-abc", owner=("Deployment", "web"))),
        (("Deployment", "ns", "web"), meta("web")),
    ]
    assert teardown_targets(serving, nothing) == [("Deployment", "ns", "web")]
