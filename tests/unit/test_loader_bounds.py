"""The loader against real hostile stores: more bytes than signed, floods, trickles, silence. Each failure is one
line in the termination message file and the last line on stderr, the exit status is 1, and nothing that could
look verified is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.hostile_servers import hostile_server
from tests.unit.store_servers import allow_http, make_tls_files, no_local_proxy
from tests.unit.test_loader import Signed, keypair, load_args, run_load, sign, signed, write_model

from modelhub.cli import loadcmd
from modelhub.domain import loadlimits

SLACK = ("--timeout", "60")  # where silence is not what is tested (a busy machine may pause a server thread)

__all__ = ["signed"]  # the fixture, imported

BIG = "/weights/model-00001.safetensors"


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv(loadcmd.TERMINATION_LOG_ENV, str(path))
    return path


def failure(capsys: pytest.CaptureFixture[str], termination_log: Path, dest: Path) -> str:
    """The one-line reason: the same in the termination file and as the last stderr line; no model left."""
    line = termination_log.read_text()
    assert "\n" not in line and line
    last = capsys.readouterr().err.rstrip("\n").splitlines()[-1]
    assert last == f"error: {line}"
    assert not (dest / "model").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".staging-")]
    return line


def total_size(signed: Signed) -> int:
    return sum(len(b) for b in signed.files().values())


def test_store_sending_more_than_the_declared_total(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    termination_log: Path,
) -> None:
    """Per-file manifest (no sizes): the declared total (spec.artifact.size) bounds what one file may write."""
    allow_http(monkeypatch)
    dest = tmp_path / "dest"
    with hostile_server(signed.root) as server:
        server.modes[BIG] = "grow"
        code = run_load(*load_args(server.url, signed, dest, "--max-total-bytes", str(total_size(signed)), "--workers", "1", *SLACK))
        assert code == 1
        line = failure(capsys, termination_log, dest)
        assert line.startswith("TooLarge: ") and "model-00001" in line, line
        assert server.sent[BIG] < server.extra  # cut off, not read to the end


def test_flood_bounded_by_the_per_file_limit(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    termination_log: Path,
) -> None:
    allow_http(monkeypatch)
    dest = tmp_path / "dest"
    with hostile_server(signed.root) as server:
        server.modes[BIG] = "flood"
        assert run_load(*load_args(server.url, signed, dest, "--max-file-bytes", "1Mi", *SLACK)) == 1
        line = failure(capsys, termination_log, dest)
        assert line.startswith("TooLarge: ") and str(1024 * 1024) in line, line


def test_sharded_manifest_more_than_signed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], termination_log: Path,
) -> None:
    """Sizes the signed manifest states are exact: one byte more is refused while streaming."""
    allow_http(monkeypatch)
    root = tmp_path / "artifact"
    write_model(root)
    private_pem, public_pem = keypair("team-a")
    digest = sign(root, private_pem, shard_size=100_000)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "k.pem").write_bytes(public_pem)
    s = Signed(root, keys, digest, private_pem)
    dest = tmp_path / "dest"
    with hostile_server(root) as server:
        server.modes[BIG] = "grow"
        assert run_load(*load_args(server.url, s, dest, *SLACK)) == 1
        line = failure(capsys, termination_log, dest)
        assert line.startswith("SizeMismatch: ") and "700000 bytes the signed manifest says" in line, line
        assert server.sent[BIG] < server.extra


def test_signed_total_above_the_limit_fetches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], termination_log: Path,
) -> None:
    allow_http(monkeypatch)
    root = tmp_path / "artifact"
    write_model(root)
    private_pem, public_pem = keypair("team-a")
    digest = sign(root, private_pem, shard_size=100_000)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "k.pem").write_bytes(public_pem)
    s = Signed(root, keys, digest, private_pem)
    dest = tmp_path / "dest"
    with hostile_server(root) as server:
        assert run_load(*load_args(server.url, s, dest, "--max-total-bytes", "500000", *SLACK)) == 1
        line = failure(capsys, termination_log, dest)
        assert line.startswith("TooLarge: the signed manifest lists")
        assert server.requests == ["/model.sig"]


def test_trickling_store_is_cut_off(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    termination_log: Path,
) -> None:
    allow_http(monkeypatch)
    dest = tmp_path / "dest"
    with hostile_server(signed.root) as server:
        server.modes["/config.json"] = "trickle"
        argv = load_args(server.url, signed, dest, "--min-rate", "1000", "--rate-window", "1", "--timeout", "60")
        assert run_load(*argv) == 1
        line = failure(capsys, termination_log, dest)
        assert line.startswith("TooSlow: ") and "config.json" in line


def test_trickled_bundle_is_cut_off(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    termination_log: Path,
) -> None:
    allow_http(monkeypatch)
    dest = tmp_path / "dest"
    with hostile_server(signed.root) as server:
        server.modes["/model.sig"] = "trickle"
        argv = load_args(server.url, signed, dest, "--min-rate", "1000", "--rate-window", "1")
        assert run_load(*argv) == 1
        line = failure(capsys, termination_log, dest)
        assert line.startswith("TooSlow: ") and "signature bundle" in line


@pytest.mark.parametrize("mode", ["silent", "slow-head"])
def test_store_that_never_answers_hits_the_deadline(
    mode: str, signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], termination_log: Path,
) -> None:
    """The per-read timeout (60 s) would never fire for a header trickled byte by byte: the deadline does."""
    allow_http(monkeypatch)
    dest = tmp_path / "dest"
    with hostile_server(signed.root) as server:
        server.trickle_every = 0.1
        server.modes[BIG] = mode
        argv = load_args(server.url, signed, dest, "--deadline", "2", "--timeout", "60", "--min-rate", "0")
        assert run_load(*argv) == 1
        line = failure(capsys, termination_log, dest)
        assert line.startswith("Timeout: ") and "model-00001" in line


def test_https_store_that_never_completes_the_handshake(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    termination_log: Path,
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    no_local_proxy(monkeypatch)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    dest = tmp_path / "dest"
    with hostile_server(signed.root, tls_silent=True) as server:
        argv = load_args(server.url, signed, dest, "--deadline", "2", "--timeout", "60")
        assert run_load(*argv) == 1
        line = failure(capsys, termination_log, dest)
        assert line.startswith("Timeout: ") and "model.sig" in line


def test_https_hostile_store_with_real_tls(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    termination_log: Path,
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    no_local_proxy(monkeypatch)
    monkeypatch.delenv("MODELHUB_ALLOW_HTTP", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    dest = tmp_path / "dest"
    with hostile_server(signed.root, tls=tls) as server:
        server.modes[BIG] = "flood"
        assert run_load(*load_args(server.url, signed, dest, "--max-total-bytes", str(total_size(signed)), *SLACK)) == 1
        assert failure(capsys, termination_log, dest).startswith("TooLarge: ")
    # and the same store, behaving, loads fine within the same limits
    dest2 = tmp_path / "dest2"
    with hostile_server(signed.root, tls=tls) as server:
        assert run_load(*load_args(server.url, signed, dest2, "--max-total-bytes", str(total_size(signed)), *SLACK)) == 0
    assert (dest2 / "model" / "config.json").is_file()


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELHUB_LOADER_MAX_TOTAL_BYTES", "2Gi")
    monkeypatch.setenv("MODELHUB_LOADER_MIN_RATE", "0")
    import argparse

    parser = argparse.ArgumentParser()
    loadcmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["load", "--uri", "file:///x", "--digest", "sha256:" + "0" * 64, "--dest", "/tmp/x",
                              "--keys-dir", "/k"])
    assert args.max_total_bytes == 2 * 1024**3
    assert args.min_rate == 0
    assert args.max_file_bytes == loadlimits.DEFAULTS.max_file_bytes


def test_one_line_caps_and_flattens() -> None:
    assert loadcmd.one_line("a\nb\tc\x00d") == "a b c d"
    long = loadcmd.one_line("é" * 5000)
    assert len(long.encode()) <= loadcmd.TERMINATION_MESSAGE_MAX and long.endswith("...")


def test_sigterm_while_a_store_stalls(signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kubernetes stops a stuck init container with SIGTERM: the loader cleans up and says why, on one line."""
    import os
    import signal
    import subprocess
    import sys

    from tests.unit.test_loader import REPO

    allow_http(monkeypatch)
    dest = tmp_path / "dest"
    log = tmp_path / "termination-log"
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator"), loadcmd.TERMINATION_LOG_ENV: str(log)}
    with hostile_server(signed.root) as server:
        server.modes[BIG] = "silent"
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelhub", "load", *load_args(server.url, signed, dest, "--timeout", "600",
                                                                 "--min-rate", "0")],
            stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            while BIG not in server.requests:
                if proc.poll() is not None:
                    raise AssertionError(proc.stderr.read() if proc.stderr else "")
                threading_wait(0.05)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert log.read_text() == f"Terminated: the loader was stopped by signal {int(signal.SIGTERM)}"
    assert err.rstrip("\n").splitlines()[-1] == f"error: {log.read_text()}"
    assert not (dest / "model").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".staging-")]


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)
