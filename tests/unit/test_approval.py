import json

from modelhub.domain.approval import (
    RECORD_ANNOTATION,
    REQUEST_ANNOTATION,
    Approval,
    admit_annotations,
    seal,
    unseal,
)

KEY = b"k" * 32
DIGEST = "sha256:" + "ab" * 32


def admit(new: dict, old: dict | None = None, user: str = "alice") -> dict:
    return admit_annotations(KEY, "ns", "mv", new, old or {}, DIGEST, user, ["team-a"], "2026-01-01T00:00:00Z")


def test_request_becomes_a_sealed_record_of_the_authenticated_user() -> None:
    changes = admit({REQUEST_ANNOTATION: "true"})
    assert changes[REQUEST_ANNOTATION] is None
    approval = unseal(KEY, "ns", "mv", changes[RECORD_ANNOTATION], DIGEST)
    assert approval == Approval("alice", ("team-a",), "2026-01-01T00:00:00Z", DIGEST)


def test_a_typed_record_is_reverted_and_does_not_verify() -> None:
    forged = json.dumps({"by": "ceo", "groups": [], "at": "2026-01-01T00:00:00Z", "digest": DIGEST, "mac": "00"})
    assert admit({RECORD_ANNOTATION: forged}) == {RECORD_ANNOTATION: None}
    assert unseal(KEY, "ns", "mv", forged, DIGEST) is None


def test_record_is_bound_to_object_digest_and_key() -> None:
    record = seal(KEY, "ns", "mv", Approval("alice", (), "t", DIGEST))
    assert unseal(KEY, "ns", "mv", record, DIGEST) is not None
    assert unseal(KEY, "ns", "other", record, DIGEST) is None
    assert unseal(KEY, "ns", "mv", record, "sha256:" + "cd" * 32) is None
    assert unseal(b"x" * 32, "ns", "mv", record, DIGEST) is None
    assert unseal(KEY, "ns", "mv", record.replace("alice", "mallory"), DIGEST) is None
    assert unseal(KEY, "ns", "mv", "not json", DIGEST) is None


def test_changing_an_existing_record_reverts_but_removing_it_is_allowed() -> None:
    record = seal(KEY, "ns", "mv", Approval("alice", (), "t", DIGEST))
    tampered = record.replace("alice", "bob")
    assert admit({RECORD_ANNOTATION: tampered}, {RECORD_ANNOTATION: record}) == {RECORD_ANNOTATION: record}
    assert admit({}, {RECORD_ANNOTATION: record}) == {}
    assert admit({RECORD_ANNOTATION: record}, {RECORD_ANNOTATION: record}) == {}


def test_request_false_only_clears_the_request() -> None:
    assert admit({REQUEST_ANNOTATION: "false"}) == {REQUEST_ANNOTATION: None}
