"""The admission webhook server: where it listens, the name the API server calls it by, and its certificate.

Beside the cluster (the default, MODELHUB_WEBHOOK_HOST=127.0.0.1) the API server calls https://127.0.0.1:<port>.
In the cluster (the Helm chart sets MODELHUB_WEBHOOK_HOST to the webhook Service's DNS name, `<svc>.<ns>.svc`) the
webhook configurations name the Service instead of a URL: the API server resolves it itself (to the pod's endpoint
when it runs with --enable-aggregator-routing, or to the Service's ClusterIP), so the name need not resolve anywhere
else. Either way the operator makes its own serving certificate at start (unless one is mounted as tls.crt/tls.key
in MODELHUB_WEBHOOK_CERT_DIR) and kopf writes that certificate as the caBundle into the configurations it manages,
so a restart rotates both together, with no cert-manager.

Only the API server may call it: with MODELHUB_WEBHOOK_CLIENT_CA (a PEM file of the CA that signs the client
certificate the API server presents to webhooks, configured by its --admission-control-config-file), the TLS
handshake requires a client certificate chained to that CA, so a hand-made AdmissionReview from anyone else never
reaches a handler. Without it the server accepts any client (a warning at start; use the chart's NetworkPolicy).
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from modelhub.adapters.certs import self_signed

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class WebhookConfigError(kopf.PermanentError):
    """The webhook server's settings are unusable (e.g. the client CA file is missing); the message says which."""


@dataclass(frozen=True)
class ServiceRef:
    """A Service named by a DNS name of the form <name>.<namespace>.svc[.<cluster domain>]."""

    name: str
    namespace: str

    @property
    def dns_names(self) -> list[str]:
        base = f"{self.name}.{self.namespace}"
        return [f"{base}.svc", base, self.name, f"{base}.svc.cluster.local"]


def service_ref(host: str) -> ServiceRef | None:
    """The Service a webhook host names, or None for any other host (an IP, localhost, an external name)."""
    parts = host.strip().rstrip(".").split(".")
    if len(parts) >= 3 and parts[2] == "svc" and all(parts[:2]) and len(host) <= 253:
        return ServiceRef(name=parts[0], namespace=parts[1])
    return None


def listen_address(host: str) -> str:
    """Loopback for a local host; every interface otherwise (a pod's IP is not known in advance)."""
    return "127.0.0.1" if host in LOCAL_HOSTS else "0.0.0.0"  # noqa: S104 - in a pod, the Service reaches it here


def certificate_hosts(host: str) -> list[str]:
    """The subject alternative names of the serving certificate for `host`."""
    ref = service_ref(host)
    hosts = [host, *(ref.dns_names if ref else []), "localhost", "127.0.0.1"]
    return list(dict.fromkeys(h for h in hosts if h))


def service_client_config(config: dict[str, Any], ref: ServiceRef, port: int) -> dict[str, Any]:
    """kopf's URL client config rewritten to name the Service (same CA bundle, path from the URL)."""
    out = {k: v for k, v in config.items() if k != "url"}
    path = ""
    url = str(config.get("url") or "")
    if "://" in url:
        rest = url.split("://", 1)[1]
        path = rest[rest.find("/"):] if "/" in rest else ""
    out["service"] = {"namespace": ref.namespace, "name": ref.name, "port": port, **({"path": path} if path else {})}
    return out


class ServiceWebhookServer(kopf.WebhookServer):
    """kopf's HTTPS webhook server, reported to the API server as a Service reference instead of a URL."""

    def __init__(self, *, service: ServiceRef, service_port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.service_port = service_port

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for config in super().__call__(fn):
            yield service_client_config(dict(config), self.service, self.service_port)


def client_verification(client_ca: str | None) -> dict[str, Any]:
    """The server's client-certificate settings: required and chained to `client_ca`, or none (any client)."""
    if not client_ca:
        log.warning("the admission webhook accepts any client: set MODELHUB_WEBHOOK_CLIENT_CA to the CA of the "
                    "API server's webhook client certificate, or restrict the port with a NetworkPolicy")
        return {}
    path = Path(client_ca)
    try:
        ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH).load_verify_locations(cafile=str(path))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise WebhookConfigError(
            f"MODELHUB_WEBHOOK_CLIENT_CA={client_ca}: not a readable PEM CA certificate ({type(exc).__name__})"
        ) from None
    return {"verify_mode": ssl.CERT_REQUIRED, "verify_cafile": str(path)}


def server(
    host: str, port: int, *, cert_dir: str | None = None, service_port: int | None = None,
    client_ca: str | None = None,
) -> kopf.WebhookServer:
    """The webhook server for `host` (MODELHUB_WEBHOOK_HOST) listening on `port` (MODELHUB_WEBHOOK_PORT).

    The certificate lives in `cert_dir` (default MODELHUB_WEBHOOK_CERT_DIR, else a new temporary directory); the
    Service's port defaults to MODELHUB_WEBHOOK_SERVICE_PORT, else 443. Clients must present a certificate chained
    to `client_ca` (default MODELHUB_WEBHOOK_CLIENT_CA; unset: any client is served).
    """
    if client_ca is None:
        client_ca = os.environ.get("MODELHUB_WEBHOOK_CLIENT_CA") or ""
    verification = client_verification(client_ca)
    cert_dir = cert_dir or os.environ.get("MODELHUB_WEBHOOK_CERT_DIR") or tempfile.mkdtemp(prefix="modelhub-webhook-")
    if service_port is None:
        service_port = int(os.environ.get("MODELHUB_WEBHOOK_SERVICE_PORT") or 443)
    directory = Path(cert_dir)
    cert, key = directory / "tls.crt", directory / "tls.key"
    if not (cert.exists() and key.exists()):
        cert, key = self_signed(directory, certificate_hosts(host))
    common: dict[str, Any] = {
        "addr": listen_address(host), "port": port, "host": host, "certfile": str(cert), "pkeyfile": str(key),
        **verification,
    }
    ref = service_ref(host)
    if ref is None:
        return kopf.WebhookServer(**common)
    return ServiceWebhookServer(service=ref, service_port=service_port, **common)
