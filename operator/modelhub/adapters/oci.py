"""oci:// artifacts: a model kept in an OCI registry, pulled by digest over the distribution HTTP API.

``oci://<registry>/<repository>[:<tag>][@sha256:<manifest digest>][#<path>]``

* The manifest is an OCI image manifest (or a Docker v2 schema 2 one). A **ModelPack** artifact (artifact type
  ``application/vnd.cncf.model.manifest.v1+json``, or its config media type) or any other artifact (oras push)
  holds the model files as layers: a ``...v1.raw`` layer (any non-archive layer) is one file, named by its
  ``org.cncf.model.filepath`` annotation (else ``org.opencontainers.image.title``); a ``...v1.tar``,
  ``.tar+gzip`` layer (or an oras directory layer) is an archive whose entries are paths of the model tree.
  A **plain image** (an image config) holds them in its filesystem: its tar layers are applied in order
  (whiteouts included) and the model directory is ``#<path>`` inside it (default: the root).
* ``#<path>`` is a path in that file tree: the model directory of an artifact URI, the bundle file of a
  signature URI (``#model.sig``, the default: :func:`modelhub.adapters.stores.default_signature_uri`).
* The loader and the pods pull by digest only; a tag is resolved to the digest of the manifest it names now by
  :func:`resolve` and recorded that way.

Auth: anonymous, HTTP basic, or bearer tokens (the registry's ``WWW-Authenticate: Bearer realm=...`` challenge,
the token fetched with basic credentials when there are some), with credentials from a
``kubernetes.io/dockerconfigjson`` Secret (:func:`credentials_from_dockerconfig`; the loader reads
``$DOCKER_CONFIG/config.json``). The Authorization header never follows a redirect to another host.

Everything a registry sends is bounded (manifest and token sizes, JSON structure, layer count) and checked: the
manifest's and every blob's sha256 against the digest that names it, every blob's size against its descriptor.
Registries are spoken to over https; ``MODELHUB_OCI_PLAIN_HTTP`` lists registries (``host:port``, comma
separated) spoken to over plain http (local test registries only).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import json
import os
import re
import tarfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhub.adapters import fetch
from modelhub.adapters.stores import StoreError

__all__ = [
    "ANN_FILEPATH",
    "ANN_TITLE",
    "MODELPACK_ARTIFACT_TYPE",
    "MODELPACK_CONFIG_TYPE",
    "Descriptor",
    "Manifest",
    "Reference",
    "Registry",
    "RegistryCredentials",
    "credentials_from_dockerconfig",
    "credentials_from_env",
    "parse_manifest",
    "parse_reference",
    "read_file",
    "resolve",
]

MODELPACK_ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG_TYPE = "application/vnd.cncf.model.config.v1+json"
ANN_FILEPATH = "org.cncf.model.filepath"
ANN_TITLE = "org.opencontainers.image.title"
ANN_ORAS_UNPACK = "io.deis.oras.content.unpack"  # oras marks a directory it pushed as a tar+gzip layer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_CONFIG_TYPES = frozenset({"application/vnd.oci.image.config.v1+json",
                                "application/vnd.docker.container.image.v1+json"})
ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST))

#: The artifact types of a signature bundle attached as an OCI 1.1 referrer (``oras attach --artifact-type``).
BUNDLE_ARTIFACT_TYPES = ("application/vnd.dev.sigstore.bundle.v0.3+json",
                         "application/vnd.dev.sigstore.bundle+json;version=0.3")
MAX_REFERRERS = 16

PLAIN_HTTP_ENV = "MODELHUB_OCI_PLAIN_HTTP"
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # what distribution itself accepts
MAX_LAYERS = 4096
MAX_ANNOTATION_BYTES = 4096
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
MAX_TOKEN_BYTES = 16 * 1024
MAX_DOCKERCONFIG_BYTES = 1024 * 1024

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_REGISTRY_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                          r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_MODELPACK_LAYER_RE = re.compile(r"^application/vnd\.cncf\.model\.[a-z][a-z.]*\.v1\.(raw|tar|tar\+gzip|tar\+zstd)$")
_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*"([^"]*)"')

#: How an archive layer is compressed (None: plain tar), by media type.
ARCHIVE_TYPES: dict[str, str | None] = {
    "application/vnd.oci.image.layer.v1.tar": None,
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": None,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}


# --------------------------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Reference:
    """A parsed ``oci://`` URI."""

    registry: str  # host[:port] as written
    repository: str
    tag: str | None = None
    digest: str | None = None
    path: str = ""  # the fragment, without leading or trailing slashes ("" = the root of the file tree)

    @property
    def api_host(self) -> str:
        return "registry-1.docker.io" if self.registry in ("docker.io", "index.docker.io") else self.registry

    @property
    def reference(self) -> str:
        """What the manifest is fetched by: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def uri(self, *, digest: str | None = None, path: str | None = None) -> str:
        """The URI of this reference, pinned to `digest` (dropping the tag) when given, with `path`."""
        d = digest or self.digest
        ref = f"@{d}" if d else f":{self.tag or 'latest'}"
        if d is None and self.tag is None:
            ref = ""
        p = self.path if path is None else path.strip("/")
        return f"oci://{self.registry}/{self.repository}{ref}" + (f"#{p}" if p else "")

    def join(self, relative: str) -> str:
        """The URI of `relative` (a slash-separated path) inside this reference's path."""
        return self.uri(path="/".join(s for s in (self.path, relative) if s))

    def __str__(self) -> str:
        return self.uri()


