"""The operator's bundle fetches against real local servers: bounded, off the loop, no confused deputy."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import uuid
from pathlib import Path

import pytest
from tests.unit.hostile_servers import hostile_server
from tests.unit.store_servers import (
    TlsFiles,
    make_tls_files,
    moto_endpoint,
    no_local_proxy,
    s3_env,
    serve_directory,
    upload_directory,
)

from modelhub.adapters import fetch
from modelhub.adapters.bundles import (
    Bundle,
    BundleFetcher,
    BundleSettings,
    Refusal,
    bundle_from_configmap,
    check_bundle_bytes,
    s3_credentials_from_secret,
)
from modelhub.domain import signing

LOOPBACK = fetch.parse_cidrs("127.0.0.0/8")


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return signing.generate_private_key("p256")


@pytest.fixture
def artifact(tmp_path: Path, keys: tuple[bytes, bytes]) -> Path:
    root = tmp_path / "artifact"
    root.mkdir()
    (root / "weights.bin").write_bytes(os.urandom(5000))
    bundle = signing.sign_model_dir(root, keys[0])
    (root / "model.sig").write_bytes(bundle)
    (root / "secret.json").write_text('{"password": "hunter2", "token": "s3cr3t"}')
    return root


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TlsFiles:
    files = make_tls_files(tmp_path / "tls")
    no_local_proxy(monkeypatch)
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("MODELHUB_ALLOW_HTTP", raising=False)
    return files


def fetcher(**kw: object) -> BundleFetcher:
    base = {"deadline_seconds": 3.0, "min_rate": 1000.0, "rate_window": 1.0, "concurrency": 4}
    return BundleFetcher(BundleSettings(**{**base, **kw}))  # type: ignore[arg-type]


def refused(result: Bundle | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


# ------------------------------------------------------------------------------------------------ https


def test_https_bundle_when_loopback_is_allowed(artifact: Path, tls: TlsFiles, keys: tuple[bytes, bytes]) -> None:
    f = fetcher(allow_cidrs=LOOPBACK)
    with serve_directory(artifact, tls=tls) as served:
        result = f.fetch_sync(f"{served.url}/model.sig")
    assert isinstance(result, Bundle)
    assert result.data == (artifact / "model.sig").read_bytes()
    verified = asyncio.run(f.verify(result, {"k": keys[1]}))
    assert isinstance(verified, signing.VerifiedSignature) and verified.file_count == 1
    f.shutdown()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_refused_by_resolved_address(host: str, artifact: Path, tls: TlsFiles) -> None:
    """`localhost` is refused for what it resolves to, not for its name; nothing reaches the server."""
    f = fetcher()
    with serve_directory(artifact, tls=tls) as served:
        port = served.url.rsplit(":", 1)[1]
        r = refused(f.fetch_sync(f"https://{host}:{port}/model.sig"))
    assert r.reason == "BundleRefused" and "loopback" in r.message and not r.retry
    assert served.requests == []


def test_no_redirects(artifact: Path, tls: TlsFiles) -> None:
    f = fetcher(allow_cidrs=LOOPBACK)
    with hostile_server(artifact, tls=tls) as server:
        server.modes["/model.sig"] = ("redirect", "https://169.254.169.254/latest/meta-data/iam/")
        r = refused(f.fetch_sync(f"{server.url}/model.sig"))
    assert r.reason == "BundleRefused" and "redirect" in r.message
    assert "169.254" not in r.message


def test_redirect_hop_is_checked_again(artifact: Path, tls: TlsFiles) -> None:
    """Where redirects are followed, every hop's resolved address is checked: metadata stays out of reach."""
    net = fetch.NetworkPolicy(allow=LOOPBACK, max_redirects=3)
    with hostile_server(artifact, tls=tls) as server:
        server.modes["/model.sig"] = ("redirect", "https://169.254.169.254/latest/meta-data/")
        with pytest.raises(fetch.StoreError) as excinfo:
            fetch.read_bytes(
                f"{server.url}/model.sig", limits=fetch.Limits.within(3, max_bytes=1000), net=net,
                local=fetch.LocalPolicy(()),
            )
    assert excinfo.value.reason == "Refused" and "link-local/metadata" in excinfo.value.message


