"""Where the admission webhook server listens and what the API server is told to call."""

from __future__ import annotations

import pytest
from cryptography import x509

from modelhub.handlers import webhook


@pytest.mark.parametrize(("host", "expected"), [
    ("modelhub-webhook.modelhub-system.svc", ("modelhub-webhook", "modelhub-system")),
    ("modelhub-webhook.modelhub-system.svc.cluster.local", ("modelhub-webhook", "modelhub-system")),
    ("hook.ns.svc.", ("hook", "ns")),
    ("127.0.0.1", None),
    ("localhost", None),
    ("webhook.example.com", None),
    ("a.b", None),
    ("..svc", None),
])
def test_service_ref(host: str, expected: tuple[str, str] | None) -> None:
    ref = webhook.service_ref(host)
    assert (None if ref is None else (ref.name, ref.namespace)) == expected


@pytest.mark.parametrize(("host", "addr"), [
    ("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("hook.ns.svc", "0.0.0.0"), ("10.1.2.3", "0.0.0.0"),
])
def test_listen_address(host: str, addr: str) -> None:
    assert webhook.listen_address(host) == addr


def test_certificate_names_every_form_of_the_service_name() -> None:
    hosts = webhook.certificate_hosts("hook.ns.svc")
    assert hosts[0] == "hook.ns.svc"
    assert {"hook.ns.svc", "hook.ns", "hook", "hook.ns.svc.cluster.local", "localhost", "127.0.0.1"} == set(hosts)
    assert len(hosts) == len(set(hosts))


@pytest.mark.parametrize(("url", "path"), [
    ("https://hook.ns.svc:9443/approval", "/approval"),
    ("https://hook.ns.svc:9443", None),
    ("https://hook.ns.svc:9443/a/b", "/a/b"),
])
def test_service_client_config_keeps_ca_and_path(url: str, path: str | None) -> None:
    out = webhook.service_client_config({"url": url, "caBundle": "Q0E="}, webhook.ServiceRef("hook", "ns"), 443)
    assert "url" not in out
    assert out["caBundle"] == "Q0E="
    expected = {"namespace": "ns", "name": "hook", "port": 443, **({"path": path} if path else {})}
    assert out["service"] == expected


def test_server_for_a_service_makes_a_certificate_for_its_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = webhook.server("hook.ns.svc", 9443, cert_dir=str(tmp_path), service_port=8443)
    assert isinstance(srv, webhook.ServiceWebhookServer)
    assert (srv.service, srv.service_port) == (webhook.ServiceRef("hook", "ns"), 8443)
    assert srv.addr == "0.0.0.0" and srv.port == 9443
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert {"hook.ns.svc", "hook.ns.svc.cluster.local"} <= set(names)


def test_server_beside_the_cluster_is_a_plain_url_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = webhook.server("127.0.0.1", 9443, cert_dir=str(tmp_path))
    assert type(srv).__name__ == "WebhookServer"
    assert srv.addr == "127.0.0.1" and srv.host == "127.0.0.1"


def test_a_mounted_certificate_is_used_as_is(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tls.crt").write_text("x")
    (tmp_path / "tls.key").write_text("y")
    srv = webhook.server("hook.ns.svc", 9443, cert_dir=str(tmp_path))
    assert srv.certfile == str(tmp_path / "tls.crt") and srv.pkeyfile == str(tmp_path / "tls.key")
    assert not (tmp_path / "cert.pem").exists()
