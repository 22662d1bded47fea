"""oci:// pieces on real inputs: references, dockerconfigjson credentials, manifests, the safe unpacking of
layers, the pod builder's registry Secret, and the token-auth flow against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_workloads import CPU_SELECTOR, LOADER, model_manifest, version_manifest

from modelhub.adapters import fetch, oci, stores
from modelhub.adapters.stores import StoreError
from modelhub.api.modelversion import Artifact
from modelhub.domain.workloads import build_deployment
from modelhub.loader.oci import _Budget, extract

D = "sha256:" + "a" * 64


# -------------------------------------------------------------------------------------------- references


def test_parse_reference_forms() -> None:
    ref = oci.parse_reference(f"oci://127.0.0.1:5000/models/sentiment:1.0@{D}#/models/m/")
    assert (ref.registry, ref.repository, ref.tag, ref.digest, ref.path) == (
        "127.0.0.1:5000", "models/sentiment", "1.0", D, "models/m")
    assert ref.uri(digest=D) == f"oci://127.0.0.1:5000/models/sentiment@{D}#models/m"
    tagged = oci.parse_reference("oci://ghcr.io/acme/model:v2")
    assert tagged.reference == "v2" and tagged.digest is None
    assert oci.parse_reference("oci://docker.io/library/m@" + D).api_host == "registry-1.docker.io"
    assert stores.default_signature_uri(f"oci://reg.io/a/b@{D}#/models/m") == f"oci://reg.io/a/b@{D}#models/m/model.sig"
    assert stores.parse(f"oci://reg.io/a/b@{D}").scheme == "oci"


@pytest.mark.parametrize("uri", [
    "oci://reg.io", "oci://reg.io/", "oci://reg.io/Upper/case", "oci://reg.io/a@sha256:short",
    f"oci://reg.io/a@{D}#../etc", "oci://reg.io/a:bad^tag", "oci://reg io/a", "oci:///a",
    f"oci://reg.io/a@sha512:{'a' * 128}",
])
def test_malformed_references_are_refused(uri: str) -> None:
    with pytest.raises(StoreError) as err:
        oci.parse_reference(uri)
    assert err.value.reason == "InvalidURI"


def test_api_accepts_oci_uris() -> None:
    Artifact(uri=f"oci://127.0.0.1:5000/models/m@{D}#/models/m", digest=D)
    Artifact(uri="oci://ghcr.io/acme/model:1.0", digest=D)
    with pytest.raises(ValueError):
        Artifact(uri="oci://ghcr.io/Acme/model", digest=D)


# ------------------------------------------------------------------------------------------- credentials


def test_dockerconfigjson_credentials() -> None:
    auth = base64.b64encode(b"robot:pa:ss").decode()
    doc = json.dumps({"auths": {"https://reg.example.com/v1/": {"auth": auth},
                                "other.io": {"username": "u", "password": "p"},
                                "https://index.docker.io/v1/": {"registrytoken": "tok"}}})
    creds = oci.credentials_from_dockerconfig(doc, "reg.example.com")
    assert creds is not None and (creds.username, creds.password) == ("robot", "pa:ss")
    assert "pa:ss" not in repr(creds)
    other = oci.credentials_from_dockerconfig(doc, "other.io")
    assert other is not None and other.basic() == "Basic " + base64.b64encode(b"u:p").decode()
    hub = oci.credentials_from_dockerconfig(doc, "docker.io")
    assert hub is not None and hub.registry_token == "tok"
    assert oci.credentials_from_dockerconfig(doc, "nowhere.io") is None


@pytest.mark.parametrize("doc", [b"not json", b"[]", b'{"auths": []}', b'{"auths": {"r.io": {"auth": "%%%"}}}',
                                 b'{"auths": {"r.io": {"auth": "bm9jb2xvbg=="}}}', b'{"auths": {"r.io": 5}}',
                                 b"{" * (2 << 20)])
def test_malformed_dockerconfigjson(doc: bytes) -> None:
    with pytest.raises(StoreError) as err:
        oci.credentials_from_dockerconfig(doc, "r.io")
    assert err.value.reason == "InvalidCredentials"


# --------------------------------------------------------------------------------------------- manifests


def manifest(layers: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                       "config": {"mediaType": oci.MODELPACK_CONFIG_TYPE, "digest": D, "size": 2},
                       "layers": layers, **extra}).encode()


def test_modelpack_manifest_layers() -> None:
    m = oci.parse_manifest(manifest([
        {"mediaType": "application/vnd.cncf.model.weight.v1.raw", "digest": D, "size": 3,
         "annotations": {oci.ANN_FILEPATH: "w.bin"}},
        {"mediaType": "application/vnd.cncf.model.weight.v1.tar+gzip", "digest": D, "size": 3,
         "annotations": {oci.ANN_FILEPATH: "shards"}},
        {"mediaType": "application/vnd.cncf.model.doc.v1.tar", "digest": D, "size": 3},
    ], artifactType=oci.MODELPACK_ARTIFACT_TYPE), D)
    assert m.is_modelpack and not m.is_image
    assert [layer.archive for layer in m.layers] == [(False, None), (True, "gzip"), (True, None)]
    assert oci.find_file(m, "w.bin") is m.layers[0] and oci.find_file(m, "shards") is None


@pytest.mark.parametrize(("doc", "reason"), [
    (b"{", "BadManifest"),
    (json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": []}).encode(), "Unsupported"),
    (manifest([{"mediaType": "x", "digest": "sha256:zz", "size": 1}]), "BadManifest"),
    (manifest([{"mediaType": "x", "digest": D, "size": -1}]), "BadManifest"),
    (manifest([{"mediaType": "x", "digest": D, "size": 1}] * (oci.MAX_LAYERS + 1)), "BadManifest"),
    (manifest([{"mediaType": "x", "digest": D, "size": 1, "annotations": {"k": 5}}]), "BadManifest"),
])
def test_malformed_manifests(doc: bytes, reason: str) -> None:
    with pytest.raises(StoreError) as err:
        oci.parse_manifest(doc, D)
    assert err.value.reason == reason


# -------------------------------------------------------------------------------------------- unpacking


def tar(*members: tuple[tarfile.TarInfo, bytes | None], compress: bool = False) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return io.BytesIO(gzip.compress(raw) if compress else raw)


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def unpack(src: io.BytesIO, tree: Path, *, image: bool = False, root: str = "", max_file: int = 1 << 20,
           total: int = 1 << 20, compression: str | None = None) -> int:
    return extract(src, tree, where="layer X", compression=compression, image=image,
                   model_root=[s for s in root.split("/") if s], max_file_bytes=max_file, budget=_Budget(total),
                   deadline=time.monotonic() + 60)


@pytest.mark.parametrize(("member", "data", "image", "reason"), [
    (entry("/etc/passwd"), b"x", False, "UnsafePath"),
    (entry("a/../../escape"), b"x", False, "UnsafePath"),
    (entry("link", tarfile.SYMTYPE, "/etc/passwd"), None, False, "UnsafePath"),
    (entry("hard", tarfile.LNKTYPE, "a"), None, False, "UnsafePath"),
    (entry("dev", tarfile.CHRTYPE), None, False, "UnsafePath"),
    (entry("fifo", tarfile.FIFOTYPE), None, False, "UnsafePath"),
    (entry("models/m/link", tarfile.SYMTYPE, "../../etc/shadow"), None, True, "UnsafePath"),
    (entry("models/m/weights.bin"), b"x" * 2000, True, "TooLarge"),
])
def test_unsafe_or_oversized_entries_are_refused(
    tmp_path: Path, member: tarfile.TarInfo, data: bytes | None, image: bool, reason: str
) -> None:
    with pytest.raises(StoreError) as err:
        unpack(tar((member, data)), tmp_path, image=image, root="models/m", max_file=1000)
    assert err.value.reason == reason
    assert not (tmp_path.parent / "escape").exists()
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_image_layers_skip_outside_the_model_and_honour_whiteouts(tmp_path: Path) -> None:
    unpack(tar((entry("bin", tarfile.SYMTYPE, "usr/bin"), None), (entry("dev/null", tarfile.CHRTYPE), None),
               (entry("models/m/a.txt"), b"a"), (entry("models/m/old.txt"), b"old"),
               (entry("models/m/sub/"), None), (entry("models/m/sub/x"), b"x")),
           tmp_path, image=True, root="models/m")
    unpack(tar((entry("models/m/.wh.old.txt"), b""), (entry("models/m/sub/.wh..wh..opq"), b""),
               (entry("models/m/.wh..."), b""), (entry("models/m/a.txt"), b"new")),
           tmp_path, image=True, root="models/m")
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert files == {"models/m/a.txt"}
    assert (tmp_path / "models/m/a.txt").read_bytes() == b"new"
    assert not (tmp_path / "bin").exists() and not (tmp_path / "dev").exists()


def test_total_budget_and_gzip(tmp_path: Path) -> None:
    src = tar((entry("a"), b"x" * 600), (entry("b"), b"y" * 600), compress=True)
    with pytest.raises(StoreError) as err:
        unpack(src, tmp_path, total=1000, compression="gzip")
    assert err.value.reason == "TooLarge"
    assert unpack(tar((entry("./c"), b"z"), compress=True), tmp_path, compression="gzip") == 1
    with pytest.raises(StoreError) as err:
        unpack(io.BytesIO(b"\x1f\x8b garbage"), tmp_path, compression="gzip")
    assert err.value.reason == "BadLayer"
    with pytest.raises(StoreError) as err:
        unpack(io.BytesIO(b""), tmp_path, compression="zstd")
    assert err.value.reason == "Unsupported"


# ---------------------------------------------------------------------------------------------- the pod


def test_pod_mounts_the_registry_secret_for_oci() -> None:
    uri = f"oci://registry.example.com/models/sentiment@{D}#models/m"
    version = version_manifest(uri=uri, signature={})
    version["spec"]["artifact"]["credentialsSecretRef"] = {"name": "regcred"}
    del version["spec"]["artifact"]["signature"]
    dep = build_deployment(model_manifest(), version, replicas=1, role="stable", loader_image=LOADER,
                           cpu_node_selector=CPU_SELECTOR)
    pod = dep["spec"]["template"]["spec"]
    loader = pod["initContainers"][0]
    assert loader["command"][loader["command"].index("--uri") + 1] == uri
    assert {"name": "DOCKER_CONFIG", "value": "/var/run/modelhub/registry"} in loader["env"]
    assert not any(e["name"].startswith("AWS_") for e in loader["env"])
    mount = next(m for m in loader["volumeMounts"] if m["name"] == "registry-auth")
    assert mount == {"name": "registry-auth", "mountPath": "/var/run/modelhub/registry", "readOnly": True}
    volume = next(v for v in pod["volumes"] if v["name"] == "registry-auth")
    assert volume["secret"] == {"secretName": "regcred", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
    server = next(c for c in pod["containers"] if c["name"] == "server")
    assert all(m["name"] != "registry-auth" for m in server.get("volumeMounts", []))


def test_pod_without_secret_has_no_registry_volume() -> None:
    version = version_manifest(uri=f"oci://registry.example.com/models/sentiment@{D}")
    dep = build_deployment(model_manifest(), version, replicas=1, role="stable", loader_image=LOADER,
                           cpu_node_selector=CPU_SELECTOR)
    pod = dep["spec"]["template"]["spec"]
    assert all(v["name"] != "registry-auth" for v in pod["volumes"])


# ------------------------------------------------------------------------- token auth, on a real server


class TokenRegistry:
    """A minimal registry: bearer-token challenge, a token endpoint with basic auth, one manifest and one blob
    served through a redirect to another origin (which must not see the token)."""

    def __init__(self) -> None:
        self.blob = b"model bytes"
        self.blob_digest = "sha256:" + hashlib.sha256(self.blob).hexdigest()
        self.manifest = manifest([{"mediaType": "application/vnd.cncf.model.weight.v1.raw",
                                   "digest": self.blob_digest, "size": len(self.blob),
                                   "annotations": {oci.ANN_FILEPATH: "model.sig"}}],
                                 artifactType=oci.MODELPACK_ARTIFACT_TYPE)
        self.digest = "sha256:" + hashlib.sha256(self.manifest).hexdigest()
        self.seen: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def send(self, code: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k.replace("_", "-"), v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                auth = self.headers.get("Authorization")
                outer.seen.append((self.path, auth))
                port = self.server.server_address[1]
                if self.path.startswith("/token"):
                    ok = auth == "Basic " + base64.b64encode(b"robot:secret").decode()
                    assert "scope=repository%3Amodels%2Fm%3Apull" in self.path
                    return self.send(200, b'{"token": "tok-123"}') if ok else self.send(401)
                if self.path.startswith("/storage/"):
                    return self.send(200, outer.blob)
                if auth != "Bearer tok-123":
                    realm = f"http://127.0.0.1:{port}/token"
                    return self.send(401, WWW_Authenticate=f'Bearer realm="{realm}",service="test",scope="repository:models/m:pull"')
                if self.path.startswith("/v2/models/m/manifests/"):  # any reference: the same bytes
                    return self.send(200, outer.manifest, Content_Type=oci.OCI_MANIFEST)
                if self.path == f"/v2/models/m/blobs/{outer.blob_digest}":
                    return self.send(307, Location=f"http://localhost:{port}/storage/blob")
                return self.send(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> TokenRegistry:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenRegistry]:
    with TokenRegistry() as reg:
        monkeypatch.setenv(oci.PLAIN_HTTP_ENV, reg.host)
        yield reg


def test_bearer_token_flow_and_no_token_across_origins(token_registry: TokenRegistry) -> None:
    reg = token_registry
    creds = oci.RegistryCredentials(username="robot", password="secret")
    pinned = oci.resolve(f"oci://{reg.host}/models/m:v1", creds)
    assert pinned == f"oci://{reg.host}/models/m@{reg.digest}"
    data = fetch.read_oci_bytes(pinned + "#model.sig", limits=fetch.Limits.within(20, max_bytes=1024),
                                net=fetch.NetworkPolicy.unrestricted(), credentials=creds)
    assert data == reg.blob
    storage = [auth for path, auth in reg.seen if path.startswith("/storage/")]
    assert storage == [None]  # the redirect to another origin carried no Authorization
    assert any(auth == "Bearer tok-123" for path, auth in reg.seen if "/blobs/" in path)


def test_wrong_credentials_and_the_operator_policy(token_registry: TokenRegistry) -> None:
    reg = token_registry
    bad = oci.RegistryCredentials(username="robot", password="nope")
    with pytest.raises(StoreError) as err:
        oci.resolve(f"oci://{reg.host}/models/m:v1", bad)
    assert err.value.reason == "Forbidden" and "nope" not in err.value.message
    # The operator's policy (no loopback) refuses the registry before any request.
    with pytest.raises(StoreError) as err:
        fetch.read_oci_bytes(f"oci://{reg.host}/models/m@{reg.digest}#model.sig",
                             limits=fetch.Limits.within(20, max_bytes=1024), net=fetch.NetworkPolicy())
    assert err.value.reason == "Refused"


def test_the_bundle_read_is_bounded(token_registry: TokenRegistry) -> None:
    reg = token_registry
    creds = oci.RegistryCredentials(username="robot", password="secret")
    with pytest.raises(StoreError) as err:
        fetch.read_oci_bytes(f"oci://{reg.host}/models/m@{reg.digest}#model.sig",
                             limits=fetch.Limits.within(20, max_bytes=4), net=fetch.NetworkPolicy.unrestricted(),
                             credentials=creds)
    assert err.value.reason == "TooLarge"
    with pytest.raises(StoreError) as err:  # a manifest that does not hash to the pinned digest
        fetch.read_oci_bytes(f"oci://{reg.host}/models/m@{D}#model.sig",
                             limits=fetch.Limits.within(20, max_bytes=1024), net=fetch.NetworkPolicy.unrestricted(),
                             credentials=creds)
    assert err.value.reason == "DigestMismatch"


def test_oci_model_volume_holds_blobs_and_files() -> None:
    from modelhub.domain.loadlimits import LoaderLimits
    from modelhub.domain.workloads import model_volume

    limits = LoaderLimits(max_total_bytes=10 * 1024**3)
    assert model_volume(limits)["emptyDir"]["sizeLimit"] == "10304Mi"  # 10 GiB + 64 MiB headroom
    assert model_volume(limits, oci=True)["emptyDir"]["sizeLimit"] == "20544Mi"


# ------------------------------------------------------------------ the loader against a hostile registry


class HostileRegistry:
    """Serves one signed ModelPack artifact; `blob_override` replaces what one blob path sends, `stall` makes
    blob responses trickle one byte per `stall` seconds."""

    def __init__(self, files: dict[str, bytes], bundle: bytes) -> None:
        self.blobs: dict[str, bytes] = {}
        layers = []
        for name, data in {**files, "model.sig": bundle}.items():
            d = "sha256:" + hashlib.sha256(data).hexdigest()
            self.blobs[d] = data
            layers.append({"mediaType": "application/vnd.cncf.model.weight.v1.raw", "digest": d, "size": len(data),
                           "annotations": {oci.ANN_FILEPATH: name}})
        self.manifest = manifest(layers, artifactType=oci.MODELPACK_ARTIFACT_TYPE)
        self.digest = "sha256:" + hashlib.sha256(self.manifest).hexdigest()
        self.override: dict[str, bytes] = {}
        self.stall: float | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                if "/manifests/" in self.path:
                    body = outer.manifest
                elif "/blobs/" in self.path:
                    d = self.path.rsplit("/", 1)[1]
                    body = outer.override.get(d, outer.blobs.get(d, b""))
                else:
                    body = b""
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if outer.stall is not None and "/blobs/" in self.path and len(body) > 1000:
                        for b in body:
                            self.wfile.write(bytes([b]))
                            self.wfile.flush()
                            time.sleep(outer.stall)
                    else:
                        self.wfile.write(body)
                except OSError:
                    pass  # the loader hung up (what the test wants)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HostileRegistry, str, bytes]]:
    from modelhub.domain.signing import compute_manifest, generate_private_key, sign_model_dir, subject_digest

    priv, pub = generate_private_key("p256")
    src = tmp_path / "src"
    src.mkdir()
    files = {"weights.bin": b"w" * 50_000, "config.json": b"{}"}
    for name, data in files.items():
        (src / name).write_bytes(data)
    reg = HostileRegistry(files, sign_model_dir(src, priv))
    threading.Thread(target=reg.server.serve_forever, daemon=True).start()
    monkeypatch.setenv(oci.PLAIN_HTTP_ENV, reg.host)
    try:
        yield reg, subject_digest(compute_manifest(src)), pub
    finally:
        reg.server.shutdown()
        reg.server.server_close()


def oci_load(reg: HostileRegistry, digest: str, pub: bytes, dest: Path, **limits: Any) -> Any:
    from modelhub.domain.loadlimits import LoaderLimits
    from modelhub.loader.load import load_model

    return load_model(uri=f"oci://{reg.host}/models/m@{reg.digest}", digest=digest, dest=dest,
                      trusted_keys={"k.pub": pub}, log=None, retries=0,
                      limits=LoaderLimits(**{"min_rate": 0, **limits}))


def test_loader_pulls_from_a_plain_http_registry(hostile: tuple[HostileRegistry, str, bytes], tmp_path: Path) -> None:
    reg, digest, pub = hostile
    result = oci_load(reg, digest, pub, tmp_path / "dest")
    assert result.files == 2 and (tmp_path / "dest" / "model" / "weights.bin").read_bytes() == b"w" * 50_000


@pytest.mark.parametrize(("tamper", "reason"), [
    (lambda data: data[:-1] + b"X", "DigestMismatch"),  # same size, other bytes
    (lambda data: data + b"more", "SizeMismatch"),  # more than the descriptor says
])
def test_loader_refuses_a_blob_that_is_not_its_digest(
    hostile: tuple[HostileRegistry, str, bytes], tmp_path: Path, tamper: Any, reason: str
) -> None:
    from modelhub.loader.load import LoadError

    reg, digest, pub = hostile
    weights = next(d for d, data in reg.blobs.items() if data.startswith(b"w"))
    reg.override[weights] = tamper(reg.blobs[weights])
    with pytest.raises(LoadError) as err:
        oci_load(reg, digest, pub, tmp_path / "dest")
    assert err.value.reason == reason, err.value
    assert not (tmp_path / "dest" / "model").exists()
    assert [p.name for p in (tmp_path / "dest").iterdir() if p.name.startswith(".staging")] == []


def test_loader_deadline_and_file_limit(hostile: tuple[HostileRegistry, str, bytes], tmp_path: Path) -> None:
    from modelhub.loader.load import LoadError

    reg, digest, pub = hostile
    with pytest.raises(LoadError) as err:
        oci_load(reg, digest, pub, tmp_path / "d1", max_file_bytes=10_000)
    assert err.value.reason == "TooLarge" and "weights.bin" in err.value.message
    reg.stall = 0.05
    t0 = time.monotonic()
    with pytest.raises(LoadError) as err:
        oci_load(reg, digest, pub, tmp_path / "d2", deadline_seconds=2)
    assert err.value.reason == "Timeout", err.value
    assert time.monotonic() - t0 < 20


def test_the_loader_pulls_the_resolved_digest() -> None:
    from modelhub.domain.workloads import WorkloadError

    version = version_manifest(uri="oci://registry.example.com/models/sentiment:1.0")
    with pytest.raises(WorkloadError, match="not resolved to a digest"):
        build_deployment(model_manifest(), version, replicas=1, role="stable", loader_image=LOADER,
                         cpu_node_selector=CPU_SELECTOR)
    pinned = f"oci://registry.example.com/models/sentiment@{D}"
    version["status"] = {"resolvedUri": pinned}
    dep = build_deployment(model_manifest(), version, replicas=1, role="stable", loader_image=LOADER,
                           cpu_node_selector=CPU_SELECTOR)
    command = dep["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert command[command.index("--uri") + 1] == pinned
