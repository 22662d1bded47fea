"""Approvals as separation of duties: the mutating webhook's decisions and the seals, on real records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelhub.domain import approval as ap
from modelhub.domain.approval import (
    CREATOR_ANNOTATION,
    RECORD_ANNOTATION,
    REQUEST_ANNOTATION,
    Authorization,
    Creator,
    Requester,
    Review,
    Subject,
    admit,
    seal_creator,
    seal_for,
    unseal,
    unseal_creator,
    unseal_object,
)

KEY = b"k" * 32
DIGEST = "sha256:" + "ab" * 32
NOW = "2026-01-01T00:00:00Z"
SUBJECT = Subject(namespace="ns", name="mv", uid="uid-1", model="clf", version="1.0.0", digest=DIGEST)
ALLOWED, REFUSED = Authorization(True), Authorization(False, "RBAC: no rule")


def obj(subject: Subject = SUBJECT, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": subject.namespace, "name": subject.name, "uid": subject.uid,
                         "annotations": annotations or {}},
            "spec": {"model": subject.model, "version": subject.version, "artifact": {"digest": subject.digest}}}


def created_by(user: str, subject: Subject = SUBJECT) -> dict[str, str]:
    return {CREATOR_ANNOTATION: seal_creator(KEY, subject, Creator(by=user, at=NOW))}


def review(operation: str, new: dict[str, str], old: dict[str, str] | None = None, user: str = "alice",
           subject: Subject = SUBJECT) -> Review:
    return Review(operation, subject, new, old or {}, Requester(user, ("team-a",)), NOW)


def test_create_seals_the_creator_whatever_the_client_wrote() -> None:
    forged = created_by("somebody-else")[CREATOR_ANNOTATION]
    out = admit(KEY, review("CREATE", {CREATOR_ANNOTATION: forged}, user="bob"))
    creator = unseal_creator(KEY, SUBJECT, out.changes[CREATOR_ANNOTATION])
    assert creator == Creator(by="bob", at=NOW)
    assert out.warnings == ()


def test_review_from_an_admission_request_takes_the_uid_of_the_old_object() -> None:
    new = obj(Subject("ns", "mv", "", "clf", "1.0.0", DIGEST), {REQUEST_ANNOTATION: "true"})
    r = Review.of("UPDATE", new, obj(), {"username": "carol", "groups": ["g"], "uid": "u", "extra": {"k": ["v"]}}, NOW)
    assert r.subject == SUBJECT and r.asks_approval
    assert r.requester == Requester("carol", ("g",), "u", {"k": ("v",)})


@pytest.mark.parametrize(("operation", "creator", "requester", "authorization", "approved", "why"), [
    ("UPDATE", "bob", "alice", ALLOWED, True, None),
    ("CREATE", None, "alice", ALLOWED, False, "not given at creation"),  # create-and-approve in one apply
    ("UPDATE", "alice", "alice", ALLOWED, False, "author of a version cannot approve"),
    ("UPDATE", "bob", "alice", REFUSED, False, "alice may not approve modelversions.modelhub.dev in namespace ns"),
    ("UPDATE", "bob", "alice", None, False, "authorization was not checked"),
    ("UPDATE", None, "alice", ALLOWED, False, "no sealed creator record"),  # created while the webhook was down
    ("UPDATE", "bob", "", ALLOWED, False, "no authenticated user"),
])
def test_who_may_approve(operation: str, creator: str | None, requester: str, authorization: Authorization | None,
                         approved: bool, why: str | None) -> None:
    old = created_by(creator) if creator else {}
    out = admit(KEY, review(operation, {**old, REQUEST_ANNOTATION: "true"}, old, user=requester), authorization)
    assert out.changes[REQUEST_ANNOTATION] is None  # the request never stays
    record = out.changes.get(RECORD_ANNOTATION)
    if approved:
        assert out.warnings == ()
        a = unseal_object(KEY, obj(annotations={RECORD_ANNOTATION: str(record)}))
        assert a is not None and (a.by, a.groups, a.at, a.uid, a.model, a.version, a.digest) == (
            requester, ("team-a",), NOW, "uid-1", "clf", "1.0.0", DIGEST)
    else:
        assert record is None
        assert len(out.warnings) == 1 and why and why in out.warnings[0], out.warnings
        assert out.warnings[0].startswith("modelversion ns/mv is not approved: ")


def test_authorization_is_asked_only_when_nothing_else_refuses() -> None:
    assert ap.refusal_before_authorization(KEY, review("UPDATE", {REQUEST_ANNOTATION: "true"}, created_by("bob")))\
        is None
    assert ap.refusal_before_authorization(KEY, review("UPDATE", {}, created_by("alice"))) is not None
    no_digest = Subject("ns", "mv", "uid-1", "clf", "1.0.0", "")
    assert "artifact digest" in str(ap.refusal_before_authorization(
        KEY, review("UPDATE", {}, created_by("bob", no_digest), subject=no_digest)))


@pytest.mark.parametrize("other", [
    Subject("ns", "mv", "uid-2", "clf", "1.0.0", DIGEST),  # deleted and re-created under the same name
    Subject("ns", "mv", "uid-1", "other", "1.0.0", DIGEST),
    Subject("ns", "mv", "uid-1", "clf", "2.0.0", DIGEST),
    Subject("ns", "mv", "uid-1", "clf", "1.0.0", "sha256:" + "cd" * 32),
    Subject("ns", "other", "uid-1", "clf", "1.0.0", DIGEST),
    Subject("ns2", "mv", "uid-1", "clf", "1.0.0", DIGEST),
])
def test_a_record_approves_only_the_object_it_was_sealed_for(other: Subject) -> None:
    record = seal_for(KEY, SUBJECT, "alice", (), NOW)
    assert unseal_object(KEY, obj(annotations={RECORD_ANNOTATION: record})) is not None
    assert unseal_object(KEY, obj(other, {RECORD_ANNOTATION: record})) is None


@pytest.mark.parametrize("record", [
    None, "", "not json", "[]", "{}", "null", "[" * 10_000 + "]" * 10_000,
    json.dumps({"by": "ceo", "groups": [], "at": NOW, "digest": DIGEST, "uid": "uid-1", "model": "clf",
                "version": "1.0.0", "mac": "00"}),
    json.dumps({"by": 1, "mac": "00"}),
    json.dumps({"by": "a", "groups": "notalist", "at": NOW, "digest": DIGEST, "mac": "00"}),
    "x" * (ap.MAX_RECORD_BYTES + 1),
])
def test_junk_or_forged_records_approve_nothing(record: str | None) -> None:
    annotations = {} if record is None else {RECORD_ANNOTATION: record}
    assert unseal_object(KEY, obj(annotations=annotations)) is None
    assert unseal(KEY, "ns", "mv", record, DIGEST) is None
    assert unseal_creator(KEY, SUBJECT, record) is None


def test_seals_need_the_key_and_are_not_interchangeable() -> None:
    record = seal_for(KEY, SUBJECT, "alice", (), NOW)
    assert unseal_object(b"x" * 32, obj(annotations={RECORD_ANNOTATION: record})) is None
    assert unseal_object(KEY, obj(annotations={RECORD_ANNOTATION: record.replace("alice", "mallory")})) is None
    creator = created_by("alice")[CREATOR_ANNOTATION]
    assert unseal_object(KEY, obj(annotations={RECORD_ANNOTATION: creator})) is None  # a creator record is no approval
    assert unseal_creator(KEY, SUBJECT, record) is None  # and an approval record names no creator


def test_compatibility_unseal_checks_the_seal_name_and_digest() -> None:
    record = seal_for(KEY, SUBJECT, "alice", ("g",), NOW)
    assert unseal(KEY, "ns", "mv", record, DIGEST) is not None
    assert unseal(KEY, "ns", "other", record, DIGEST) is None
    assert unseal(KEY, "ns", "mv", record, "sha256:" + "cd" * 32) is None


@pytest.mark.parametrize(("new", "old", "expected"), [
    # a typed or changed record is put back as it was; removing one (withdrawing approval) is allowed
    ({RECORD_ANNOTATION: "forged"}, {}, {RECORD_ANNOTATION: None}),
    ({RECORD_ANNOTATION: "tampered"}, {RECORD_ANNOTATION: "sealed"}, {RECORD_ANNOTATION: "sealed"}),
    ({}, {RECORD_ANNOTATION: "sealed"}, {}),
    ({RECORD_ANNOTATION: "sealed"}, {RECORD_ANNOTATION: "sealed"}, {}),
    # the creator record cannot be changed or removed after CREATE, nor added later
    ({CREATOR_ANNOTATION: "me"}, {CREATOR_ANNOTATION: "bob"}, {CREATOR_ANNOTATION: "bob"}),
    ({}, {CREATOR_ANNOTATION: "bob"}, {CREATOR_ANNOTATION: "bob"}),
    ({CREATOR_ANNOTATION: "me"}, {}, {CREATOR_ANNOTATION: None}),
    # a request that is not "true" is only cleared
    ({REQUEST_ANNOTATION: "false"}, {}, {REQUEST_ANNOTATION: None}),
    ({"other/x": "y"}, {}, {}),
])
def test_update_keeps_the_webhooks_annotations(new: dict[str, str], old: dict[str, str],
                                               expected: dict[str, str | None]) -> None:
    out = admit(KEY, review("UPDATE", new, old), ALLOWED)
    assert out.changes == expected and out.warnings == ()
