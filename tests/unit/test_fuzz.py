"""Property-based fuzzing (hypothesis) of what a tenant or a store hands the operator: signature bundles (raw
bytes, mutated real bundles, and arbitrary statements *signed by a trusted key*, so the statement parser behind
the signature check is reached), the bundle pre-check, and the admission decision on annotations.

Only the project's own errors may escape, each with a reason from its list and a message; the catch-all of the
signing module ("could not be processed") counts as a failure too: it means an input nobody handled.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (default: 200 examples per property, derandomized, in the unit
tests) and ``fuzz`` (``make fuzz``: 10,000 examples per property, random).
"""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelhub.adapters.bundles import BundleSettings, Refusal, check_bundle_bytes
from modelhub.domain import approval, signing

settings.register_profile(
    "ci", max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
settings.register_profile(
    "fuzz", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REASONS = {v for k, v in vars(signing.Reason).items() if k.isupper()}
PRIVATE, PUBLIC = signing.generate_private_key("p256")
OTHER_PRIVATE, OTHER_PUBLIC = signing.generate_private_key("p384")
TRUSTED = {"team/release.pub": PUBLIC, "team/other.pub": OTHER_PUBLIC}


def _real_bundle(shards: bool) -> bytes:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="fuzz-model-"))
    (root / "weights").mkdir()
    (root / "weights" / "a.bin").write_bytes(b"a" * 100)
    (root / "config.json").write_bytes(b"{}")
    (root / "empty").write_bytes(b"")
    return signing.sign_model_dir(root, PRIVATE, **({"shard_size": 30} if shards else {}))  # type: ignore[arg-type]


REAL = {False: _real_bundle(False), True: _real_bundle(True)}
REAL_STATEMENT = {k: json.loads(base64.b64decode(json.loads(v)["dsseEnvelope"]["payload"])) for k, v in REAL.items()}


def verify_only_own_errors(data: bytes) -> signing.VerifiedSignature | None:
    try:
        return signing.verify_bundle(data, TRUSTED)
    except signing.SignatureError as exc:
        assert exc.reason in REASONS, exc.reason
        assert exc.message and isinstance(exc.message, str)
        assert "could not be processed" not in exc.message, exc.message  # the catch-all: an unhandled input
        return None


# ------------------------------------------------------------------------------------------ strategies

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["", "sha256", "blake2b", "files", "shards", "a:0:30", "../x", "/abs", "a//b", ".", "0" * 64,
                     signing.BUNDLE_MEDIA_TYPE, signing.PAYLOAD_TYPE, signing.PREDICATE_TYPE,
                     signing.STATEMENT_TYPE]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, doc: Any, rounds: int = 3) -> Any:
    """`doc` with up to `rounds` edits: a value replaced, a key deleted or added, a list item duplicated."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(min_value=1, max_value=rounds))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            if draw(st.booleans()):
                doc = draw(json_values)
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(json_values)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return doc


# ------------------------------------------------------------------------------------------- properties


@given(st.binary(max_size=2048))
def test_raw_bytes(data: bytes) -> None:
    assert verify_only_own_errors(data) is None


@given(st.sampled_from([False, True]).flatmap(lambda shards: mutated(json.loads(REAL[shards]))))
def test_mutated_bundle(doc: Any) -> None:
    verify_only_own_errors(json.dumps(doc).encode())


@given(st.sampled_from([False, True]).flatmap(lambda shards: mutated(REAL_STATEMENT[shards], rounds=4)),
       st.sampled_from([PRIVATE, OTHER_PRIVATE]))
def test_signed_mutated_statement(statement: Any, key: bytes) -> None:
    """A trusted key signed whatever this is: the statement parser must still refuse cleanly."""
    payload = json.dumps(statement, indent=2).encode()
    result = verify_only_own_errors(signing.sign_statement(payload, key))
    if result is not None:  # accepted: then it is self-consistent
        assert result.subject_digest == signing.subject_digest(result.resources)
        assert all(signing.Resource(r.name, r.algorithm, r.digest) == r for r in result.resources)


@given(st.binary(max_size=512) | json_values.map(lambda v: json.dumps(v).encode()))
def test_signed_arbitrary_payload(payload: bytes) -> None:
    verify_only_own_errors(signing.sign_statement(payload, PRIVATE))


@given(st.binary(max_size=4096) | json_values.map(lambda v: json.dumps(v).encode())
       | st.sampled_from([False, True]).flatmap(lambda s: mutated(json.loads(REAL[s]))).map(lambda d: json.dumps(d).encode()))
def test_bundle_precheck(data: bytes) -> None:
    """The operator's pre-check never raises, and whatever it lets through the verifier handles cleanly."""
    result = check_bundle_bytes(data, "https://store.example/model.sig", BundleSettings(max_bytes=4096))
    if result is None:
        verify_only_own_errors(data)
    else:
        assert isinstance(result, Refusal) and result.reason and result.message
        if result.reason == "MalformedBundle":  # never quotes what it refused
            assert result.message.startswith("the content at https://store.example/model.sig is not a signature")


