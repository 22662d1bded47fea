"""Signature verification end to end: real keys and bundles, applied with kubectl, verified by the operator process.

What a platform engineer sees is asserted: the `SignatureVerified` condition (status, reason, a message naming
what to fix), `status.verified`, `kubectl wait`, and the Events recorded on the ModelVersion. Bundles come from
every place the operator fetches them: a ConfigMap key, `model.sig` in a file:// directory, an HTTPS server
(its own CA) and an S3 server (moto). The real `model_signing` tool signs one model.

This module starts its operator with the shared `start_operator`, adding the environment that makes it trust the
test CA and find the S3 server (`sig_servers.RemoteStores.env`); nothing leaks into other modules' operators.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import start_operator, stop_operator
from tests.e2e.kubehelp import ROOT, apply, condition, get, kubectl, unique, wait_condition, wait_for
from tests.e2e.sig_servers import RemoteStores, remote_stores
from tests.e2e.signed import Key, Signed, keyring, make_model, model_manifest, new_key, version_manifest
from tests.unit.store_servers import make_tls_files, serve_directory

WAIT = 30  # seconds, per wait
VENV_BIN = Path(sys.executable).parent


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteStores]:
    """A test CA for HTTPS and a port for the S3 server (started on first upload)."""
    s = remote_stores(tmp_path_factory.mktemp("stores"), ready=os.environ.get("MODELHUB_OPERATOR") != "external")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def operator(crds: None, stores: RemoteStores, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shared fixture's operator process, told to trust the test CA and where the S3 server is."""
    if not stores.ready:
        yield Path("/dev/null")
        return
    log_dir = Path(os.environ.get("MODELHUB_LOG_DIR") or tmp_path_factory.mktemp("operator"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "operator-test_signatures.log"
    proc = start_operator(log_path, **stores.env)
    try:
        yield log_path
    finally:
        stop_operator(proc)
        print(f"\noperator log: {log_path}")


def need_remote(stores: RemoteStores) -> None:
    if not stores.ready:
        pytest.skip("MODELHUB_OPERATOR=external: that operator was not told about the test CA and S3 server")


# ------------------------------------------------------------------------------------------------ helpers


def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def trusted_model(ns: str, model: str, keys: dict[str, Key], ring: str = "ring") -> None:
    """A keyring ConfigMap and a Model that trusts it."""
    keyring(ns, ring, keys)
    apply(model_manifest(model, [ring]), ns)


def version(ns: str, name: str) -> dict[str, Any]:
    obj = get("modelversion", name, ns)
    assert obj, f"ModelVersion {ns}/{name} is gone"
    return obj


def cond(obj: dict[str, Any], ctype: str = "SignatureVerified") -> dict[str, Any]:
    c = condition(obj, ctype)
    assert c, f"no {ctype} condition in {obj.get('status')}"
    return c


def wait_verified(ns: str, name: str, status: str = "True", reason: str | None = None) -> dict[str, Any]:
    return wait_condition("modelversion", name, ns, "SignatureVerified", status, reason, timeout=WAIT)


def assert_verified(obj: dict[str, Any], signed: Signed, key: Key, key_name: str, files: int = 2) -> None:
    verified = obj["status"]["verified"]
    assert verified["digest"] == signed.digest
    assert verified["keyName"] == key_name
    assert verified["keyFingerprint"] == key.fingerprint
    assert verified["files"] == files
    at = dt.datetime.strptime(verified["verifiedAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - at).total_seconds()) < 300
    c = cond(obj)
    assert c["status"] == "True" and c["reason"] == "Verified"
    assert key_name in c["message"]
    assert c["observedGeneration"] == obj["metadata"]["generation"]


def events_of(ns: str, name: str) -> list[dict[str, Any]]:
    """The Events about one object, as `kubectl get events --field-selector involvedObject.name=` shows them."""
    out = kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json")
    return json.loads(out.stdout)["items"]


def event_with(ns: str, name: str, reason: str, text: str) -> dict[str, Any] | None:
    for e in events_of(ns, name):
        if e.get("reason") == reason and text in (e.get("message") or ""):
            return e
    return None


def flip_signature_byte(bundle: bytes) -> bytes:
    doc = json.loads(bundle)
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[len(sig) // 2] ^= 0x01
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return json.dumps(doc).encode()


# ------------------------------------------------------------------------------------------ where it lives


def test_bundle_in_a_configmap_key_verifies(operator: Path, namespace: str, tmp_path: Path) -> None:
    key = new_key()
    signed = make_model(tmp_path, "sentiment", key, write_sig=False)
    trusted_model(namespace, "sentiment", {"release": key})
    apply(configmap("sentiment-sig", {"bundle.json": signed.bundle.decode()}), namespace)
    apply(version_manifest("sentiment-1-0-0", "sentiment", "1.0.0", signed,
                           signature={"configMapRef": {"name": "sentiment-sig", "key": "bundle.json"}}), namespace)

    kubectl("wait", "--for=condition=SignatureVerified", "modelversion/sentiment-1-0-0", "-n", namespace,
            f"--timeout={WAIT}s", timeout=WAIT + 10)
    obj = version(namespace, "sentiment-1-0-0")
    assert_verified(obj, signed, key, "ring/release")
    assert key.fingerprint[:16] in cond(obj)["message"]
    table = kubectl("get", "modelversion", "sentiment-1-0-0", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert row.split()[header.split().index("VERIFIED")] == "True"


def test_model_sig_in_a_file_directory_verifies(operator: Path, namespace: str, tmp_path: Path) -> None:
    key = new_key("p384")
    signed = make_model(tmp_path, "resnet", key, files={
        "weights/part-0.bin": b"\x00" * 4096, "weights/part-1.bin": b"\x01" * 4096, "config.json": b"{}",
    })
    trusted_model(namespace, "resnet", {"ci": key})
    apply(version_manifest("resnet-2-1-0", "resnet", "2.1.0", signed), namespace)
    obj = wait_verified(namespace, "resnet-2-1-0")
    assert_verified(obj, signed, key, "ring/ci", files=3)


def test_model_sig_over_https_verifies(operator: Path, stores: RemoteStores, namespace: str, tmp_path: Path) -> None:
    need_remote(stores)
    key = new_key()
    signed = make_model(tmp_path / "www", "bert", key)
    trusted_model(namespace, "bert", {"release": key})
    with stores.https(tmp_path / "www") as served:
        version = version_manifest("bert-1-0-0", "bert", "1.0.0", signed)
        version["spec"]["artifact"]["uri"] = f"{served.url}/bert"
        apply(version, namespace)
        obj = wait_verified(namespace, "bert-1-0-0")
        assert "/bert/model.sig" in served.requests  # fetched over https, beside the artifact
    assert_verified(obj, signed, key, "ring/release")


def test_an_https_server_with_an_untrusted_certificate_is_refused(
    operator: Path, stores: RemoteStores, namespace: str, tmp_path: Path
) -> None:
    need_remote(stores)
    key = new_key()
    signed = make_model(tmp_path / "www", "bert", key)
    trusted_model(namespace, "bert", {"release": key})
    rogue = make_tls_files(tmp_path / "rogue-ca")  # a CA nobody told the operator about
    with serve_directory(tmp_path / "www", tls=rogue) as served:
        version = version_manifest("bert-1-0-0", "bert", "1.0.0", signed)
        version["spec"]["artifact"]["uri"] = f"{served.url}/bert"
        apply(version, namespace)
        obj = wait_verified(namespace, "bert-1-0-0", "False", "BundleUnreachable")
    message = cond(obj)["message"]
    assert "CERTIFICATE_VERIFY_FAILED" in message and f"{served.url}/bert/model.sig" in message, message


def test_model_sig_in_s3_verifies(operator: Path, stores: RemoteStores, namespace: str, tmp_path: Path) -> None:
    need_remote(stores)
    key = new_key()
    signed = make_model(tmp_path, "whisper", key)
    keys = stores.s3_upload("models-e2e", f"{namespace}/whisper", signed.path)
    assert f"{namespace}/whisper/model.sig" in keys
    trusted_model(namespace, "whisper", {"release": key})
    version = version_manifest("whisper-1-0-0", "whisper", "1.0.0", signed)
    version["spec"]["artifact"]["uri"] = f"s3://models-e2e/{namespace}/whisper"
    apply(version, namespace)
    obj = wait_verified(namespace, "whisper-1-0-0")
    assert_verified(obj, signed, key, "ring/release")

    # A prefix where nothing was uploaded: the message names the object the operator looked for.
    version = version_manifest("whisper-1-0-1", "whisper", "1.0.1", signed)
    version["spec"]["artifact"]["uri"] = f"s3://models-e2e/{namespace}/not-uploaded"
    apply(version, namespace)
    obj = wait_verified(namespace, "whisper-1-0-1", "False", "BundleNotFound")
    message = cond(obj)["message"]
    assert f"s3://models-e2e/{namespace}/not-uploaded/model.sig" in message, message


def test_s3_bundles_use_the_credentials_the_version_names(operator: Path, stores: RemoteStores, namespace: str,
                                                          tmp_path: Path) -> None:
    """spec.artifact.credentialsSecretRef: the operator fetches with that Secret of the version's namespace, not
    with its own identity (which this module's operator has): no Secret, no fetch."""
    need_remote(stores)
    key = new_key()
    signed = make_model(tmp_path, "tts", key)
    stores.s3_upload("models-e2e", f"{namespace}/tts", signed.path)
    trusted_model(namespace, "tts", {"release": key})
    version = version_manifest("tts-1-0-0", "tts", "1.0.0", signed)
    version["spec"]["artifact"].update(uri=f"s3://models-e2e/{namespace}/tts", credentialsSecretRef={"name": "s3"})
    apply(version, namespace)
    obj = wait_verified(namespace, "tts-1-0-0", "False", "CredentialsNotFound")
    assert f"{namespace}/s3" in cond(obj)["message"]
    kubectl("-n", namespace, "create", "secret", "generic", "s3", "--from-literal=AWS_ACCESS_KEY_ID=tenant",
            "--from-literal=AWS_SECRET_ACCESS_KEY=tenant-secret", "--from-literal=AWS_REGION=us-east-1",
            f"--from-literal=AWS_ENDPOINT_URL={stores.s3_endpoint}")
    obj = wait_verified(namespace, "tts-1-0-0")  # (a refused fetch is retried on the bundle backoff: 5 s first)
    assert_verified(obj, signed, key, "ring/release")


# ------------------------------------------------------------------------------------------------ refusals

# name -> (reason, substrings of the message a person can act on; "{...}" filled from the scenario)
REFUSALS: dict[str, tuple[str, tuple[str, ...]]] = {
    "untrusted": ("UntrustedKey", ("{other_fingerprint}", "ring/release")),
    "mismatch": ("DigestMismatch", ("{signed_digest}", "{pinned}", "spec.artifact.digest")),
    "truncated": ("MalformedBundle", ("is not a signature bundle", "not JSON")),
    "flipped": ("BadSignature", ("ring/release", "altered")),
    "nobundle": ("BundleNotFound", ("{nobundle_path}/model.sig",)),
    "nocm": ("BundleNotFound", ("{ns}/missing-sig",)),
    "nomodel": ("ModelNotFound", ("{ns}/ghost",)),
}


@pytest.fixture(scope="module")
def refusals(operator: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One namespace holding one ModelVersion per way a signature can be refused, applied at once."""
    ns = unique("e2e-sigref")
    kubectl("create", "namespace", ns)
    root = tmp_path_factory.mktemp("refusals")
    key, other = new_key(), new_key()
    trusted_model(ns, "guarded", {"release": key})
    good = make_model(root, "good", key, write_sig=False)
    by_other = make_model(root, "by-other", other)
    no_bundle = make_model(root, "no-bundle", key, write_sig=False)
    pinned = "sha256:" + hashlib.sha256(b"some other artifact").hexdigest()
    apply([
        configmap("bundles", {
            "truncated": good.bundle[: len(good.bundle) // 2].decode(),
            "flipped": flip_signature_byte(good.bundle).decode(),
            "good": good.bundle.decode(),
        }),
        version_manifest("untrusted", "guarded", "1.0.0", by_other),
        version_manifest("mismatch", "guarded", "1.0.1", Signed(good.path, pinned, good.bundle),
                         signature={"configMapRef": {"name": "bundles", "key": "good"}}),
        version_manifest("truncated", "guarded", "1.0.2", good,
                         signature={"configMapRef": {"name": "bundles", "key": "truncated"}}),
        version_manifest("flipped", "guarded", "1.0.3", good,
                         signature={"configMapRef": {"name": "bundles", "key": "flipped"}}),
        version_manifest("nobundle", "guarded", "1.0.4", no_bundle),
        version_manifest("nocm", "guarded", "1.0.5", good,
                         signature={"configMapRef": {"name": "missing-sig", "key": "model.sig"}}),
        version_manifest("nomodel", "ghost", "1.0.0", good,
                         signature={"configMapRef": {"name": "bundles", "key": "good"}}),
    ], ns)
    facts = {"ns": ns, "other_fingerprint": other.fingerprint, "signed_digest": good.digest, "pinned": pinned,
             "nobundle_path": str(no_bundle.path)}
    yield facts
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refused_signature_says_why(refusals: dict[str, str], name: str) -> None:
    ns = refusals["ns"]
    reason, texts = REFUSALS[name]
    obj = wait_verified(ns, name, "False", reason)
    c = cond(obj)
    for text in texts:
        assert text.format(**refusals) in c["message"], c["message"]
    assert "verified" not in obj["status"]
    # A refused version is never available.
    available = cond(obj, "Available")
    assert available["status"] == "False" and available["reason"] == reason


def test_missing_pieces_arriving_later_verify(refusals: dict[str, str]) -> None:
    """The missing signature ConfigMap and the missing Model show up: the versions verify without a touch."""
    ns = refusals["ns"]
    wait_verified(ns, "nocm", "False", "BundleNotFound")
    wait_verified(ns, "nomodel", "False", "ModelNotFound")
    bundle = kubectl("get", "configmap", "bundles", "-n", ns, "-o", "jsonpath={.data.good}").stdout
    apply(configmap("missing-sig", {"model.sig": bundle}), ns)
    apply(model_manifest("ghost", ["ring"]), ns)
    wait_verified(ns, "nocm")
    obj = wait_verified(ns, "nomodel")
    assert obj["status"]["verified"]["keyName"] == "ring/release"


# --------------------------------------------------------------------------------------------- key rotation


def test_removing_a_key_from_the_keyring_revokes_trust_and_restoring_it_restores_it(
    operator: Path, namespace: str, tmp_path: Path
) -> None:
    old, new = new_key(), new_key()
    signed = make_model(tmp_path, "ranker", old)
    trusted_model(namespace, "ranker", {"old": old, "new": new})
    apply(version_manifest("ranker-1-0-0", "ranker", "1.0.0", signed), namespace)
    obj = wait_verified(namespace, "ranker-1-0-0")
    assert obj["status"]["verified"]["keyName"] == "ring/old"
    verified_at = cond(obj)["lastTransitionTime"]

    keyring(namespace, "ring", {"new": new})  # rotate the old key out
    obj = wait_verified(namespace, "ranker-1-0-0", "False", "UntrustedKey")
    c = cond(obj)
    assert old.fingerprint in c["message"] and "ring/new" in c["message"]
    assert "verified" not in obj["status"]
    assert c["lastTransitionTime"] >= verified_at

    keyring(namespace, "ring", {"old": old, "new": new})  # and back in
    obj = wait_verified(namespace, "ranker-1-0-0")
    assert obj["status"]["verified"]["keyFingerprint"] == old.fingerprint


def test_an_emptied_keyring_says_so(operator: Path, namespace: str, tmp_path: Path) -> None:
    key = new_key()
    signed = make_model(tmp_path, "tagger", key)
    trusted_model(namespace, "tagger", {"release": key})
    apply(version_manifest("tagger-1-0-0", "tagger", "1.0.0", signed), namespace)
    wait_verified(namespace, "tagger-1-0-0")
    kubectl("patch", "configmap", "ring", "-n", namespace, "--type=json", "-p", '[{"op":"remove","path":"/data"}]')
    obj = wait_verified(namespace, "tagger-1-0-0", "False", "UntrustedKey")
    message = cond(obj)["message"]
    assert f"keyring ConfigMap {namespace}/ring holds no keys" in message, message


def test_a_broken_entry_in_the_keyring_does_not_hide_the_good_keys(
    operator: Path, namespace: str, tmp_path: Path
) -> None:
    key = new_key()
    signed = make_model(tmp_path, "parser", key)
    keyring(namespace, "ring", {"release": key})
    kubectl("patch", "configmap", "ring", "-n", namespace, "--type=merge",
            "-p", json.dumps({"data": {"README": "keys of the parser team, one PEM per key"}}))
    apply(model_manifest("parser", ["ring"]), namespace)
    apply(version_manifest("parser-1-0-0", "parser", "1.0.0", signed), namespace)
    obj = wait_verified(namespace, "parser-1-0-0")
    assert obj["status"]["verified"]["keyName"] == "ring/release"
    # The stray entry is named where it matters: when no key of the ring verifies a version.
    stranger = make_model(tmp_path, "parser-other", new_key())
    apply(version_manifest("parser-1-0-1", "parser", "1.0.1", stranger), namespace)
    obj = wait_verified(namespace, "parser-1-0-1", "False", "UntrustedKey")
    message = cond(obj)["message"]
    assert f"{namespace}/ring key 'README' is not a PEM public key" in message, message


# ----------------------------------------------------------------------------------------------- interop


def test_a_model_signed_by_the_model_signing_tool_verifies(operator: Path, namespace: str, tmp_path: Path) -> None:
    key = new_key("p384")
    model_dir = tmp_path / "llama"
    (model_dir / "tokenizer").mkdir(parents=True)
    (model_dir / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (model_dir / "tokenizer" / "vocab.txt").write_text("hello\nworld\n")
    (model_dir / "config.json").write_text('{"hidden": 8}')
    private, public = tmp_path / "signer.key", tmp_path / "signer.pub"
    private.write_bytes(key.private)
    public.write_bytes(key.public)
    sig = model_dir / "model.sig"
    subprocess.run([str(VENV_BIN / "model_signing"), "sign", "key", "--private_key", str(private),
                    "--signature", str(sig), str(model_dir)], check=True, capture_output=True, timeout=60)
    # The digest to pin, as a user gets it (the bundle inside the directory is left out, as the signer did).
    digest = subprocess.run([str(VENV_BIN / "modelhub"), "digest", "--signature", str(sig), str(model_dir)],
                            check=True, capture_output=True, text=True, timeout=60, cwd=ROOT).stdout.strip()
    statement = json.loads(base64.b64decode(json.loads(sig.read_bytes())["dsseEnvelope"]["payload"]))
    assert digest == "sha256:" + statement["subject"][0]["digest"]["sha256"]

    trusted_model(namespace, "llama", {"release": key})
    signed = Signed(model_dir, digest, sig.read_bytes())
    apply(version_manifest("llama-3-0-0", "llama", "3.0.0", signed), namespace)
    obj = wait_verified(namespace, "llama-3-0-0")
    assert_verified(obj, signed, key, "ring/release", files=3)
    # model_signing's key hint is the sha256 of the public PEM it was given.
    assert obj["status"]["verified"]["keyFingerprint"] == hashlib.sha256(public.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------- events


def test_signature_transitions_are_recorded_as_events(operator: Path, namespace: str, tmp_path: Path) -> None:
    key = new_key()
    signed = make_model(tmp_path, "summarizer", key)
    keyring(namespace, "ring", {"release": key})
    # The version first names a Model that does not exist yet: refused, then verified once the Model appears.
    apply(version_manifest("summarizer-1-0-0", "summarizer", "1.0.0", signed), namespace)
    wait_verified(namespace, "summarizer-1-0-0", "False", "ModelNotFound")
    apply(model_manifest("summarizer", ["ring"]), namespace)
    wait_verified(namespace, "summarizer-1-0-0")

    refused = wait_for(lambda: event_with(namespace, "summarizer-1-0-0", "ModelNotFound", "SignatureVerified=False"),
                       WAIT, what="a ModelNotFound Event")
    assert refused and refused["type"] == "Warning"
    assert f"{namespace}/summarizer" in refused["message"]
    verified = wait_for(lambda: event_with(namespace, "summarizer-1-0-0", "Verified", "SignatureVerified=True"),
                        WAIT, what="a Verified Event")
    assert verified and verified["type"] == "Normal"
    assert "ring/release" in verified["message"]
    assert verified["involvedObject"]["kind"] == "ModelVersion"
    assert verified["involvedObject"]["uid"] == version(namespace, "summarizer-1-0-0")["metadata"]["uid"]
    # The same Event through events.k8s.io, as newer tools read it.
    items = json.loads(kubectl("get", "events.events.k8s.io", "-n", namespace, "-o", "json").stdout)["items"]
    assert any(e.get("reason") == "Verified" and e["regarding"]["name"] == "summarizer-1-0-0"
               and e.get("reportingController") for e in items)
    assert cond(version(namespace, "summarizer-1-0-0"))["status"] == "True"


# ------------------------------------------------------------------------------------- a bundle that arrives


def test_a_bundle_published_after_the_version_verifies(operator: Path, namespace: str, tmp_path: Path) -> None:
    """CI applies the ModelVersion, the upload of model.sig finishes a moment later: no manual nudge needed."""
    key = new_key()
    signed = make_model(tmp_path, "detector", key, write_sig=False)
    trusted_model(namespace, "detector", {"release": key})
    apply(version_manifest("detector-1-0-0", "detector", "1.0.0", signed), namespace)
    wait_verified(namespace, "detector-1-0-0", "False", "BundleNotFound")
    (signed.path / "model.sig").write_bytes(signed.bundle)
    wait_verified(namespace, "detector-1-0-0")
