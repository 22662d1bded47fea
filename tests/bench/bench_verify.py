#!/usr/bin/env python3
"""Benchmark modelhub's signature verification against `sha256sum` and `model_signing verify key`.

    python tests/bench/bench_verify.py [--size-gb 2] [--dir /tmp/somewhere] [--runs 3] [--keep]

Creates (or reuses, with --dir) a random file of SIZE GB and a 10-file model directory of SIZE GB in a
directory outside the repository, signs the model with modelhub, warms the page cache once, then measures
(median of --runs, the contenders interleaved so that background load hits both alike):

* the throughput of our streaming hash on the single file vs ``sha256sum`` on the same file;
* the wall time of a full verification (bundle + every file), ``python -m modelhub verify`` vs
  ``model_signing verify key`` (the CLI from this virtualenv), same directory, same signature.

The last line printed is one JSON object with the figures. The data is deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "operator"))

from modelhub.domain import signing  # noqa: E402
from modelhub.domain.signing import _manifest  # noqa: E402

FILES_IN_MODEL = 10
WRITE_BLOCK = 16 * 1024 * 1024


def log(msg: str) -> None:
    print(msg, flush=True)


def write_random(path: Path, size: int) -> None:
    """A file of `size` random bytes (reused when it already has that size)."""
    if path.is_file() and path.stat().st_size == size:
        return
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(WRITE_BLOCK, left)
            f.write(os.urandom(n))
            left -= n
    os.replace(tmp, path)


def warm(paths: list[Path]) -> None:
    buf = bytearray(8 * 1024 * 1024)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r


def model_signing_cli() -> list[str]:
    exe = Path(sys.executable).with_name("model_signing")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("model_signing")
    if found:
        return [found]
    return [sys.executable, "-m", "model_signing"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gb", type=float, default=2.0, help="size of the file and of the model (default 2)")
    ap.add_argument("--dir", default=None, help="where to put (or find) the data; default a new temp directory")
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--keep", action="store_true", help="keep the data afterwards")
    args = ap.parse_args(argv)

    size = int(args.size_gb * 1e9)
    if size < FILES_IN_MODEL:
        raise SystemExit("--size-gb is too small")
    created_base = args.dir is None
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="modelhub-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    if REPO in base.resolve().parents or base.resolve() == REPO:
        raise SystemExit(f"put the data outside the repository, not in {base}")
    single_dir = base / "single"
    model = base / "model"
    made = [single_dir, model, base / "bench.key", base / "bench.key.pub", base / "model.sig"]
    try:
        single_dir.mkdir(exist_ok=True)
        model.mkdir(exist_ok=True)
        big = single_dir / "big.bin"
        log(f"data in {base}: {size / 1e9:.2f} GB file, {FILES_IN_MODEL}-file {size / 1e9:.2f} GB model")
        t = timed(lambda: write_random(big, size))
        per_file = size // FILES_IN_MODEL
        parts = []
        for i in range(FILES_IN_MODEL):
            part = model / f"model-{i:05d}-of-{FILES_IN_MODEL:05d}.safetensors"
            n = per_file if i < FILES_IN_MODEL - 1 else size - per_file * (FILES_IN_MODEL - 1)
            t += timed(lambda part=part, n=n: write_random(part, n))
            parts.append(part)
        for extra in model.iterdir():
            if extra not in parts:
                raise SystemExit(f"{model} holds an unexpected {extra.name}; use an empty --dir")
        log(f"  data ready in {t:.1f}s")

        priv, pub = signing.generate_private_key("p256")
        (base / "bench.key").write_bytes(priv)
        os.chmod(base / "bench.key", 0o600)
        (base / "bench.key.pub").write_bytes(pub)
        sig = base / "model.sig"
        t = timed(lambda: sig.write_bytes(signing.sign_model_dir(model, priv)))
        log(f"  signed with modelhub in {t:.2f}s")

        warm([big, *parts])  # page cache warmed once; neither contender drops it

        # --- one file: our streaming hash vs sha256sum -------------------------------------------------
        ours_s, sum_s = [], []
        digests = set()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            d = _manifest.hash_file_range(str(single_dir), "big.bin", "sha256")
            ours_s.append(time.perf_counter() - t0)
            digests.add(d.hex())
            t0 = time.perf_counter()
            r = run(["sha256sum", str(big)])
            sum_s.append(time.perf_counter() - t0)
            digests.add(r.stdout.split()[0])
        if len(digests) != 1:
            raise SystemExit(f"digest disagreement: {digests}")
        # For reference only (not in the JSON): OpenSSL's sha256, which, unlike coreutils' sha256sum on some
        # distributions, uses the CPU's SHA extensions - as Python's hashlib does.
        openssl_s = []
        if shutil.which("openssl"):
            for _ in range(args.runs):
                openssl_s.append(timed(lambda: run(["openssl", "dgst", "-sha256", str(big)])))
        file_gbps = size / 1e9 / statistics.median(ours_s)
        sum_gbps = size / 1e9 / statistics.median(sum_s)

        # --- whole model: full verification, CLI vs CLI -----------------------------------------------
        env = {**os.environ, "PYTHONPATH": str(REPO / "operator") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        ours_cmd = [sys.executable, "-m", "modelhub", "verify", str(model), "--signature", str(sig),
                    "--public-key", str(base / "bench.key.pub")]
        ms_cmd = [*model_signing_cli(), "verify", "key", str(model), "--signature", str(sig),
                  "--public_key", str(base / "bench.key.pub")]
        dir_s, ms_s, inproc_s = [], [], []
        for _ in range(args.runs):
            dir_s.append(timed(lambda: run(ours_cmd, env=env)))
            ms_s.append(timed(lambda: run(ms_cmd)))

            def inproc() -> None:
                v = signing.verify_bundle(sig.read_bytes(), {"bench": pub})
                signing.verify_model_dir(model, v)

            inproc_s.append(timed(inproc))
        result = {
            "file_gbps": round(file_gbps, 3),
            "sha256sum_gbps": round(sum_gbps, 3),
            "ratio_vs_sha256sum": round(file_gbps / sum_gbps, 3),
            "dir_s": round(statistics.median(dir_s), 3),
            "model_signing_s": round(statistics.median(ms_s), 3),
            "ratio_vs_model_signing": round(statistics.median(dir_s) / statistics.median(ms_s), 3),
        }
        cpus = _manifest.default_workers()
        log("")
        log(f"CPUs available: {cpus}; 1-minute load average at the end: {os.getloadavg()[0]:.2f}")
        log(f"one {size / 1e9:.2f} GB file, sha256, median of {args.runs} (warm page cache):")
        log(f"  modelhub streaming hash   {file_gbps:6.3f} GB/s   runs {_fmt(ours_s)}")
        log(f"  sha256sum                 {sum_gbps:6.3f} GB/s   runs {_fmt(sum_s)}")
        log(f"  ratio (higher is better)  {result['ratio_vs_sha256sum']:6.3f}x   (goal >= 0.95)")
        if openssl_s:
            log(f"  (reference: openssl dgst  {size / 1e9 / statistics.median(openssl_s):6.3f} GB/s   runs {_fmt(openssl_s)})")
        log(f"{FILES_IN_MODEL}-file {size / 1e9:.2f} GB model, full verification (bundle + every file):")
        log(f"  modelhub verify (CLI)     {result['dir_s']:6.3f} s      runs {_fmt(dir_s)}")
        log(f"  modelhub (in-process)     {statistics.median(inproc_s):6.3f} s      runs {_fmt(inproc_s)}")
        log(f"  model_signing verify key  {result['model_signing_s']:6.3f} s      runs {_fmt(ms_s)}")
        log(f"  ratio (lower is better)   {result['ratio_vs_model_signing']:6.3f}x   (goal <= 0.8)")
        print(json.dumps(result), flush=True)
        return 0
    finally:
        if not args.keep:
            if created_base:
                shutil.rmtree(base, ignore_errors=True)
            else:
                for p in made:
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.3f}s" for v in values)


if __name__ == "__main__":
    sys.exit(main())
