"""The operator's signature-bundle fetches: bounded, off the event loop, and no confused deputy.

The operator fetches a bundle a *tenant* points it at, with the operator's own filesystem, network and cloud
identity. So, by the operator's settings (:class:`BundleSettings`, from the environment):

* every fetch is bounded: at most ``max_bytes`` (never buffered beyond), one deadline, a minimum rate;
* ``file://`` and ``pvc://`` only under an allowed root (default: none - a bundle on the operator's disk is
  never a tenant's business); the check is made on the path actually opened, after symlinks, and before any
  file is touched, so a refusal says nothing about what exists on the operator's disk;
* ``https://`` connects only to resolved addresses the network policy allows (loopback, link-local - where
  cloud metadata lives -, unspecified and multicast are refused unless ``MODELHUB_FETCH_ALLOW_CIDRS`` lists
  them), pinned to the checked address, and follows no redirect;
* ``s3://`` only with credentials named by the ModelVersion (a Secret in its own namespace), never the
  operator's ambient identity (unless ``MODELHUB_S3_AMBIENT_CREDENTIALS=1``, for single-tenant set-ups);
* content that is not a Sigstore bundle is refused with a message that says so *without quoting it*, and
  before ``json.loads`` sees anything large or deeply structured (:func:`check_bundle_bytes`).

:class:`BundleFetcher` runs fetches on its own bounded thread pool, so a slow store holds one of its threads,
never a queue worker or the event loop: ``await fetcher.fetch(uri)`` (cancellable), or the non-blocking
``fetcher.request(key, uri, on_done=...)`` that returns the result once it is there and calls ``on_done`` (on
the caller's event loop) when it lands. Results are :class:`Bundle` or :class:`Refusal` (reason + message),
never an exception.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhub.adapters import fetch, stores
from modelhub.adapters.fetch import S3Credentials
from modelhub.vocab import reasons as R

__all__ = [
    "ENV",
    "Bundle",
    "BundleFetcher",
    "BundleSettings",
    "Refusal",
    "bundle_from_configmap",
    "check_bundle_bytes",
    "s3_credentials_from_secret",
]

MiB = 1024 * 1024
SIGSTORE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"

ENV = {
    "max_bytes": "MODELHUB_BUNDLE_MAX_BYTES",
    "deadline_seconds": "MODELHUB_BUNDLE_DEADLINE_SECONDS",
    "min_rate": "MODELHUB_BUNDLE_MIN_RATE",
    "rate_window": "MODELHUB_BUNDLE_RATE_WINDOW_SECONDS",
    "concurrency": "MODELHUB_BUNDLE_FETCH_CONCURRENCY",
    "per_namespace": "MODELHUB_BUNDLE_FETCH_PER_NAMESPACE",
    "file_roots": "MODELHUB_BUNDLE_FILE_ROOTS",
    "allow_cidrs": "MODELHUB_FETCH_ALLOW_CIDRS",
    "deny_cidrs": "MODELHUB_FETCH_DENY_CIDRS",
    "allow_http": "MODELHUB_ALLOW_HTTP",
    "s3_ambient_credentials": "MODELHUB_S3_AMBIENT_CREDENTIALS",
    "max_json_tokens": "MODELHUB_BUNDLE_MAX_JSON_TOKENS",
    "cache_seconds": "MODELHUB_BUNDLE_CACHE_SECONDS",
}


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class BundleSettings:
    """The operator's bounds on bundle fetches (see :data:`ENV` for the variables)."""

    max_bytes: int = 4 * MiB
    deadline_seconds: float = 20.0
    min_rate: float = 4096.0  # bytes/s over each window
    rate_window: float = 5.0
    read_timeout: float = 10.0
    concurrency: int = 8
    per_namespace: int = 0  # fetches of one namespace at once (0: half of concurrency)
    file_roots: tuple[str, ...] = ()
    allow_cidrs: tuple[fetch.IPNetwork, ...] = ()
    deny_cidrs: tuple[fetch.IPNetwork, ...] = ()  # refused in addition to fetch.DEFAULT_DENY
    allow_http: bool = False
    s3_ambient_credentials: bool = False
    max_json_tokens: int = 4096  # JSON structure characters ({ [ , :) a bundle may hold
    cache_seconds: float = 300.0  # how long a fetched bundle is reused before it is fetched again

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.concurrency < 1 or self.max_json_tokens < 1 or self.per_namespace < 0:
            raise ValueError("bundle max bytes, concurrency and JSON token limit must be at least 1")
        if not (self.deadline_seconds > 0 and self.rate_window > 0 and self.min_rate >= 0):
            raise ValueError("bundle deadline and rate window must be > 0, the minimum rate >= 0")
        for root in self.file_roots:
            if not os.path.isabs(root):
                raise ValueError(f"{ENV['file_roots']}: {root!r} is not an absolute path")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BundleSettings:
        """From the environment; ValueError names a malformed variable."""
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {}

        def get(name: str) -> str:
            return (env.get(ENV[name]) or "").strip()

        from modelhub.domain.loadlimits import parse_size

        if get("max_bytes"):
            kw["max_bytes"] = parse_size(get("max_bytes"), ENV["max_bytes"])
        for name in ("deadline_seconds", "min_rate", "rate_window", "cache_seconds"):
            if get(name):
                try:
                    kw[name] = float(get(name))
                except ValueError:
                    raise ValueError(f"{ENV[name]}: {get(name)!r} is not a number") from None
        for name in ("concurrency", "max_json_tokens", "per_namespace"):
            if get(name):
                try:
                    kw[name] = int(get(name))
                except ValueError:
                    raise ValueError(f"{ENV[name]}: {get(name)!r} is not a whole number") from None
        if get("file_roots"):
            kw["file_roots"] = tuple(p for p in get("file_roots").split(":") if p)
        kw["allow_cidrs"] = fetch.parse_cidrs(get("allow_cidrs"), ENV["allow_cidrs"])
        kw["deny_cidrs"] = fetch.parse_cidrs(get("deny_cidrs"), ENV["deny_cidrs"])
        kw["allow_http"] = _truthy(get("allow_http"))
        kw["s3_ambient_credentials"] = _truthy(get("s3_ambient_credentials"))
        return cls(**kw)

    def network_policy(self) -> fetch.NetworkPolicy:
        default = fetch.NetworkPolicy()
        return fetch.NetworkPolicy(
            deny=default.deny + self.deny_cidrs, allow=self.allow_cidrs, check_addresses=True,
            max_redirects=0, use_proxy=False, allow_http=self.allow_http,
        )

    def local_policy(self) -> fetch.LocalPolicy:
        return fetch.LocalPolicy(tuple(self.file_roots))

    def limits(self, stop: threading.Event | None = None) -> fetch.Limits:
        return fetch.Limits(
            max_bytes=self.max_bytes, deadline=time.monotonic() + self.deadline_seconds, min_rate=self.min_rate,
            window=self.rate_window, read_timeout=self.read_timeout, connect_timeout=min(self.read_timeout, 10.0),
            stop=stop,
        )


