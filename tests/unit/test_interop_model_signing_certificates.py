"""Interoperability of the OMS certificate method with the real `model_signing` package (1.1.x): bundles signed
with a certificate of a real CA -> intermediate -> signer PKI travel both ways, through the APIs and the
command lines, and both tools refuse the same untrusted chains and tampering.

One known difference, by design: model_signing (OpenSSL without partial chains) needs the chain to end at a
self-signed root it trusts; modelhub treats every trusted certificate as an anchor, so trusting only the
intermediate is enough for us (tested below).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.unit.pki import Pki, der, key_usage

from modelhub.domain import signing

model_signing = pytest.importorskip("model_signing")
X509StoreContextError = pytest.importorskip("OpenSSL.crypto").X509StoreContextError

pytestmark = pytest.mark.interop

SHARD = 1000
CONFIGS = [
    pytest.param("files", "sha256", id="files-sha256"),
    pytest.param("shards", "blake2b", id="shards-blake2b"),
]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


@pytest.fixture
def files(pki: Pki, tmp_path: Path) -> dict[str, Path]:
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    return pki.write(pki_dir, pki.signer())


def ms_hashing(method: str, algorithm: str):
    alg = "blake2" if algorithm == "blake2b" else algorithm
    hc = model_signing.hashing.Config()
    if method == "files":
        return hc.use_file_serialization(hashing_algorithm=alg)
    return hc.use_shard_serialization(hashing_algorithm=alg, shard_size=SHARD)


def ms_sign(model: Path, f: dict[str, Path], sig: Path, method: str = "files", algorithm: str = "sha256",
            chain: tuple[str, ...] = ("intermediate", "root")) -> None:
    model_signing.signing.Config().use_certificate_signer(
        private_key=f["key"], signing_certificate=f["cert"], certificate_chain=[f[c] for c in chain],
    ).set_hashing_config(ms_hashing(method, algorithm)).sign(model, sig)


def ms_verify(model: Path, cas: list[Path], sig: Path, method: str = "files", algorithm: str = "sha256") -> None:
    model_signing.verifying.Config().use_certificate_verifier(certificate_chain=cas).set_hashing_config(
        ms_hashing(method, algorithm)).verify(model, sig)


def ours_sign(model: Path, f: dict[str, Path], sig: Path, method: str = "files", algorithm: str = "sha256",
              chain: tuple[str, ...] = ("intermediate",)) -> None:
    sig.write_bytes(signing.sign_model_dir(
        model, f["key"].read_bytes(), signing_certificate=f["cert"].read_bytes(),
        certificate_chain=[f[c].read_bytes() for c in chain], hash_algorithm=algorithm,
        shard_size=SHARD if method == "shards" else None))


def ours_verify(model: Path, cas: dict[str, bytes], sig: Path) -> signing.VerifiedSignature:
    verified = signing.verify_bundle(sig.read_bytes(), None, trusted_cas=cas)
    signing.verify_model_dir(model, verified)
    return verified


def statement(sig: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(sig.read_bytes())["dsseEnvelope"]["payload"]))


def chain_of(sig: Path) -> list[bytes]:
    doc = json.loads(sig.read_bytes())
    return [base64.b64decode(c["rawBytes"]) for c in doc["verificationMaterial"]["x509CertificateChain"]["certificates"]]


# ------------------------------------------------------------------------------------------- both ways


@pytest.mark.parametrize(("method", "algorithm"), CONFIGS)
def test_model_signing_signs_we_verify(sig_model: Path, pki: Pki, files, tmp_path: Path, method, algorithm):
    sig = tmp_path / "ms.sig"
    ms_sign(sig_model, files, sig, method, algorithm)
    v = ours_verify(sig_model, {"pki/root.pem": files["root"].read_bytes()}, sig)
    assert (v.serialization, v.hash_algorithm) == (method, algorithm)
    leaf = chain_of(sig)[0]
    assert v.certificate.fingerprint == hashlib.sha256(leaf).hexdigest()
    assert v.certificate.subject == "CN=ml-release,O=Example Corp"
    assert v.certificate.sans == ("email:ml-team@example.com", "uri:https://ci.example.com/ml")
    assert v.certificate.authority_name == "pki/root.pem"
    assert v.certificate.ca_fingerprints[-1] == hashlib.sha256(der(pki.root.cert)).hexdigest()
    # the same manifest our hashing computes, and the same subject our signature of it carries
    assert signing.compute_manifest(sig_model, hash_algorithm=algorithm,
                                    shard_size=SHARD if method == "shards" else None) == v.resources
    ours = tmp_path / "ours.sig"
    ours_sign(sig_model, files, ours, method, algorithm)
    assert statement(ours)["subject"] == statement(sig)["subject"]
    # model_signing writes the signing certificate then the chain files' certificates, in order; so do we
    assert chain_of(sig)[0] == chain_of(ours)[0]
    assert chain_of(sig)[1:] == [der(pki.intermediate.cert), der(pki.root.cert)]


@pytest.mark.parametrize(("method", "algorithm"), CONFIGS)
def test_we_sign_model_signing_verifies(sig_model: Path, files, tmp_path: Path, method, algorithm):
    sig = tmp_path / "ours.sig"
    ours_sign(sig_model, files, sig, method, algorithm)
    ms_verify(sig_model, [files["root"]], sig, method, algorithm)
    # and reads back the manifest we signed
    manifest = model_signing._signing.sign_certificate.Verifier([files["root"]]).verify(
        model_signing._signing.sign_sigstore_pb.Signature.read(sig))
    assert [rd.identifier for rd in manifest.resource_descriptors()] == [
        r["name"] for r in statement(sig)["predicate"]["resources"]]


def test_root_in_the_bundle_both_ways(sig_model: Path, files, tmp_path: Path):
    ours = tmp_path / "ours.sig"
    ours_sign(sig_model, files, ours, chain=("chain",))
    assert len(chain_of(ours)) == 3
    ms_verify(sig_model, [files["root"]], ours)
    ours_verify(sig_model, {"r": files["root"].read_bytes()}, ours)


def test_trusting_only_the_intermediate_is_ours_not_model_signings(sig_model: Path, files, tmp_path: Path):
    sig = tmp_path / "ms.sig"
    ms_sign(sig_model, files, sig)
    ours_verify(sig_model, {"ca": files["intermediate"].read_bytes()}, sig)
    with pytest.raises(X509StoreContextError, match="issuer certificate"):
        ms_verify(sig_model, [files["intermediate"]], sig)


# ---------------------------------------------------------------------------------- both refuse the same


def _tamper(root: Path) -> None:
    path = root / "weights.bin"
    data = bytearray(path.read_bytes())
    data[1234] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("signer", ["model_signing", "modelhub"])
def test_both_refuse_a_tampered_file(sig_model: Path, files, tmp_path: Path, signer: str):
    sig = tmp_path / "model.sig"
    (ms_sign if signer == "model_signing" else ours_sign)(sig_model, files, sig)
    ours_verify(sig_model, {"r": files["root"].read_bytes()}, sig)
    ms_verify(sig_model, [files["root"]], sig)
    _tamper(sig_model)
    with pytest.raises(signing.SignatureError) as info:
        ours_verify(sig_model, {"r": files["root"].read_bytes()}, sig)
    assert info.value.reason == "FileMismatch"
    with pytest.raises(ValueError, match="Signature mismatch"):
        ms_verify(sig_model, [files["root"]], sig)


@pytest.mark.parametrize("signer", ["model_signing", "modelhub"])
def test_both_refuse_another_ca(sig_model: Path, files, tmp_path: Path, signer: str):
    sig = tmp_path / "model.sig"
    (ms_sign if signer == "model_signing" else ours_sign)(sig_model, files, sig)
    other = Pki()
    other_root = tmp_path / "other-root.pem"
    other_root.write_bytes(other.root.pem)
    with pytest.raises(signing.SignatureError) as info:
        ours_verify(sig_model, {"other": other.root.pem}, sig)
    assert info.value.reason == "UntrustedCertificate"
    with pytest.raises(X509StoreContextError):  # "unable to get issuer" or "self-signed certificate in chain"
        ms_verify(sig_model, [other_root], sig)


def test_both_refuse_a_certificate_that_may_not_sign(sig_model: Path, pki: Pki, tmp_path: Path):
    bad = pki.signer(usage=key_usage(encipherment=True), eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    f = pki.write(tmp_path, bad, prefix="bad-")
    sig = tmp_path / "model.sig"
    ms_sign(sig_model, f, sig)  # model_signing signs anyway; both verifiers refuse
    with pytest.raises(signing.SignatureError) as info:
        ours_verify(sig_model, {"r": pki.root.pem}, sig)
    assert info.value.reason == "CertificateNotForSigning"
    with pytest.raises(ValueError, match="cannot be used for signing"):
        ms_verify(sig_model, [f["root"]], sig)


# ---------------------------------------------------------------------------------------- command lines


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("model_signing") or shutil.which("model_signing", path=str(Path(sys.executable).parent))
    cmd = [exe, *args] if exe else [sys.executable, "-m", "model_signing", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _modelhub(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "operator")}
    return subprocess.run([sys.executable, "-m", "modelhub", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_command_lines_both_ways(sig_model: Path, files, tmp_path: Path):
    f = {k: str(v) for k, v in files.items()}
    ms_sig = tmp_path / "ms.sig"
    r = _cli("sign", "certificate", str(sig_model), "--private_key", f["key"], "--signing_certificate", f["cert"],
             "--certificate_chain", f["intermediate"], "--signature", str(ms_sig))
    assert r.returncode == 0, r.stderr
    r = _modelhub("verify", str(sig_model), "--signature", str(ms_sig), "--certificate-chain", f["root"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: 8 files") and "certificate CN=ml-release,O=Example Corp" in r.stdout
    assert hashlib.sha256(chain_of(ms_sig)[0]).hexdigest() in r.stdout

    ours_sig = tmp_path / "modelhub.sig"
    r = _modelhub("sign", str(sig_model), "--private-key", f["key"], "--signing-certificate", f["cert"],
                  "--certificate-chain", f["intermediate"], f["root"], "--signature", str(ours_sig))
    assert r.returncode == 0, r.stderr
    assert "and 2 chain certificates" in r.stdout
    r = _cli("verify", "certificate", str(sig_model), "--signature", str(ours_sig), "--certificate_chain", f["root"])
    assert r.returncode == 0, r.stderr + r.stdout
    assert statement(ours_sig)["subject"] == statement(ms_sig)["subject"]
    # the fingerprint a Revocation would name
    r = _modelhub("fingerprint", f["cert"])
    assert r.stdout.split()[0] == hashlib.sha256(chain_of(ours_sig)[0]).hexdigest()

    # an untrusted CA: both refuse, with their reasons
    other = tmp_path / "other.pem"
    other.write_bytes(Pki().root.pem)
    r = _modelhub("verify", str(sig_model), "--signature", str(ms_sig), "--certificate-chain", str(other))
    assert r.returncode == 1 and r.stderr.startswith("error: UntrustedCertificate:")
    r = _cli("verify", "certificate", str(sig_model), "--signature", str(ours_sig), "--certificate_chain", str(other))
    assert r.returncode != 0
    # tampering: both refuse
    _tamper(sig_model)
    r = _modelhub("verify", str(sig_model), "--signature", str(ms_sig), "--certificate-chain", f["root"])
    assert r.returncode == 1 and r.stderr.startswith("error: FileMismatch: 'weights.bin'")
    r = _cli("verify", "certificate", str(sig_model), "--signature", str(ours_sig), "--certificate_chain", f["root"])
    assert r.returncode != 0 and "weights.bin" in r.stderr
