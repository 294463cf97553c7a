#!/usr/bin/env python3
"""PyTorch side of the GPU comparison with cmd/gpucheck.

Times PyTorch eager inference of an L1 user tower export (built by
tools/torchref) at the batch buckets gpucheck uses, and exact scoring
(U @ A^T, then torch.topk) over synthetic ad vectors, and writes one JSON
report whose "timings" entries have gpucheck's shape (what, precision, batch,
calls, p50_ms, p99_ms, rows_per_second), so the two can be joined on
(what, precision, batch).

    python3 benchmarks/gpu/torch_gpu.py --user MODELDIR/VERSION/l1/all/user.safetensors \\
        --device cuda --out torch_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "torchref"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import coded_inputs  # noqa: E402
import models  # noqa: E402

BUCKETS = [1, 8, 32, 128, 512, 2048]  # gpu.DefaultBuckets
EXACT_BATCHES = [1, 32]
TOP_K = 400  # gpucheck times exact search at 4*k = 400


def to_device(obj, device):
    """The batch dataclasses with every tensor moved to device."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            setattr(obj, name, to_device(getattr(obj, name), device))
    return obj


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], calls: int, warmup: int, device: torch.device) -> Dict[str, float]:
    """p50 and p99 milliseconds of fn() over calls, after warm-up (as gpucheck's timeCalls)."""
    for _ in range(warmup):
        fn()
    sync(device)
    ts: List[float] = []
    for _ in range(calls):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return {"calls": calls, "p50_ms": ts[calls // 2], "p99_ms": ts[min(calls - 1, calls * 99 // 100)]}


def blas_excerpt() -> List[str]:
    """The lines of torch.__config__.show() about BLAS and the backends, build settings cut to the BLAS ones."""
    out = []
    keep = ("BLAS_INFO", "LAPACK_INFO", "USE_MKL", "USE_CUDA", "USE_CUDNN", "CUDA_VERSION", "CUDNN_VERSION",
            "TORCH_VERSION")
    keys = ("blas", "lapack", "mkl", "openmp", "cuda", "cudnn", "cpu capability")
    for ln in torch.__config__.show().splitlines():
        ln = ln.strip()
        if ln.startswith("- Build settings:"):
            parts = [kv.strip() for kv in ln[len("- Build settings:"):].split(",")]
            out.append("- Build settings: " + ", ".join(kv for kv in parts if kv.split("=")[0] in keep))
        elif any(k in ln.lower() for k in keys):
            out.append(ln)
    return out


def precisions_for(device: torch.device, wanted: List[str]) -> List[str]:
    out = []
    for p in wanted:
        if p not in ("fp32", "tf32", "bf16"):
            raise SystemExit(f"torch_gpu: unknown precision {p!r} (fp32, tf32, bf16)")
        if p != "fp32" and device.type != "cuda":
            print(f"torch_gpu: skipping {p} on {device.type}", file=sys.stderr)
            continue
        out.append(p)
    return out


def set_precision(p: str, device: torch.device) -> None:
    if device.type == "cuda":
        tf32 = p == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def bench_tower(model, route: str, device, precs, batches, calls, warmup, seed) -> List[dict]:
    what = f"l1_user_tower/{route}" if route else "l1_user_tower"
    rng = np.random.default_rng(seed)
    out = []
    for b in batches:
        arrays, meta = coded_inputs.random_inputs(model, b, 0, rng, full_sequences=True)
        batch = to_device(coded_inputs.prepare(model, arrays, meta), device)
        for p in precs:
            set_precision(p, device)

            def fn():
                if p == "bf16":
                    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                        return model.outputs(batch)
                return model.outputs(batch)

            with torch.no_grad():
                tm = time_calls(fn, calls, warmup, device)
            out.append({"what": what, "precision": p, "batch": b, **tm,
                        "rows_per_second": b / (tm["p50_ms"] / 1000)})
            print(f"{what} {p:4s} batch {b:5d}: p50 {tm['p50_ms']:9.3f} ms  p99 {tm['p99_ms']:9.3f} ms  "
                  f"{out[-1]['rows_per_second']:12.0f} rows/s", file=sys.stderr)
    set_precision("fp32", device)
    return out


def bench_score(model, route: str, device, precs, batches, calls, warmup, seed, nads: int, out_dim: int,
                candidates: int) -> List[dict]:
    """The tower plus z_t = <u_t, a_t> + beta for `candidates` random ads per context over nads resident ad
    vectors per task, as gpucheck's l1_score timings (beta is a constant: its cost is one add)."""
    what = f"l1_score/{route}" if route else "l1_score"
    rng = np.random.default_rng(seed + 1)
    g = torch.Generator(device="cpu").manual_seed(seed + 1)
    out = []
    for b in batches:
        arrays, meta = coded_inputs.random_inputs(model, b, 0, rng, full_sequences=True)
        batch = to_device(coded_inputs.prepare(model, arrays, meta), device)
        with torch.no_grad():
            names = list(model.outputs(batch).keys())
        ads = {n: torch.randn(nads, out_dim, generator=g).to(device) for n in names}
        ids = torch.randint(0, nads, (b, candidates), generator=g).to(device)
        for p in precs:
            set_precision(p, device)

            def fn():
                if p == "bf16":
                    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                        us = model.outputs(batch)
                else:
                    us = model.outputs(batch)
                # (b, candidates, d) gathered a_t times u_t, summed over d.
                return [(ads[n][ids] * us[n].float().unsqueeze(1)).sum(-1) + 0.5 for n in names]

            with torch.no_grad():
                tm = time_calls(fn, calls, warmup, device)
            out.append({"what": what, "precision": p, "batch": b, "candidates_per_context": candidates, **tm,
                        "rows_per_second": b / (tm["p50_ms"] / 1000)})
            print(f"{what} {p:4s} batch {b:5d} x {candidates}: p50 {tm['p50_ms']:9.3f} ms  "
                  f"p99 {tm['p99_ms']:9.3f} ms  {out[-1]['rows_per_second']:12.0f} contexts/s", file=sys.stderr)
    set_precision("fp32", device)
    return out


def bench_exact(nads: int, dim: int, device, calls, warmup, seed) -> List[dict]:
    g = torch.Generator(device="cpu").manual_seed(seed)
    ads = torch.randn(nads, dim, generator=g).to(device)
    k = min(TOP_K, nads)
    what = f"exact_top{TOP_K}_of_{nads}"
    out = []
    set_precision("fp32", device)
    for nq in EXACT_BATCHES:
        q = torch.randn(nq, dim, generator=g).to(device)

        def fn():
            return torch.topk(q @ ads.T, k, dim=1)

        with torch.no_grad():
            tm = time_calls(fn, calls, warmup, device)
        # gpucheck records its exact timings without a precision (they run in fp32).
        out.append({"what": what, "batch": nq, **tm, "rows_per_second": nq / (tm["p50_ms"] / 1000)})
        print(f"{what} fp32 batch {nq:5d}: p50 {tm['p50_ms']:9.3f} ms  p99 {tm['p99_ms']:9.3f} ms  "
              f"{out[-1]['rows_per_second']:12.0f} queries/s", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--user", required=True, help="an L1 user tower export (l1/<route>/user.safetensors)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cuda (default when available) or cpu")
    ap.add_argument("--precisions", default="fp32,bf16",
                    help="comma-separated: fp32, tf32, bf16 (tf32 and bf16 autocast only on cuda)")
    ap.add_argument("--batches", default=",".join(map(str, BUCKETS)), help="user tower batch sizes")
    ap.add_argument("--ads", type=int, default=1_000_000, help="synthetic ads for exact scoring (0: skip)")
    ap.add_argument("--score-ads", type=int, default=100_000,
                    help="resident ad vectors per task for the l1_score timings (0: skip)")
    ap.add_argument("--candidates", type=int, default=100, help="candidates per context for l1_score (gpucheck: 100)")
    ap.add_argument("--calls", type=int, default=200, help="timed calls per entry")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="torch_gpu.json")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("torch_gpu: cuda is not available, using cpu", file=sys.stderr)
        args.device = "cpu"
    device = torch.device(args.device)
    precs = precisions_for(device, [p.strip() for p in args.precisions.split(",") if p.strip()])
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    torch.manual_seed(args.seed)

    try:
        model, f = models.load_export(args.user)
    except (ValueError, OSError, KeyError) as e:
        print(f"torch_gpu: {e}", file=sys.stderr)
        return 2
    if model.kind != "l1.user":
        print(f"torch_gpu: {args.user} is a {model.kind} export, not l1.user", file=sys.stderr)
        return 2
    meta = json.loads(f.metadata["tandem.model"])
    route = meta.get("route") or ""
    out_dim = int(meta.get("out_dim") or next(iter(model.heads.values())).out_features)
    model.eval()
    model.to(device)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (os.uname().machine + " cpu")
    report = {
        "torch": torch.__version__,
        "device": {"type": device.type, "name": name},
        "threads": torch.get_num_threads(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                               "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "blas": blas_excerpt(),
        "export": os.path.basename(args.user),
        "route": route,
        "out_dim": out_dim,
        "sequences": f"all of full length L = {model.schema.seq_length}",
        "timing": f"p50/p99 of {args.calls} calls after {args.warmup} warm-up calls; eager, torch.no_grad, "
                  "model.eval; inputs coded and on the device beforehand"
                  + ("; torch.cuda.synchronize around each call" if device.type == "cuda" else ""),
        "timings": [],
    }
    report["timings"] += bench_tower(model, route, device, precs, batches, args.calls, args.warmup, args.seed)
    if args.score_ads > 0:
        report["timings"] += bench_score(model, route, device, precs, batches, args.calls, args.warmup, args.seed,
                                         args.score_ads, out_dim, args.candidates)
    if args.ads > 0:
        report["timings"] += bench_exact(args.ads, out_dim, device, args.calls, args.warmup, args.seed)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")
    print(f"torch_gpu: {name}, torch {torch.__version__}, {len(report['timings'])} timings -> {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