def parse_reference(uri: str) -> Reference:
    """Parse ``oci://registry/repository[:tag][@sha256:hex][#path]``; StoreError InvalidURI when malformed."""
    if not isinstance(uri, str) or not uri.lower().startswith("oci://"):
        raise StoreError("InvalidURI", f"not an oci:// URI: {uri!r}"[:300])
    if len(uri) > 4096 or any(ord(c) < 0x21 or c == "\x7f" for c in uri):
        raise StoreError("InvalidURI", f"oci URI too long or with spaces/control characters: {uri[:200]!r}")
    rest = uri[len("oci://"):]
    rest, _, fragment = rest.partition("#")
    registry, slash, name = rest.partition("/")
    if not slash or not _REGISTRY_RE.match(registry):
        raise StoreError("InvalidURI", f"{uri}: expected oci://<registry host[:port]>/<repository>")
    name, _, digest = name.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        if not _TAG_RE.match(tag):
            raise StoreError("InvalidURI", f"{uri}: invalid tag {tag!r}")
    if not _REPOSITORY_RE.match(name) or len(name) > 255:
        raise StoreError("InvalidURI", f"{uri}: invalid repository name {name!r} (lowercase path components)")
    if digest and not _DIGEST_RE.match(digest):
        raise StoreError("InvalidURI", f"{uri}: the digest must be sha256:<64 lowercase hex digits>")
    path = urllib.parse.unquote(fragment)
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if ".." in segments or "\x00" in path or "\\" in path:
        raise StoreError("InvalidURI", f"{uri}: the path after '#' must not contain '..', NUL or backslashes")
    return Reference(registry, name, tag or None, digest or None, "/".join(segments))


# -------------------------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class RegistryCredentials:
    """Credentials for one registry (a dockerconfigjson entry). Never printed."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)  # a bearer token used as is
    identity_token: str | None = field(default=None, repr=False)  # an OAuth2 refresh token (not supported)

    def __repr__(self) -> str:
        return f"RegistryCredentials(username={self.username!r})"

    def basic(self) -> str | None:
        if self.username is None or self.password is None:
            return None
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def _auth_keys(registry: str) -> list[str]:
    keys = [registry]
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        keys += ["https://index.docker.io/v1/", "index.docker.io", "docker.io"]
    return keys


def _normal_key(key: str) -> str:
    """A dockerconfig ``auths`` key as host[:port] (keys may be URLs: https://host/v1/)."""
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0].lower()