@dataclass(frozen=True)
class Bundle:
    """Bundle bytes that passed :func:`check_bundle_bytes`, and where they came from (for messages)."""

    data: bytes
    where: str


@dataclass(frozen=True)
class Refusal:
    """Why there is no bundle: a CamelCase ``reason`` for the SignatureVerified condition, a ``message`` that
    never quotes fetched content, and whether trying again later may help (``retry``)."""

    reason: str
    message: str
    retry: bool = False


# Store reasons -> condition reasons (and whether a later attempt may succeed).
_REASONS: dict[str, tuple[str, bool]] = {
    "NotFound": (R.BUNDLE_NOT_FOUND, True),
    "Unreachable": (R.BUNDLE_UNREACHABLE, True),
    "TLSError": (R.BUNDLE_UNREACHABLE, True),
    "BadResponse": (R.BUNDLE_UNREACHABLE, True),
    "Forbidden": (R.BUNDLE_UNREACHABLE, True),
    "Timeout": (R.BUNDLE_TOO_SLOW, True),
    "TooSlow": (R.BUNDLE_TOO_SLOW, True),
    "TooLarge": (R.BUNDLE_TOO_LARGE, True),
    "Refused": (R.BUNDLE_REFUSED, False),
    "InvalidURI": (R.BUNDLE_REFUSED, False),
    "Unsupported": (R.BUNDLE_REFUSED, False),
    "UnsafePath": (R.BUNDLE_REFUSED, False),
    "Cancelled": (R.BUNDLE_UNREACHABLE, True),
}


