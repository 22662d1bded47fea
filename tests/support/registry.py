"""A real CNCF `distribution` registry on 127.0.0.1 and the real `oras` client, both built by
`hack/build-tools.sh registry oras` into $MODELHUB_CACHE/bin."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _versions() -> dict[str, str]:
    out = {}
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def tool(name: str, version_key: str) -> Path:
    cache = Path(os.environ.get("MODELHUB_CACHE") or Path.home() / ".cache" / "modelhub")
    path = cache / "bin" / f"{name}-{_versions()[version_key]}"
    if not path.exists():
        msg = f"{path} is missing: run hack/build-tools.sh registry oras (make tools)"
        if os.environ.get("MODELHUB_REQUIRE_E2E") or os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    host: str  # 127.0.0.1:port
    root: Path  # the filesystem storage
    user: str | None = None
    password: str | None = None

    def blob_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.root / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"

    def dockerconfig(self) -> bytes:
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return json.dumps({"auths": {self.host: {"auth": auth}}}).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A token server as the distribution token-auth spec describes it: GET /token?service=&scope=... with basic
    auth answers an ES256 JWT granting the requested actions (the registry trusts its key through a JWKS file)."""

    SERVICE = "modelhub-test"
    ISSUER = "modelhub-test-issuer"

    def __init__(self, workdir: Path, user: str, password: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwks = workdir / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "test-key", "alg": "ES256", "use": "sig",
            "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big"))}]}))
        self.user, self.password = user, password
        self.issued = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                expected = "Basic " + base64.b64encode(f"{outer.user}:{outer.password}".encode()).decode()
                if url.path != "/token" or self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"token": outer.token(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def token(self, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": self.ISSUER, "sub": self.user, "aud": self.SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = ".".join(_b64url(json.dumps(part).encode()) for part in (
            {"alg": "ES256", "typ": "JWT", "kid": "test-key"}, claims))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        self.issued += 1
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def __enter__(self) -> TokenServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def run_registry(workdir: Path, *, htpasswd: tuple[str, str] | None = None,
                 token: TokenServer | None = None) -> Iterator[Registry]:
    """`registry serve` on a free 127.0.0.1 port with filesystem storage under `workdir` (basic auth from an
    htpasswd file when `htpasswd` is given, bearer tokens of `token` when given); stopped on exit."""
    binary = tool("registry", "DISTRIBUTION_VERSION")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = workdir / "storage"
    auth = ""
    if htpasswd is not None:
        import bcrypt

        user, password = htpasswd
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (workdir / "htpasswd").write_text(f"{user}:{hashed}\n")
        auth = f"auth:\n  htpasswd:\n    realm: modelhub-test\n    path: {workdir / 'htpasswd'}\n"
    if token is not None:
        auth = (f"auth:\n  token:\n    realm: {token.realm}\n    service: {token.SERVICE}\n"
                f"    issuer: {token.ISSUER}\n    jwks: {token.jwks}\n")
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        + auth
    )
    log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env["OTEL_TRACES_EXPORTER"] = "none"
    proc = subprocess.Popen([str(binary), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"registry exited: {(workdir / 'registry.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # 401: up, with auth
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("registry did not come up in 60 s") from None
                time.sleep(0.2)
        creds = htpasswd or ((token.user, token.password) if token is not None else (None, None))
        yield Registry(f"127.0.0.1:{port}", storage, *creds)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def oras(*args: str, cwd: Path | None = None, registry: Registry | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real oras client (plain http to the local registry; credentials when the registry has some)."""
    binary = tool("oras", "ORAS_VERSION")
    argv = [str(binary), *args]
    if registry is not None:
        argv.append("--plain-http")
        if registry.user:
            argv += ["-u", registry.user, "-p", str(registry.password)]
    home = Path(tempfile.gettempdir()) / "modelhub-oras-home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home)}  # no credentials store of the user's
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=180)
    if check and proc.returncode != 0:
        raise AssertionError(f"oras {' '.join(args)} failed: {proc.stderr or proc.stdout}")
    return proc


MODELPACK_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG_RAW = "application/vnd.cncf.model.weight.config.v1.raw"
WEIGHT_TAR = "application/vnd.cncf.model.weight.v1.tar"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def push_modelpack(registry: Registry, model_dir: Path, ref: str, *, media_types: dict[str, str] | None = None) -> str:
    """`oras push` every file of `model_dir` (model.sig included) as a ModelPack artifact, each a raw layer
    whose org.cncf.model.filepath annotation is its path; returns the manifest digest."""
    files = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())
    annotations: dict[str, dict[str, str]] = {}
    args = []
    for rel in files:
        mt = (media_types or {}).get(rel) or (
            SIGSTORE_BUNDLE if rel == "model.sig" else WEIGHT_CONFIG_RAW if rel.endswith(".json") else WEIGHT_RAW)
        annotations[rel] = {"org.cncf.model.filepath": rel}
        args.append(f"{rel}:{mt}")
    (model_dir.parent / "annotations.json").write_text(json.dumps(annotations))
    (model_dir.parent / "config.json").write_text(json.dumps({"descriptor": {"name": model_dir.name}}))
    out = oras(
        "push", f"{registry.host}/{ref}", "--artifact-type", MODELPACK_ARTIFACT,
        "--config", f"{model_dir.parent / 'config.json'}:{MODELPACK_CONFIG}",
        "--annotation-file", str(model_dir.parent / "annotations.json"),
        "--disable-path-validation", "--format", "json", *args,
        cwd=model_dir, registry=registry,
    )
    return str(json.loads(out.stdout)["digest"])


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_layout(out: Path, layers: list[list[tuple[str, bytes | None]]], tag: str) -> Path:
    """An OCI image layout at `out` holding a plain image (linux/amd64 config) whose layers are these tar
    archives (entries: (name, bytes), or (name, None) for a directory)."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = hashlib.sha256(data).hexdigest()
        (blobs / d).write_bytes(data)
        return f"sha256:{d}"

    layer_descs, diff_ids = [], []
    for entries in layers:
        data = _tar(entries)
        d = put(data)
        diff_ids.append(d)
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(data)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
        "layers": layer_descs,
    }).encode()
    md = put(manifest)
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return out


def push_layout(registry: Registry, layout: Path, tag: str, ref: str) -> str:
    """`oras cp --from-oci-layout` the image tagged `tag` in `layout` to `ref`; returns the manifest digest."""
    oras("cp", "--from-oci-layout", f"{layout}:{tag}", f"{registry.host}/{ref}", "--to-plain-http",
         *(["--to-username", registry.user, "--to-password", str(registry.password)] if registry.user else []),
         cwd=layout)
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"])
