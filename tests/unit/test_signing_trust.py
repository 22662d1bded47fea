"""load_trust: a Model's keyrings and CA ConfigMaps, read through a ConfigMap reader (here a plain dict of real
ConfigMap objects), into what verify_bundle takes; unusable entries are named, not fatal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.unit.pki import Pki

from modelhub.adapters.trust import MAX_CA_ENTRIES, MAX_CA_ENTRY_BYTES, load_trust
from modelhub.domain import signing


class ConfigMaps:
    def __init__(self, *cms: dict[str, Any]) -> None:
        self.cms = {(cm["metadata"]["namespace"], cm["metadata"]["name"]): cm for cm in cms}

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cms.get((namespace, name))


def cm(name: str, data: dict[str, str], ns: str = "ml") -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "data": data}


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def test_keys_and_cas_together_verify_both_methods(sig_model: Path, sig_keys, pki: Pki) -> None:
    priv, pub = sig_keys["p256"]
    other = Pki()
    kube = ConfigMaps(
        cm("signers", {"k.pub": pub.decode()}),
        cm("pki", {"root.pem": pki.root.pem.decode(), "other.pem": other.root.pem.decode(), "README": "see wiki"}),
        cm("pki", {"root.pem": pki.root.pem.decode()}, ns="elsewhere"),
    )
    trust = {"keys": [{"name": "signers"}], "certificateAuthorities": [{"name": "pki"}, {"name": "gone"}]}
    roots = load_trust(kube, "ml", trust)
    assert set(roots.keys) == {"signers/k.pub"}
    assert set(roots.cas) == {"pki/root.pem", "pki/other.pem"}
    assert any("'README'" in p and "no PEM certificate" in p for p in roots.problems)
    assert any("ml/gone not found" in p for p in roots.problems)
    assert roots

    s = pki.signer()
    cert_bundle = signing.sign_model_dir(sig_model, s.key_pem, signing_certificate=s.pem,
                                         certificate_chain=[pki.intermediate.pem])
    v = signing.verify_bundle(cert_bundle, roots.keys, trusted_cas=roots.cas)
    assert v.certificate.authority_name == "pki/root.pem"
    v = signing.verify_bundle(signing.sign_model_dir(sig_model, priv), roots.keys, trusted_cas=roots.cas)
    assert v.key_name == "signers/k.pub"


def test_one_key_of_a_ca_configmap(pki: Pki) -> None:
    kube = ConfigMaps(cm("pki", {"root.pem": pki.root.pem.decode(), "other.pem": "junk"}))
    roots = load_trust(kube, "ml", {"certificateAuthorities": [{"name": "pki", "key": "root.pem"}]})
    assert set(roots.cas) == {"pki/root.pem"} and not roots.problems and not roots.keys
    roots = load_trust(kube, "ml", {"certificateAuthorities": [{"name": "pki", "key": "nope"}]})
    assert not roots and "has no key 'nope'" in roots.problems[0]
    assert "no trusted key or CA certificate" in roots.none_usable("m")


def test_bounds(pki: Pki) -> None:
    big = pki.root.pem.decode() + "#" * MAX_CA_ENTRY_BYTES
    many = {f"ca{i}.pem": pki.root.pem.decode() for i in range(MAX_CA_ENTRIES + 5)}
    kube = ConfigMaps(cm("big", {"ca.pem": big}), cm("many", many), cm("empty", {}))
    roots = load_trust(kube, "ml", {"certificateAuthorities": [{"name": "big"}, {"name": "empty"}, {"name": "many"}]})
    assert "more than the" in roots.problems[0]
    assert "holds no certificates" in roots.problems[1]
    assert len(roots.cas) == MAX_CA_ENTRIES
    assert "and later ones are left out" in roots.problems[-1]


def test_nothing_trusted() -> None:
    roots = load_trust(ConfigMaps(), "ml", {})
    assert not roots and roots.none_usable("m").endswith("Model m lists no keys nor certificateAuthorities in spec.trust")