def credentials_from_dockerconfig(data: bytes | str, registry: str) -> RegistryCredentials | None:
    """The credentials a ``.dockerconfigjson`` (or a docker ``config.json``) holds for `registry`
    (host[:port]), or None when it has none. StoreError InvalidCredentials when the document is malformed."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_DOCKERCONFIG_BYTES:
        raise StoreError("InvalidCredentials", f"the registry credentials are larger than {MAX_DOCKERCONFIG_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise StoreError("InvalidCredentials", "the registry credentials are not JSON (.dockerconfigjson)") from None
    if not isinstance(doc, dict):
        raise StoreError("InvalidCredentials", "the registry credentials are not a JSON object")
    auths = doc.get("auths", {})
    if not isinstance(auths, dict):
        raise StoreError("InvalidCredentials", "'auths' in the registry credentials is not an object")
    by_host = {_normal_key(str(k)): v for k, v in auths.items()}
    wanted = [_normal_key(k) for k in _auth_keys(registry)]
    entry = next((by_host[k] for k in wanted if k in by_host), None)
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise StoreError("InvalidCredentials", f"the credentials entry for {registry} is not an object")

    def text(name: str) -> str | None:
        value = entry.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > MAX_TOKEN_BYTES:
            raise StoreError("InvalidCredentials", f"'{name}' of the credentials for {registry} is not a string")
        return value

    username, password = text("username"), text("password")
    auth = text("auth")
    if auth is not None:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise StoreError("InvalidCredentials", f"'auth' of the credentials for {registry} is not base64 of user:password") from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise StoreError("InvalidCredentials", f"'auth' of the credentials for {registry} is not base64 of user:password")
        username, password = user, secret
    return RegistryCredentials(
        username=username, password=password,
        registry_token=text("registrytoken"), identity_token=text("identitytoken"),
    )


def credentials_from_env(registry: str, environ: Mapping[str, str] | None = None) -> RegistryCredentials | None:
    """The loader's credentials for `registry`: from ``$DOCKER_CONFIG/config.json`` (where the pod builder
    mounts the namespace's dockerconfigjson Secret), None when that variable is unset or the file is absent."""
    env = os.environ if environ is None else environ
    folder = env.get(DOCKER_CONFIG_ENV)
    if not folder:
        return None
    path = os.path.join(folder, "config.json")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_DOCKERCONFIG_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError("InvalidCredentials", f"cannot read {path}: {exc.strerror or exc}") from None
    return credentials_from_dockerconfig(data, registry)


def oci_tag(uri: str) -> bool:
    """An ``oci://`` URI that names a tag, not a digest (the operator resolves it once)."""
    if uri[:6].lower() != "oci://":
        return False
    try:
        return parse_reference(uri).digest is None
    except StoreError:
        return False


def same_repository(pinned: str, uri: str) -> bool:
    """Whether `pinned` (a recorded status.resolvedUri) names the registry, repository and path of `uri`."""
    try:
        a, b = parse_reference(pinned), parse_reference(uri)
    except StoreError:
        return False
    return a.digest is not None and (a.registry, a.repository, a.path) == (b.registry, b.repository, b.path)