def _refusal_of(exc: stores.StoreError) -> Refusal:
    reason, retry = _REASONS.get(exc.reason, (R.BUNDLE_UNREACHABLE, True))
    return Refusal(reason, f"signature bundle: {exc.message}", retry)


def check_bundle_bytes(data: bytes, where: str, settings: BundleSettings | None = None) -> Refusal | None:
    """None when `data` may be handed to the signature verifier; else why not, without quoting the content.

    Linear-time checks before any parsing of size: the byte cap, then the JSON structure count (a Sigstore
    bundle keeps its payload base64-encoded, so it holds a few dozen ``{ [ , :`` at most; junk JSON of a
    few MiB would cost tens of MB of objects); then one bounded parse to see that it is a JSON object with a
    Sigstore bundle media type."""
    s = settings or BundleSettings()
    if len(data) > s.max_bytes:
        return Refusal(R.BUNDLE_TOO_LARGE, f"the signature bundle at {where} is {len(data)} bytes, more than the "
                       f"{s.max_bytes} allowed", retry=True)
    tokens = data.count(b"{") + data.count(b"[") + data.count(b",") + data.count(b":")
    if tokens > s.max_json_tokens:
        return _not_a_bundle(where, "far more JSON structure than a bundle has")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _not_a_bundle(where, "not UTF-8 text")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return _not_a_bundle(where, "not JSON")
    media = doc.get("mediaType") if isinstance(doc, dict) else None
    if not isinstance(media, str) or not media.startswith(SIGSTORE_MEDIA_PREFIX):
        return _not_a_bundle(where, "not a Sigstore bundle")
    return None


def _not_a_bundle(where: str, why: str) -> Refusal:
    return Refusal(R.MALFORMED_BUNDLE, f"the content at {where} is not a signature bundle ({why})")


def bundle_from_configmap(
    configmap: Mapping[str, Any] | None, namespace: str, name: str, key: str, settings: BundleSettings | None = None
) -> Bundle | Refusal:
    """A bundle stored in a ConfigMap key (the ConfigMap as the API returns it, or None when absent)."""
    where = f"ConfigMap {namespace}/{name} key {key}"
    if configmap is None:
        return Refusal(R.BUNDLE_NOT_FOUND, f"signature ConfigMap {namespace}/{name} not found", retry=True)
    data = configmap.get("data") or {}
    binary = configmap.get("binaryData") or {}
    if key in data:
        raw = str(data[key]).encode("utf-8")
    elif key in binary:
        try:
            raw = base64.b64decode(binary[key], validate=True)
        except (binascii.Error, ValueError):
            return _not_a_bundle(where, "binaryData is not base64")
    else:
        return Refusal(R.BUNDLE_NOT_FOUND, f"signature ConfigMap {namespace}/{name} has no key {key!r}", retry=True)
    refusal = check_bundle_bytes(raw, where, settings)
    return refusal or Bundle(raw, where)


def s3_credentials_from_secret(secret: Mapping[str, Any] | None, namespace: str, name: str) -> S3Credentials | Refusal:
    """S3 credentials from a Secret in the ModelVersion's namespace (as the API returns it: base64 ``data``,
    or ``stringData``-like plain values under ``stringData``)."""
    if secret is None:
        return Refusal(R.CREDENTIALS_NOT_FOUND, f"credentials Secret {namespace}/{name} not found", retry=True)
    values: dict[str, str] = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            values[k] = base64.b64decode(v, validate=True).decode("utf-8").strip()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return Refusal(R.INVALID_CREDENTIALS, f"credentials Secret {namespace}/{name} key {k!r} is not valid")
    for k, v in (secret.get("stringData") or {}).items():
        values[k] = str(v).strip()
    missing = [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not values.get(k)]
    if missing:
        return Refusal(
            R.INVALID_CREDENTIALS, f"credentials Secret {namespace}/{name} lacks {' and '.join(missing)}"
        )
    return S3Credentials(
        access_key_id=values["AWS_ACCESS_KEY_ID"],
        secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
        session_token=values.get("AWS_SESSION_TOKEN") or None,
        region=values.get("AWS_REGION") or None,
        endpoint_url=values.get("AWS_ENDPOINT_URL") or None,
    )