# ------------------------------------------------------------------------------------------- admission

KEY = b"k" * 32
annotation_keys = st.sampled_from([approval.REQUEST_ANNOTATION, approval.RECORD_ANNOTATION, approval.CREATOR_ANNOTATION,
                                  "other/x", ""])
annotation_values = st.one_of(
    st.text(max_size=60), st.sampled_from(["true", "TRUE", "yes", "1", "false", "", "{}", "[]", "null"]),
    json_values.map(json.dumps),
)
annotations = st.dictionaries(annotation_keys, annotation_values, max_size=4)


SUBJECT = approval.Subject(namespace="ns", name="mv", uid="u-1", model="m", version="1.0.0",
                           digest="sha256:" + "a" * 64)


@st.composite
def sealed_record(draw: st.DrawFn) -> str:
    subject = draw(st.sampled_from([SUBJECT, approval.Subject("ns", "mv", "u-2", "m", "1.0.0", "x")]))
    record = approval.seal_for(KEY, subject, draw(st.text(max_size=20)),
                               tuple(draw(st.lists(st.text(max_size=8), max_size=3))), "2026-01-01T00:00:00Z")
    return draw(st.sampled_from([record, record[:-3] + "}", record.replace('"mac"', '"MAC"')]))


@given(annotations, annotations, st.one_of(sealed_record(), annotation_values), st.text(max_size=30),
       st.lists(st.text(max_size=10), max_size=3), st.sampled_from(["CREATE", "UPDATE", "DELETE", ""]),
       st.sampled_from([None, approval.Authorization(True), approval.Authorization(False, "no")]),
       st.one_of(st.none(), st.text(max_size=30)))
def test_admit(new: dict[str, str], old: dict[str, str], record: str, user: str, groups: list[str], operation: str,
               authorization: approval.Authorization | None, creator: str | None) -> None:
    """Never raises; only ever writes a record sealed by the operator's key for the authenticated user (never
    at CREATE, never for the creator, only when authorized), or restores the old one, or removes one."""
    if len(new) % 2:
        new = {**new, approval.RECORD_ANNOTATION: record}
    if creator is not None:
        old = {**old, approval.CREATOR_ANNOTATION: approval.seal_creator(KEY, SUBJECT, approval.Creator(creator, "t"))}
    review = approval.Review(operation, SUBJECT, new, old, approval.Requester(user, tuple(groups)),
                             "2026-01-01T00:00:00Z")
    result = approval.admit(KEY, review, authorization)
    assert isinstance(result.changes, dict) and all(isinstance(w, str) for w in result.warnings)
    for k, v in result.changes.items():
        assert k in (approval.REQUEST_ANNOTATION, approval.RECORD_ANNOTATION, approval.CREATOR_ANNOTATION)
        assert v is None or isinstance(v, str)
    written = result.changes.get(approval.RECORD_ANNOTATION)
    if written is not None and written != old.get(approval.RECORD_ANNOTATION):
        obj = {"metadata": {"namespace": "ns", "name": "mv", "uid": "u-1", "annotations": {
            approval.RECORD_ANNOTATION: written}}, "spec": {"model": "m", "version": "1.0.0",
                                                          "artifact": {"digest": SUBJECT.digest}}}
        sealed = approval.unseal_object(KEY, obj)
        assert sealed is not None and sealed.by == user and list(sealed.groups) == groups
        assert operation == "UPDATE" and authorization is not None and authorization.allowed
        assert creator is not None and creator != user


@given(st.one_of(sealed_record(), annotation_values, st.none()), st.sampled_from(["sha256:" + "a" * 64, "x"]))
def test_unseal_never_raises(record: str | None, digest: str) -> None:
    result = approval.unseal(KEY, "ns", "mv", record, digest)
    assert result is None or result.digest == digest
    obj = {"metadata": {"namespace": "ns", "name": "mv", "uid": "u-1", "annotations": {
        approval.RECORD_ANNOTATION: record}}, "spec": {"model": "m", "version": "1.0.0", "artifact": {"digest": digest}}}
    found = approval.unseal_object(KEY, obj)
    assert found is None or (found.uid, found.digest) == ("u-1", digest)


@pytest.mark.parametrize("depth", [100, 100_000])
def test_unseal_deeply_nested_record(depth: int) -> None:
    """An annotation can hold 256 KiB: a record nested that deep is no approval, not a crash."""
    assert approval.unseal(KEY, "ns", "mv", "[" * depth + "]" * depth, "x") is None