def test_metadata_address_refused_even_when_private_networks_are_allowed() -> None:
    f = fetcher(allow_cidrs=fetch.parse_cidrs("10.0.0.0/8"))
    for url in ("https://169.254.169.254/latest/meta-data/", "https://[fd00:ec2::254]/latest/",
                "https://[::ffff:127.0.0.1]/x", "https://0.0.0.0/x"):
        assert refused(f.fetch_sync(url)).reason == "BundleRefused", url


def test_plain_http_refused(artifact: Path) -> None:
    f = fetcher(allow_cidrs=LOOPBACK)
    with serve_directory(artifact) as served:
        r = refused(f.fetch_sync(f"{served.url}/model.sig"))
    assert r.reason == "BundleRefused" and "plain http" in r.message


@pytest.mark.parametrize("mode", ["flood", "grow"])
def test_huge_body_is_cut_at_the_cap(mode: str, artifact: Path, tls: TlsFiles) -> None:
    f = fetcher(allow_cidrs=LOOPBACK, max_bytes=64 * 1024)
    with hostile_server(artifact, tls=tls) as server:
        server.modes["/model.sig"] = mode
        r = refused(f.fetch_sync(f"{server.url}/model.sig"))
        assert r.reason == "BundleTooLarge" and str(64 * 1024) in r.message
        assert server.sent["/model.sig"] < server.extra


def test_announced_size_above_the_cap_is_refused_unread(artifact: Path, tls: TlsFiles) -> None:
    (artifact / "big.sig").write_bytes(b"{" * 200_000)
    f = fetcher(allow_cidrs=LOOPBACK, max_bytes=100_000)
    with serve_directory(artifact, tls=tls) as served:
        r = refused(f.fetch_sync(f"{served.url}/big.sig"))
    assert r.reason == "BundleTooLarge" and "200000 bytes" in r.message


@pytest.mark.parametrize("mode", ["trickle", "silent", "slow-head"])
def test_slow_stores_are_cut_off(mode: str, artifact: Path, tls: TlsFiles) -> None:
    f = fetcher(allow_cidrs=LOOPBACK)
    with hostile_server(artifact, tls=tls) as server:
        server.trickle_every = 0.2
        server.modes["/model.sig"] = mode
        r = refused(f.fetch_sync(f"{server.url}/model.sig"))
    assert r.reason == "BundleTooSlow" and r.retry


def test_tls_handshake_that_never_happens(artifact: Path, tls: TlsFiles) -> None:
    f = fetcher(allow_cidrs=LOOPBACK, min_rate=0.0, deadline_seconds=2.0)
    with hostile_server(artifact, tls_silent=True) as server:
        r = refused(f.fetch_sync(f"{server.url}/model.sig"))
    assert r.reason in ("BundleTooSlow", "BundleUnreachable") and r.retry


def test_json_that_is_not_a_bundle_is_not_quoted(artifact: Path, tls: TlsFiles) -> None:
    f = fetcher(allow_cidrs=LOOPBACK)
    with serve_directory(artifact, tls=tls) as served:
        r = refused(f.fetch_sync(f"{served.url}/secret.json"))
    assert r.reason == "MalformedBundle" and "not a signature bundle" in r.message
    for secret in ("hunter2", "s3cr3t", "password", "token"):
        assert secret not in r.message


# ------------------------------------------------------------------------------------------------ files


def test_file_uris_refused_without_a_root(artifact: Path) -> None:
    f = fetcher()
    for uri in ("file:///etc/shadow", "file:///etc/passwd", (artifact / "model.sig").as_uri(),
                "file:///no/such/file"):
        r = refused(f.fetch_sync(uri))
        assert r.reason == "BundleRefused" and not r.retry
        # the same words whether the file exists or not: no oracle on the operator's disk
        assert r.message == f"signature bundle: {uri}: local files are not allowed here (no allowed root)"