def registry_credentials_from_secret(secret: Mapping[str, Any] | None, namespace: str, name: str,
                                     uri: str) -> Any:
    """The credentials for the registry of an ``oci://`` `uri` in a ``kubernetes.io/dockerconfigjson`` Secret
    of the ModelVersion's namespace (a RegistryCredentials, None when it has no entry for that registry, or a
    Refusal)."""
    from modelhub.adapters import oci

    if secret is None:
        return Refusal(R.CREDENTIALS_NOT_FOUND, f"registry credentials Secret {namespace}/{name} not found",
                       retry=True)
    raw = (secret.get("data") or {}).get(".dockerconfigjson")
    if raw is None:
        return Refusal(R.INVALID_CREDENTIALS, f"registry credentials Secret {namespace}/{name} has no key "
                       "'.dockerconfigjson' (type kubernetes.io/dockerconfigjson)")
    try:
        config = base64.b64decode(raw, validate=True)
        return oci.credentials_from_dockerconfig(config, oci.parse_reference(uri).registry)
    except (binascii.Error, ValueError, stores.StoreError):
        return Refusal(R.INVALID_CREDENTIALS, f"registry credentials Secret {namespace}/{name}: "
                       "'.dockerconfigjson' is not a valid docker config")


# ---------------------------------------------------------------------------------------------- fetcher