def plain_http_registries(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    env = os.environ if environ is None else environ
    return frozenset(r.strip().lower() for r in env.get(PLAIN_HTTP_ENV, "").replace(" ", ",").split(",") if r.strip())


# ---------------------------------------------------------------------------------------------- manifests


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def file_path(self) -> str | None:
        """The file path the layer holds (ModelPack filepath, else the oras title)."""
        return self.annotations.get(ANN_FILEPATH) or self.annotations.get(ANN_TITLE)

    @property
    def archive(self) -> tuple[bool, str | None]:
        """(is an archive, its compression) — an archive layer's entries are paths of the file tree."""
        m = _MODELPACK_LAYER_RE.match(self.media_type)
        if m:
            fmt = m.group(1)
            return (fmt != "raw", {"tar+gzip": "gzip", "tar+zstd": "zstd"}.get(fmt))
        if self.annotations.get(ANN_ORAS_UNPACK) == "true":
            return True, "gzip" if self.media_type.endswith("gzip") else ARCHIVE_TYPES.get(self.media_type)
        if self.file_path:  # an artifact's file (oras push FILE, whatever its media type)
            return False, None
        if self.media_type in ARCHIVE_TYPES:
            return True, ARCHIVE_TYPES[self.media_type]
        return False, None


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    artifact_type: str | None
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def is_image(self) -> bool:
        """A plain container image (layers are its filesystem) rather than an artifact of files."""
        return self.config.media_type in IMAGE_CONFIG_TYPES and self.artifact_type is None

    @property
    def is_modelpack(self) -> bool:
        return self.artifact_type == MODELPACK_ARTIFACT_TYPE or self.config.media_type == MODELPACK_CONFIG_TYPE


def _descriptor(obj: Any, where: str, uri: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise StoreError("BadManifest", f"{uri}: {where} is not an object")
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(media_type, str) or not 0 < len(media_type) <= 255:
        raise StoreError("BadManifest", f"{uri}: {where} has no valid mediaType")
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        other = isinstance(digest, str) and re.match(r"^sha512:[0-9a-f]{128}$", digest) is not None
        raise StoreError("Unsupported" if other else "BadManifest", f"{uri}: {where} digest must be sha256:<64 hex>")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 2**62:
        raise StoreError("BadManifest", f"{uri}: {where} has no valid size")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) + len(v) <= MAX_ANNOTATION_BYTES
        for k, v in annotations.items()
    ):
        raise StoreError("BadManifest", f"{uri}: {where} annotations must be short strings")
    return Descriptor(media_type, digest, size, dict(annotations))