def test_file_uris_under_an_allowed_root(artifact: Path, tmp_path: Path) -> None:
    f = fetcher(file_roots=(str(artifact),))
    assert isinstance(f.fetch_sync((artifact / "model.sig").as_uri()), Bundle)
    outside = refused(f.fetch_sync("file:///etc/passwd"))
    assert outside.reason == "BundleRefused" and "outside the allowed roots" in outside.message
    (artifact / "escape.sig").symlink_to("/etc/passwd")
    escaped = refused(f.fetch_sync((artifact / "escape.sig").as_uri()))
    assert escaped.reason == "BundleRefused" and "outside the allowed roots" in escaped.message
    assert refused(f.fetch_sync((artifact / "missing.sig").as_uri())).reason == "BundleNotFound"
    not_json = refused(f.fetch_sync((artifact / "weights.bin").as_uri()))
    assert not_json.reason == "MalformedBundle" and "not a signature bundle" in not_json.message
    secret = refused(f.fetch_sync((artifact / "secret.json").as_uri()))
    assert "hunter2" not in secret.message and "password" not in secret.message


def test_pvc_uris_follow_the_same_roots(artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELHUB_PVC_ROOT", str(tmp_path / "pvc"))
    (tmp_path / "pvc").mkdir()
    (tmp_path / "pvc" / "claim").symlink_to(artifact)
    assert refused(fetcher().fetch_sync("pvc://claim/model.sig")).reason == "BundleRefused"
    allowed = fetcher(file_roots=(str(tmp_path / "pvc"), str(artifact)))
    assert isinstance(allowed.fetch_sync("pvc://claim/model.sig"), Bundle)


# --------------------------------------------------------------------------------------------------- s3


def test_s3_needs_the_versions_credentials(artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = moto_endpoint()
    s3_env(monkeypatch, endpoint)  # the operator's own (ambient) identity...
    bucket = f"sigs-{uuid.uuid4().hex[:12]}"
    upload_directory(endpoint, bucket, "m/1.0", artifact)
    uri = f"s3://{bucket}/m/1.0/model.sig"
    r = refused(fetcher(allow_cidrs=LOOPBACK).fetch_sync(uri))  # ...is never used for a tenant
    assert r.reason == "BundleRefused" and "credentialsSecretRef" in r.message
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    secret = {"data": {k: base64.b64encode(v.encode()).decode() for k, v in {
        "AWS_ACCESS_KEY_ID": "tenant", "AWS_SECRET_ACCESS_KEY": "tenant-secret", "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1"}.items()}}
    creds = s3_credentials_from_secret(secret, "team-a", "s3-reader")
    assert isinstance(creds, fetch.S3Credentials) and "tenant-secret" not in repr(creds)
    got = fetcher(allow_cidrs=LOOPBACK).fetch_sync(uri, credentials=creds)
    assert isinstance(got, Bundle) and got.data == (artifact / "model.sig").read_bytes()
    # the S3 endpoint is subject to the same address policy
    assert refused(fetcher().fetch_sync(uri, credentials=creds)).reason == "BundleRefused"


def test_s3_credentials_from_secret_refusals() -> None:
    assert refused(s3_credentials_from_secret(None, "ns", "s")).reason == "CredentialsNotFound"
    r = refused(s3_credentials_from_secret({"data": {"AWS_ACCESS_KEY_ID": base64.b64encode(b"x").decode()}}, "ns", "s"))
    assert r.reason == "InvalidCredentials" and "AWS_SECRET_ACCESS_KEY" in r.message
    bad = refused(s3_credentials_from_secret({"data": {"AWS_ACCESS_KEY_ID": "%%%"}}, "ns", "s"))
    assert bad.reason == "InvalidCredentials"


# ------------------------------------------------------------------------------------------ bytes check


def test_check_bundle_bytes(artifact: Path) -> None:
    real = (artifact / "model.sig").read_bytes()
    assert check_bundle_bytes(real, "x") is None
    junk = b"[" + b"0," * (2 * 1024 * 1024 - 1) + b"0]"  # 4 MiB of valid JSON
    r = check_bundle_bytes(junk, "x", BundleSettings(max_bytes=8 * 1024 * 1024))
    assert r is not None and r.reason == "MalformedBundle" and "structure" in r.message
    big = check_bundle_bytes(junk, "x")
    assert big is not None and big.reason == "BundleTooLarge"
    assert check_bundle_bytes(b"\xff\xfe", "x").message.endswith("(not UTF-8 text)")  # type: ignore[union-attr]
    assert check_bundle_bytes(b"root:$6$salt$hash:19000::::::", "x").message.endswith("(not JSON)")  # type: ignore[union-attr]
    deep = b"[" * 3000 + b"]" * 3000
    assert check_bundle_bytes(deep, "x").reason == "MalformedBundle"  # type: ignore[union-attr]
    other = check_bundle_bytes(b'{"mediaType": "text/plain"}', "x")
    assert other is not None and other.message.endswith("(not a Sigstore bundle)") and "text/plain" not in other.message


def test_bundle_from_configmap(artifact: Path) -> None:
    real = (artifact / "model.sig").read_text()
    assert isinstance(bundle_from_configmap({"data": {"model.sig": real}}, "ns", "cm", "model.sig"), Bundle)
    assert refused(bundle_from_configmap(None, "ns", "cm", "model.sig")).reason == "BundleNotFound"
    assert refused(bundle_from_configmap({"data": {}}, "ns", "cm", "model.sig")).reason == "BundleNotFound"
    junk = {"data": {"model.sig": "[" + "{}," * 300_000 + "{}]"}}
    assert refused(bundle_from_configmap(junk, "ns", "cm", "model.sig")).reason == "MalformedBundle"
    binary = {"binaryData": {"model.sig": base64.b64encode(real.encode()).decode()}}
    assert isinstance(bundle_from_configmap(binary, "ns", "cm", "model.sig"), Bundle)


def test_settings_from_env() -> None:
    s = BundleSettings.from_env({
        "MODELHUB_BUNDLE_MAX_BYTES": "1Mi", "MODELHUB_BUNDLE_DEADLINE_SECONDS": "7",
        "MODELHUB_BUNDLE_FILE_ROOTS": "/srv/bundles:/mnt/pvc", "MODELHUB_FETCH_ALLOW_CIDRS": "127.0.0.1/32, 10.0.0.0/8",
        "MODELHUB_BUNDLE_FETCH_CONCURRENCY": "3",
    })
    assert (s.max_bytes, s.deadline_seconds, s.file_roots, s.concurrency) == (
        1024 * 1024, 7.0, ("/srv/bundles", "/mnt/pvc"), 3)
    assert [str(n) for n in s.allow_cidrs] == ["127.0.0.1/32", "10.0.0.0/8"]
    defaults = BundleSettings.from_env({})
    assert (defaults.max_bytes, defaults.file_roots, defaults.s3_ambient_credentials) == (4 * 1024 * 1024, (), False)
    with pytest.raises(ValueError, match="MODELHUB_FETCH_ALLOW_CIDRS"):
        BundleSettings.from_env({"MODELHUB_FETCH_ALLOW_CIDRS": "everything"})
    with pytest.raises(ValueError, match="absolute"):
        BundleSettings.from_env({"MODELHUB_BUNDLE_FILE_ROOTS": "relative/dir"})


# ------------------------------------------------------------------------------------- off the event loop


def test_requests_never_block_and_land_on_the_loop(artifact: Path, tls: TlsFiles) -> None:
    """16 never-answering stores and 2 threads: every request returns at once; a good one, asked for after
    them, is answered once threads free up, through on_done on the caller's loop."""

    async def scenario() -> None:
        f = fetcher(allow_cidrs=LOOPBACK, concurrency=2, deadline_seconds=1.0, min_rate=0.0)
        loop_thread = threading.get_ident()
        landed: list[int] = []
        done = asyncio.Event()

        def on_done() -> None:
            landed.append(threading.get_ident())
            done.set()

        with hostile_server(artifact, tls=tls) as bad, serve_directory(artifact, tls=tls) as good:
            for i in range(16):
                bad.modes[f"/{i}.sig"] = "silent"
                assert f.request(("ns", f"bad-{i}"), f"{bad.url}/{i}.sig") is None
            assert f.request(("other", "good"), f"{good.url}/model.sig", on_done=on_done) is None
            assert f.in_flight == 17
            await asyncio.wait_for(done.wait(), timeout=120)
            result = f.request(("other", "good"), f"{good.url}/model.sig")
            assert isinstance(result, Bundle)
            assert f.request(("other", "good"), f"{good.url}/model.sig") is result  # fresh: no new fetch
            assert good.requests == ["/model.sig"]
            assert landed == [loop_thread]
            # another URI for the same key replaces the result: nothing stale from the old location
            assert f.request(("other", "good"), f"{good.url}/other.sig") is None
            for i in range(16):
                f.cancel(("ns", f"bad-{i}"))
            f.cancel(("other", "good"))
            f.shutdown()

    asyncio.run(scenario())


def test_cancelling_the_awaiting_task_stops_the_transfer(artifact: Path, tls: TlsFiles) -> None:
    async def scenario() -> None:
        f = fetcher(allow_cidrs=LOOPBACK, deadline_seconds=60.0, min_rate=0.0, concurrency=1)
        with hostile_server(artifact, tls=tls) as bad, serve_directory(artifact, tls=tls) as good:
            bad.modes["/model.sig"] = "silent"
            task = asyncio.create_task(f.fetch(f"{bad.url}/model.sig"))
            while not bad.requests:
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the single thread is free again long before the 60 s deadline: the next fetch completes
            assert isinstance(await asyncio.wait_for(f.fetch(f"{good.url}/model.sig"), timeout=30), Bundle)
        f.shutdown()

    asyncio.run(scenario())


def test_stale_result_while_revalidating(artifact: Path, tls: TlsFiles) -> None:
    """Past its freshness, a result is still returned while a refresh runs in the background."""

    async def scenario() -> None:
        f = BundleFetcher(BundleSettings(allow_cidrs=LOOPBACK), cache_seconds=0.0)
        done = asyncio.Event()
        with serve_directory(artifact, tls=tls) as good:
            uri = f"{good.url}/model.sig"
            assert f.request("k", uri, on_done=done.set) is None
            await asyncio.wait_for(done.wait(), timeout=60)
            first = f.request("k", uri)  # stale at once (cache 0 s): returned, and a refresh starts
            assert isinstance(first, Bundle)
            assert f.in_flight == 1 or len(good.requests) == 2
            f.cancel("k")
        f.shutdown()

    asyncio.run(scenario())


def test_refusals_are_retried_on_the_callers_schedule(artifact: Path) -> None:
    f = BundleFetcher(BundleSettings(), retry_seconds=0.0)
    assert f.request("k", "file:///etc/shadow") is None
    while f.in_flight:
        threading.Event().wait(0.05)
    r = f.request("k", "file:///etc/shadow")  # the refusal, and (retry 0 s) a new attempt behind it
    assert isinstance(r, Refusal) and r.reason == "BundleRefused"
    f.cancel("k")
    f.shutdown()


def test_one_namespace_cannot_take_every_thread(artifact: Path, tls: TlsFiles) -> None:
    """Two threads, eight never-answering stores in namespace a: b's bundle is fetched while all of a's
    fetches are still hanging (a may hold only one thread)."""

    async def scenario() -> None:
        f = BundleFetcher(BundleSettings(allow_cidrs=LOOPBACK, concurrency=2, per_namespace=1,
                                         deadline_seconds=120.0, min_rate=0.0, read_timeout=120.0))
        landed = asyncio.Event()
        with hostile_server(artifact, tls=tls) as bad, serve_directory(artifact, tls=tls) as good:
            for i in range(8):
                bad.modes[f"/{i}.sig"] = "silent"
                f.request(("a", f"v{i}"), f"{bad.url}/{i}.sig")
            f.request(("b", "v0"), f"{good.url}/model.sig", on_done=landed.set)
            await asyncio.wait_for(landed.wait(), timeout=100)
            assert isinstance(f.request(("b", "v0"), f"{good.url}/model.sig"), Bundle)
            assert f.in_flight == 8  # every one of a's fetches is still waiting or hanging
            assert len(bad.requests) <= 1  # a got one thread, never two (its request may not have landed yet)
            for i in range(8):
                f.cancel(("a", f"v{i}"))
        f.shutdown()

    asyncio.run(scenario())
