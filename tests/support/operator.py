"""The operator as a real process: started on free ports, ready when its health endpoint answers, stopped
cleanly. Used by the e2e fixtures, the benchmarks and the demo (`python -m tests.support.operator wait URL`)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.kube import ROOT, free_port


def healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own loopback endpoint
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def wait_healthy(url: str, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None,
                 log_path: Path | None = None, allow_exit: bool = False) -> None:
    """Until `url` answers. With `allow_exit`, a process that exits meanwhile (a crash test's failpoint) ends
    the wait too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(url):
            return
        if proc is not None and proc.poll() is not None:
            if allow_exit:
                return
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise AssertionError(f"operator exited {proc.returncode}: {tail}")
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
    raise AssertionError(f"operator not healthy at {url} within {timeout}s: {tail}")


@dataclass
class Operator:
    proc: subprocess.Popen[bytes]
    log_path: Path
    health_url: str
    webhook_port: int
    metrics_port: int

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_operator(log_path: Path, *, wait: bool = True, verbose: bool = False, **env: str) -> Operator:
    """Start `modelhub run` with its health endpoint (and, unless given, webhook and metrics ports) on free
    ports; return once the health endpoint answers (`wait`), or at once."""
    health_port = free_port()
    # The tests keep artifacts and bundles under the temporary directory and serve stores on 127.0.0.1: the
    # bundle fetcher refuses both by default (no confused deputy), so the test operator allows exactly those.
    env.setdefault("MODELHUB_BUNDLE_FILE_ROOTS", tempfile.gettempdir())
    env.setdefault("MODELHUB_FETCH_ALLOW_CIDRS", "127.0.0.0/8")
    # The local control plane presents a client certificate to webhooks (hack/cluster.sh): require it, as the
    # chart does with webhook.clientCA, so that only the API server gets answers.
    client_ca = Path(os.environ.get("KUBECONFIG") or "/nonexistent").parent / "webhook-client-ca.crt"
    if client_ca.is_file():
        env.setdefault("MODELHUB_WEBHOOK_CLIENT_CA", str(client_ca))
    env.setdefault("MODELHUB_WEBHOOK_PORT", os.environ.get("MODELHUB_WEBHOOK_PORT") or str(free_port()))
    env.setdefault("MODELHUB_METRICS_PORT", os.environ.get("MODELHUB_METRICS_PORT") or str(free_port()))
    url = f"http://127.0.0.1:{health_port}/healthz"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(ROOT / "operator"), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelhub", "run", "--liveness", url, *(["--verbose"] if verbose else [])],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONPATH": pythonpath, **env},
        )
    op = Operator(proc, log_path, url, int(env["MODELHUB_WEBHOOK_PORT"]), int(env["MODELHUB_METRICS_PORT"]))
    if wait:
        try:
            wait_healthy(url, 60, proc, log_path, allow_exit="MODELHUB_FAILPOINT" in env)
        except AssertionError:
            op.kill()
            raise
    return op


def api_requests(metrics_port: int, timeout: float = 5.0) -> dict[tuple[str, str], float]:
    """The operator's API requests so far, by (verb, resource), scraped from its modelhub_api_requests_total."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own loopback endpoint
        text = resp.read().decode()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "modelhub_api_requests":
            continue
        for sample in family.samples:
            if sample.name == "modelhub_api_requests_total":
                key = (sample.labels["verb"], sample.labels["resource"])
                out[key] = out.get(key, 0.0) + sample.value
    return out


def scrape(metrics_port: int, timeout: float = 5.0) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the operator's /metrics: (sample name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own loopback endpoint
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def work_between(before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
                 after: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """What the operator did between two scrapes: reconciles and their seconds by kind, keys taken off the
    queue and the seconds they waited there."""
    def delta(name: str, **labels: str) -> float:
        total = 0.0
        for (n, lab), v in after.items():
            if n == name and all(dict(lab).get(k) == val for k, val in labels.items()):
                total += v - before.get((n, lab), 0.0)
        return total

    out: dict[str, float] = {}
    kinds = {dict(lab).get("kind") for n, lab in after if n == "modelhub_reconcile_duration_seconds_count"}
    for kind in sorted(k for k in kinds if k):
        out[f"reconciles {kind}"] = delta("modelhub_reconcile_duration_seconds_count", kind=kind)
        out[f"reconcile seconds {kind}"] = delta("modelhub_reconcile_duration_seconds_sum", kind=kind)
    requests = {(dict(lab)["verb"], dict(lab)["resource"]) for n, lab in after
                if n == "modelhub_api_request_duration_seconds_count"}
    for verb, res in sorted(requests):
        count = delta("modelhub_api_request_duration_seconds_count", verb=verb, resource=res)
        if count:
            out[f"latency {verb} {res}"] = delta("modelhub_api_request_duration_seconds_sum", verb=verb,
                                                 resource=res) / count
    out["queue waits"] = delta("modelhub_queue_wait_seconds_count")
    out["queue wait seconds"] = delta("modelhub_queue_wait_seconds_sum")
    return out


def requests_between(before: dict[tuple[str, str], float],
                     after: dict[tuple[str, str], float]) -> dict[str, float]:
    """`verb resource` -> how many requests were sent between two scrapes (only those that were)."""
    return {f"{verb} {res}": after[(verb, res)] - before.get((verb, res), 0.0)
            for verb, res in sorted(after) if after[(verb, res)] - before.get((verb, res), 0.0) > 0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait", help="wait until a health endpoint answers")
    w.add_argument("url")
    w.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    try:
        wait_healthy(args.url, args.timeout)
    except AssertionError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def settled_requests(op: Operator, quiet: float = 3.0, timeout: float = 120) -> dict[tuple[str, str], float]:
    """The operator's request counts once they have not changed for `quiet` seconds (its follow-up is done; the
    leader's Lease renewals, watch reconnects and discovery, every few seconds, do not count as work)."""

    def work(counts: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
        # Not work: Lease renewals, watches reconnecting (each ConfigMap watch every minute) and discovery.
        return {k: v for k, v in counts.items() if k[1] not in ("leases", "discovery") and k[0] != "watch"}

    last, since = api_requests(op.metrics_port), time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = api_requests(op.metrics_port)
        if work(now) != work(last):
            since = time.monotonic()
        last = now
        if time.monotonic() - since >= quiet:
            break
    return last