class _FairQueue:
    """Runs callables on `pool`: at most `limit` at once, at most `per_group` of one group (a namespace), and
    the waiting groups served in turn - so one namespace's slow stores never take every thread."""

    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor, limit: int, per_group: int) -> None:
        self._pool = pool
        self._limit = limit
        self._per_group = per_group
        self._lock = threading.Lock()
        self._queues: OrderedDict[Hashable, deque[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]] = (
            OrderedDict()
        )
        self._running: dict[Hashable, int] = {}
        self._total = 0

    def submit(self, group: Hashable, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._queues.setdefault(group, deque()).append((fn, future))
        self._pump()
        return future

    def close(self) -> None:
        """Cancel everything still waiting."""
        with self._lock:
            waiting = [future for queue in self._queues.values() for _, future in queue]
            self._queues.clear()
        for future in waiting:
            future.cancel()

    def _pump(self) -> None:
        start = []
        with self._lock:
            while self._total < self._limit:
                ready = [g for g in self._queues if self._running.get(g, 0) < self._per_group][:1]
                if not ready:
                    break
                group = ready[0]
                queue = self._queues[group]
                fn, future = queue.popleft()
                if queue:
                    self._queues.move_to_end(group)  # its next task waits for the other groups' turn
                else:
                    del self._queues[group]
                if not future.set_running_or_notify_cancel():
                    continue  # cancelled while it waited
                self._total += 1
                self._running[group] = self._running.get(group, 0) + 1
                start.append((group, fn, future))
        for group, fn, future in start:
            try:
                self._pool.submit(self._run, group, fn, future)
            except RuntimeError:  # the pool is shut down
                future.set_exception(RuntimeError("the bundle fetcher is shut down"))

    def _run(self, group: Hashable, fn: Callable[[], Any], future: concurrent.futures.Future[Any]) -> None:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the future's owner
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            with self._lock:
                self._total -= 1
                self._running[group] -= 1
                if not self._running[group]:
                    del self._running[group]
            self._pump()


@dataclass
class _Job:
    fingerprint: str
    stop: threading.Event
    future: concurrent.futures.Future[Bundle | Refusal]
    callbacks: list[Callable[[], None]] = field(default_factory=list)


class BundleFetcher:
    """Bundle fetches on a pool of ``settings.concurrency`` threads of their own (see the module docstring)."""

    def __init__(
        self,
        settings: BundleSettings | None = None,
        *,
        max_results: int = 10_000,
        verify_workers: int = 2,
        cache_seconds: float | None = None,
        retry_seconds: float = 1.0,
    ) -> None:
        self.settings = settings or BundleSettings.from_env()
        self.cache_seconds = self.settings.cache_seconds if cache_seconds is None else cache_seconds
        self.retry_seconds = retry_seconds
        self._net = self.settings.network_policy()
        # Registries (GHCR, Docker Hub) redirect blob reads to their storage: each hop is still checked.
        self._registry_net = dataclasses.replace(self._net, max_redirects=3)
        self._local = self.settings.local_policy()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="bundle-fetch"
        )
        per_group = self.settings.per_namespace or max(1, self.settings.concurrency // 2)
        self._queue = _FairQueue(self._pool, self.settings.concurrency, min(per_group, self.settings.concurrency))
        self._verify_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=verify_workers, thread_name_prefix="bundle-verify"
        )
        self._lock = threading.Lock()
        self._jobs: dict[Hashable, _Job] = {}
        self._results: OrderedDict[Hashable, tuple[str, Bundle | Refusal, float]] = OrderedDict()
        self._max_results = max_results

    # -- blocking core (runs on the pool) ---------------------------------------------------------------

    def fetch_sync(
        self, uri: str, *, credentials: Any = None, stop: threading.Event | None = None, ca_pem: bytes | None = None
    ) -> Bundle | Refusal:
        """Fetch and check one bundle; blocks (at most about ``deadline_seconds``). Never raises for what a
        tenant or a store can cause. `credentials`: S3Credentials for s3://, RegistryCredentials for oci://."""
        where = stores.redact(uri)
        try:
            if uri[:6].lower() == "oci://":
                data = fetch.read_oci_bytes(uri, limits=self.settings.limits(stop), net=self._registry_net,
                                            credentials=credentials, what="allowed for a signature bundle")
            else:
                data = fetch.read_bytes(
                    uri, limits=self.settings.limits(stop), net=self._net, local=self._local,
                    credentials=credentials, s3_ambient=self.settings.s3_ambient_credentials,
                    what="allowed for a signature bundle", ca_pem=ca_pem,
                )
        except stores.StoreError as exc:
            return _refusal_of(exc)
        except Exception as exc:  # noqa: BLE001 - a store must not crash the operator
            return Refusal(R.BUNDLE_UNREACHABLE, f"signature bundle {where}: {type(exc).__name__}", retry=True)
        return check_bundle_bytes(data, where, self.settings) or Bundle(data, where)

    # -- asyncio ----------------------------------------------------------------------------------------

    def _submit(
        self, group: Hashable, uri: str, credentials: Any, stop: threading.Event,
        work: Callable[..., Any] | None = None, ca_pem: bytes | None = None,
    ) -> concurrent.futures.Future[Any]:
        if work is not None:
            return self._queue.submit(group, lambda: work(uri, credentials=credentials, stop=stop))
        return self._queue.submit(group, lambda: self.fetch_sync(uri, credentials=credentials, stop=stop,
                                                                 ca_pem=ca_pem))

    async def fetch(
        self, uri: str, *, credentials: S3Credentials | None = None, group: Hashable = None
    ) -> Bundle | Refusal:
        """Await one fetch (queued fairly by `group`, e.g. the namespace); cancelling the awaiting task stops
        the transfer."""
        stop = threading.Event()
        fut = self._submit(group, uri, credentials, stop)
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            stop.set()
            fut.cancel()
            raise

    def request(
        self,
        key: Hashable,
        uri: str,
        *,
        credentials: Any = None,
        on_done: Callable[[], None] | None = None,
        group: Hashable = None,
        resolve: bool = False,
        ca_pem: bytes | None = None,
    ) -> Any:
        """Non-blocking. The last result of fetching `uri` for `key`, else None; either way a fetch is started
        (once) when there is no fresh result - a Bundle stays fresh ``cache_seconds``, a Refusal
        ``retry_seconds`` (so the caller's own backoff decides when a refused fetch is tried again). While a
        refresh runs, the previous result is returned (stale while revalidating). `on_done` is called when the
        started fetch finishes - on the event loop of the caller when called from one (use it to re-enqueue
        `key`). A request for another URI or other credentials replaces (and stops) the running one. Fetches
        wait their turn by `group` (default: ``key[0]`` for a tuple key, e.g. ``(namespace, name)``).
        `resolve`: the job pins an oci:// tag (:meth:`resolve_sync`, a str or a Refusal) instead of fetching."""
        if group is None and isinstance(key, tuple) and key:
            group = key[0]
        fingerprint = _fingerprint(("resolve:" if resolve else "") + uri, credentials, ca_pem)
        callback = _on_loop(on_done)
        now = time.monotonic()
        with self._lock:
            done = self._results.get(key)
            previous: Bundle | Refusal | None = None
            if done is not None and done[0] == fingerprint:
                previous = done[1]
                ttl = self.retry_seconds if isinstance(previous, Refusal) else self.cache_seconds
                if now - done[2] < ttl:
                    return previous
            job = self._jobs.get(key)
            if job is not None and job.fingerprint == fingerprint:
                if callback is not None:
                    job.callbacks.append(callback)
                return previous
            if job is not None:
                job.stop.set()
                job.future.cancel()
            stop = threading.Event()
            future = self._submit(group, uri, credentials, stop, self.resolve_sync if resolve else None, ca_pem)
            job = _Job(fingerprint, stop, future, [callback] if callback else [])
            self._jobs[key] = job
            if previous is None:
                self._results.pop(key, None)
        def finished(f: concurrent.futures.Future[Bundle | Refusal], k: Hashable = key, j: _Job = job) -> None:
            self._finished(k, j, f)

        future.add_done_callback(finished)
        return previous

    def resolve_sync(self, uri: str, *, credentials: Any = None, stop: threading.Event | None = None) -> str | Refusal:
        """``oci://reg/repo:tag`` pinned to the digest its tag names now (:func:`modelhub.adapters.oci.resolve`),
        under the same bounds and network policy as a bundle fetch."""
        from modelhub.adapters import oci

        try:
            return oci.resolve(uri, credentials, net=self._registry_net, limits=self.settings.limits(stop))
        except stores.StoreError as exc:
            refusal = _refusal_of(exc)
            return Refusal(refusal.reason, f"resolving the artifact's tag: {exc.message}", refusal.retry)
        except Exception as exc:  # noqa: BLE001 - a registry must not crash the operator
            return Refusal(R.BUNDLE_UNREACHABLE, f"resolving {stores.redact(uri)}: {type(exc).__name__}", retry=True)

    def cancel(self, key: Hashable) -> None:
        """Stop a running fetch for `key` (e.g. the ModelVersion was deleted) and forget its result."""
        with self._lock:
            job = self._jobs.pop(key, None)
            self._results.pop(key, None)
        if job is not None:
            job.stop.set()
            job.future.cancel()

    async def verify(self, bundle: Bundle, trusted_keys: Mapping[str, bytes]) -> Any:
        """:func:`modelhub.domain.signing.verify_bundle` on a thread of its own pool (the CPU work leaves the
        event loop); returns the VerifiedSignature, or the SignatureError (never raises it)."""
        from modelhub.domain.signing import SignatureError, verify_bundle

        def run() -> Any:
            try:
                return verify_bundle(bundle.data, trusted_keys)
            except SignatureError as exc:
                return exc

        return await asyncio.wrap_future(self._verify_pool.submit(run))

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._jobs)

    def shutdown(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            job.stop.set()
        self._queue.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._verify_pool.shutdown(wait=False, cancel_futures=True)

    def _finished(self, key: Hashable, job: _Job, future: concurrent.futures.Future[Bundle | Refusal]) -> None:
        if future.cancelled():
            return
        result = future.result()
        with self._lock:
            if self._jobs.get(key) is not job:
                return  # replaced or cancelled meanwhile
            del self._jobs[key]
            self._results[key] = (job.fingerprint, result, time.monotonic())
            self._results.move_to_end(key)
            while len(self._results) > self._max_results:
                self._results.popitem(last=False)
            callbacks = list(job.callbacks)
        for cb in callbacks:
            try:
                cb()
            except Exception:  # noqa: BLE001, S110 - a callback failing must not kill the pool thread
                pass


def _fingerprint(uri: str, credentials: Any, ca_pem: bytes | None = None) -> str:
    """What a cached result was fetched with: the URI, the credentials (dataclasses of strings; only hashed) and
    the store CA."""
    parts = [uri, hashlib.sha256(ca_pem).hexdigest() if ca_pem else ""]
    if credentials is not None:
        parts += [type(credentials).__name__, *(str(v) for v in dataclasses.astuple(credentials))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _on_loop(fn: Callable[[], None] | None) -> Callable[[], None] | None:
    if fn is None:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return fn
    def call() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(fn)
    return call