def parse_manifest(data: bytes, digest: str, uri: str = "the manifest") -> Manifest:
    """Parse an image manifest whose bytes hash to `digest` (checked by the caller); StoreError BadManifest
    or Unsupported (an index: pin a platform's manifest)."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise StoreError("BadManifest", f"{uri}: the manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise StoreError("BadManifest", f"{uri}: the manifest is not a JSON object")
    media_type = doc.get("mediaType") or OCI_MANIFEST
    if media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in doc:
        raise StoreError("Unsupported", f"{uri} is an image index: pin the digest of one manifest in it")
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST) or doc.get("schemaVersion") != 2:
        raise StoreError("Unsupported", f"{uri}: unsupported manifest type {str(media_type)[:100]!r}")
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise StoreError("BadManifest", f"{uri}: 'layers' must be a list of at most {MAX_LAYERS}")
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not (isinstance(artifact_type, str) and len(artifact_type) <= 255):
        raise StoreError("BadManifest", f"{uri}: invalid artifactType")
    return Manifest(
        digest=digest,
        media_type=media_type,
        artifact_type=artifact_type,
        config=_descriptor(doc.get("config"), "config", uri),
        layers=tuple(_descriptor(layer, f"layer {i}", uri) for i, layer in enumerate(layers)),
    )


# ----------------------------------------------------------------------------------------------- registry


def _parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = value.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _CHALLENGE_PARAM_RE.findall(rest)}


class Registry:
    """A pull-only client of one repository. `limits` makes the bounds of one request from a byte cap."""

    def __init__(
        self,
        ref: Reference,
        credentials: RegistryCredentials | None,
        *,
        net: fetch.NetworkPolicy,
        limits: Callable[[int | None], fetch.Limits],
        plain_http: bool | None = None,
    ) -> None:
        self.ref = ref
        self.credentials = credentials
        self.net = net
        self.limits = limits
        if plain_http is None:
            plain_http = ref.registry.lower() in plain_http_registries()
        self.plain_http = plain_http
        if plain_http and not net.allow_http:  # a plain-http registry's redirects (its storage) are http too
            self.net = dataclasses.replace(net, allow_http=True)
        scheme = "http" if plain_http else "https"
        self.base = f"{scheme}://{ref.api_host}/v2/{ref.repository}"
        self._authorization: str | None = None
        if credentials is not None and credentials.registry_token:
            self._authorization = f"Bearer {credentials.registry_token}"

    # -- requests

    def _get(self, path: str, sink: Callable[[bytes], None], *, max_bytes: int | None, accept: str | None = None,
             expected_size: int | None = None, what: str = "allowed") -> int:
        url = self.base + path
        for attempt in range(2):
            headers = {"Accept": accept} if accept else {}
            if self._authorization:
                headers["Authorization"] = self._authorization
            try:
                return fetch.get_url(
                    url, sink, limits=self.limits(max_bytes), net=self.net, headers=headers,
                    plain_http=self.plain_http, expected_size=expected_size, what=what,
                )
            except StoreError as exc:
                if exc.challenge and attempt == 0 and self._authorize(exc.challenge):
                    continue
                if exc.reason == "Forbidden":
                    raise StoreError("Forbidden", f"{self.ref.uri()}: the registry refused the pull {self._who()} ({exc.message})") from None
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _who(self) -> str:
        return "anonymously" if self.credentials is None else f"as {self.credentials.username or 'a token'}"

    def _authorize(self, challenge: str) -> bool:
        """Answer a 401 challenge: basic credentials, or a bearer token from the realm. False: nothing to try."""
        scheme, params = _parse_challenge(challenge)
        creds = self.credentials
        if scheme == "basic":
            basic = creds.basic() if creds is not None else None
            if basic is None or self._authorization == basic:
                return False
            self._authorization = basic
            return True
        if scheme != "bearer" or not params.get("realm"):
            return False
        if creds is not None and creds.identity_token and creds.basic() is None:
            raise StoreError("Unsupported", f"{self.ref.uri()}: identity (refresh) tokens are not supported; use a username and password or a registry token")
        realm = params["realm"]
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise StoreError("BadResponse", f"{self.ref.uri()}: the registry's token realm is not an http(s) URL")
        query = [("service", params["service"])] if params.get("service") else []
        query.append(("scope", params.get("scope") or f"repository:{self.ref.repository}:pull"))
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path or "/",
                                       "&".join(filter(None, (parts.query, urllib.parse.urlencode(query)))), ""))
        headers = {"Accept": "application/json"}
        basic = creds.basic() if creds is not None else None
        if basic:
            headers["Authorization"] = basic
        buf = bytearray()
        same_host = (parts.hostname or "").lower() == self.ref.api_host.split(":")[0].lower().strip("[]")
        try:
            fetch.get_url(
                url, buf.extend, limits=self.limits(MAX_TOKEN_RESPONSE_BYTES), net=self.net, headers=headers,
                plain_http=self.plain_http and same_host, what="allowed for a token response",
            )
        except StoreError as exc:
            if exc.reason != "Forbidden":
                raise
            raise StoreError(
                "Forbidden", f"{self.ref.uri()}: the registry's token service refused the pull {self._who()} ({exc.message})"
            ) from None
        try:
            doc = json.loads(bytes(buf))
        except ValueError:
            raise StoreError("BadResponse", f"{self.ref.uri()}: the token response is not JSON") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_BYTES or any(c in token for c in "\r\n"):
            raise StoreError("BadResponse", f"{self.ref.uri()}: the token response holds no usable token")
        bearer = f"Bearer {token}"
        if bearer == self._authorization:
            return False
        self._authorization = bearer
        return True

    # -- content

    def manifest_bytes(self, reference: str | None = None) -> tuple[bytes, str]:
        """The manifest `reference` (default: the URI's digest, else its tag) and its sha256 digest; when
        fetched by digest, the bytes must hash to it (DigestMismatch otherwise)."""
        reference = reference or self.ref.reference
        buf = bytearray()
        self._get(f"/manifests/{urllib.parse.quote(reference, safe=':')}", buf.extend,
                  max_bytes=MAX_MANIFEST_BYTES, accept=ACCEPT, what="allowed for a manifest")
        data = bytes(buf)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if _DIGEST_RE.match(reference) and digest != reference:
            raise StoreError("DigestMismatch", f"{self.ref.uri()}: the registry sent a manifest whose digest is {digest}")
        return data, digest

    def manifest(self) -> Manifest:
        if self.ref.digest is None:
            raise StoreError("InvalidURI", f"{self.ref.uri()} is not pinned by digest (oci://registry/repo@sha256:...)")
        data, digest = self.manifest_bytes(self.ref.digest)
        return parse_manifest(data, digest, self.ref.uri())

    def blob(self, desc: Descriptor, sink: Callable[[bytes], None], *, max_bytes: int | None,
             what: str = "allowed") -> int:
        """Stream blob `desc` into `sink`; its size must be the descriptor's and its sha256 the digest
        (DigestMismatch, raised after the last byte: the caller discards what the sink kept)."""
        if max_bytes is not None and desc.size > max_bytes:
            raise StoreError("TooLarge", f"{self.ref.uri()}: blob {desc.digest} is {desc.size} bytes, more than the {max_bytes} {what}")
        h = hashlib.sha256()

        def both(chunk: bytes) -> None:
            h.update(chunk)
            sink(chunk)

        got = self._get(f"/blobs/{desc.digest}", both, max_bytes=max_bytes, expected_size=desc.size, what=what)
        if "sha256:" + h.hexdigest() != desc.digest:
            raise StoreError("DigestMismatch", f"{self.ref.uri()}: blob {desc.digest} does not hash to its digest (sha256:{h.hexdigest()})")
        return got

    def blob_bytes(self, desc: Descriptor, max_bytes: int) -> bytes:
        buf = bytearray()
        self.blob(desc, buf.extend, max_bytes=max_bytes)
        return bytes(buf)

    def referrers(self, digest: str, artifact_types: tuple[str, ...] = BUNDLE_ARTIFACT_TYPES) -> list[str]:
        """Digests of the manifests that refer to `digest` with one of `artifact_types` (at most
        MAX_REFERRERS): the OCI 1.1 referrers API, else the referrers tag schema (``sha256-<hex>``, what oras
        writes to a registry without the API, e.g. distribution)."""
        buf = bytearray()
        try:
            self._get(f"/referrers/{digest}", buf.extend, max_bytes=MAX_MANIFEST_BYTES, accept=OCI_INDEX,
                      what="allowed for a referrers index")
        except StoreError as exc:
            if exc.reason != "NotFound":
                raise
            buf.clear()
            try:
                self._get(f"/manifests/{digest.replace(':', '-')}", buf.extend, max_bytes=MAX_MANIFEST_BYTES,
                          accept=OCI_INDEX, what="allowed for a referrers index")
            except StoreError as exc2:
                if exc2.reason == "NotFound":
                    return []
                raise
        try:
            doc = json.loads(bytes(buf))
        except ValueError:
            raise StoreError("BadManifest", f"{self.ref.uri()}: the referrers index is not JSON") from None
        entries = doc.get("manifests") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise StoreError("BadManifest", f"{self.ref.uri()}: the referrers index has no 'manifests' list")
        out = []
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("artifactType") not in artifact_types:
                continue
            d = entry.get("digest")
            if isinstance(d, str) and _DIGEST_RE.match(d) and d not in out:
                out.append(d)
            if len(out) >= MAX_REFERRERS:
                break
        return out

    def referrer_bundles(self, digest: str, max_bytes: int) -> list[bytes]:
        """The signature bundles attached to `digest` as referrers (the first layer of each referrer manifest
        whose subject is `digest`), each at most `max_bytes`; the caller keeps the one a trusted key signed."""
        bundles = []
        for ref_digest in self.referrers(digest):
            data, got = self.manifest_bytes(ref_digest)
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            subject = doc.get("subject") if isinstance(doc, dict) else None
            if not isinstance(subject, dict) or subject.get("digest") != digest:
                continue
            referrer = parse_manifest(data, got, self.ref.uri(digest=ref_digest))
            if referrer.layers:
                bundles.append(self.blob_bytes(referrer.layers[0], max_bytes))
        return bundles


# ------------------------------------------------------------------------------------------ public helpers


def _default_limits(limits: fetch.Limits) -> Callable[[int | None], fetch.Limits]:
    def make(max_bytes: int | None) -> fetch.Limits:
        cap = max_bytes if limits.max_bytes is None else (
            limits.max_bytes if max_bytes is None else min(max_bytes, limits.max_bytes))
        return dataclasses.replace(limits, max_bytes=cap)
    return make


def resolve(
    uri: str,
    credentials: RegistryCredentials | None = None,
    *,
    net: fetch.NetworkPolicy | None = None,
    limits: fetch.Limits | None = None,
) -> str:
    """The URI pinned by digest: ``oci://reg/repo:tag#path`` -> ``oci://reg/repo@sha256:<digest of the manifest
    the tag names now>#path``. A URI with a digest is returned pinned to it (without its tag) and is not looked
    up. The manifest must be a single image/artifact manifest (an index is refused). Bounded like a bundle
    fetch (`limits`, default 20 s and 4 MiB); `net` defaults to the loader's unrestricted view; the operator
    passes its restricted :class:`~modelhub.adapters.fetch.NetworkPolicy`."""
    ref = parse_reference(uri)
    if ref.digest is not None:
        return ref.uri(digest=ref.digest)
    lim = limits or fetch.Limits.within(20.0, max_bytes=MAX_MANIFEST_BYTES, min_rate=4096, window=5.0)
    reg = Registry(ref, credentials, net=net or fetch.NetworkPolicy.unrestricted(), limits=_default_limits(lim))
    data, digest = reg.manifest_bytes(ref.tag or "latest")
    parse_manifest(data, digest, ref.uri())
    return ref.uri(digest=digest)


def find_file(manifest: Manifest, path: str) -> Descriptor | None:
    """The single-file layer at `path` of an artifact (None: not a file layer of its own)."""
    if manifest.is_image:
        return None
    for layer in manifest.layers:
        is_archive, _ = layer.archive
        if not is_archive and (layer.file_path or "").strip("/") == path:
            return layer
    return None


def read_file(
    uri: str,
    *,
    limits: fetch.Limits,
    net: fetch.NetworkPolicy,
    credentials: RegistryCredentials | None = None,
    what: str = "allowed",
) -> bytes:
    """See :func:`modelhub.adapters.fetch.read_oci_bytes`."""
    if limits.max_bytes is None:
        raise ValueError("read_file needs a byte cap")
    ref = parse_reference(uri)
    if not ref.path:
        raise StoreError("InvalidURI", f"{uri}: name the file after '#' (e.g. #model.sig)")
    reg = Registry(ref, credentials, net=net, limits=_default_limits(limits))
    manifest = reg.manifest()
    layer = find_file(manifest, ref.path)
    if layer is not None:
        return reg.blob_bytes(layer, limits.max_bytes)
    # Not a layer of its own: look in the archive layers small enough to read whole (an image's last layer
    # that holds the file wins, as in the image's filesystem).
    found: bytes | None = None
    for desc in manifest.layers:
        is_archive, compression = desc.archive if not manifest.is_image else (True, ARCHIVE_TYPES.get(desc.media_type))
        if not is_archive or desc.size > limits.max_bytes:
            continue
        data = reg.blob_bytes(desc, limits.max_bytes)
        content = _file_in_tar(data, compression, ref.path, limits.max_bytes, uri)
        if content is not None:
            found = content
    if found is None:
        raise StoreError(
            "NotFound",
            f"{uri}: no layer of the artifact holds {ref.path!r} (as its own layer, or in an archive layer of at "
            f"most {limits.max_bytes} bytes)",
        )
    return found


def member_path(name: str) -> str:
    """A tar entry's name as a path of the file tree: without leading ``./`` or ``/`` and trailing ``/``."""
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    return "" if name == "." else name.rstrip("/")


def _file_in_tar(data: bytes, compression: str | None, path: str, max_bytes: int, uri: str) -> bytes | None:
    if compression not in (None, "gzip"):
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz" if compression == "gzip" else "r|") as tf:
            for member in tf:
                if member_path(member.name) != path or not member.isreg():
                    continue
                if member.size > max_bytes:
                    raise StoreError("TooLarge", f"{uri}: {path} is {member.size} bytes, more than the {max_bytes} allowed")
                src = tf.extractfile(member)
                return src.read(max_bytes + 1) if src is not None else None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise StoreError("BadLayer", f"{uri}: an archive layer is not a readable tar: {exc}") from None
    return None
