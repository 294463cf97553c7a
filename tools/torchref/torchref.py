#!/usr/bin/env python3
"""torchref: an independent PyTorch implementation of tandem's models.

It reads the same safetensors exports and coded inputs as the Go engine and
computes the same outputs (docs/CHECKPOINT.md, docs/ENGINE.md, SYSTEM.md
section 2), so the two can be compared output by output and timed side by side.

Commands:
  run            forward pass of an export on an inputs file, outputs to a file
  init           an export like another, with weights from PyTorch's own initialisation
  random-inputs  valid random coded inputs for an export
  bench          forward (and training-step) timings, JSON on stdout

Benchmark environment. For a fair comparison with the engine on this 2-core
machine, have OpenBLAS installed (Debian's torch and numpy otherwise run on the
reference BLAS; the JSON's "blas" says which library was loaded), run it on
one thread with its core-type overrides removed (they slow numpy's GEMM), and
give torch two threads:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \\
        /usr/bin/python3 tools/torchref/torchref.py bench \\
        --export MODELDIR/VERSION/l1/all/user.safetensors --user-batches 1,64,512,2048 \\
        --gemm-peak --threads 2

Every command uses one torch thread unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import coded_inputs  # noqa: E402
import models  # noqa: E402
import safetensors_io  # noqa: E402

OUTPUTS_META = "tandem.outputs"


def set_threads(threads: Optional[int]) -> None:
    """torch's intra-op threads (default 1).

    The inter-op pool is left alone: eager forward and backward passes never
    use it, and torch allows setting its size only once per process, before
    any parallel work (a second call aborts the process).
    """
    torch.set_num_threads(threads or 1)


def _ints(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: want positive integers")
    return values


def _shapes(text: str) -> List[tuple]:
    out = []
    for part in text.split(","):
        try:
            u, c = part.lower().split("x")
            out.append((int(u), int(c)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not UxC (contexts x candidates per context)") from None
        if out[-1][0] < 1 or out[-1][1] < 1:
            raise argparse.ArgumentTypeError(f"{part!r}: want positive sizes")
    return out


# ---------------------------------------------------------------------------
# run, init, random-inputs

def cmd_run(args) -> None:
    set_threads(args.threads)
    model, _ = models.load_export(args.export)
    dtype = torch.float64 if args.float64 else torch.float32
    if args.float64:
        model.double()
    inputs = safetensors_io.read(args.inputs)
    try:
        batch = coded_inputs.prepare(model, inputs.tensors, inputs.metadata, dtype)
    except coded_inputs.InputError as e:
        raise coded_inputs.InputError(f"{args.inputs}: {e}") from None
    with torch.inference_mode():
        outputs = model.outputs(batch)
    arrays = {name: t.to(torch.float32).numpy() for name, t in outputs.items()}
    meta = {OUTPUTS_META: json.dumps({
        "export": os.path.basename(args.export), "kind": model.kind, "tasks": model.tasks,
        "compute": "float64" if args.float64 else "float32", "torch": torch.__version__})}
    safetensors_io.write(args.out, arrays, meta)
    shapes = ", ".join(f"{name} {list(a.shape)}" for name, a in sorted(arrays.items()))
    print(f"wrote {shapes} to {args.out}", file=sys.stderr)


def init_export(like: str, out: str, seed: int) -> None:
    """Writes an export with like's names, shapes, dtypes and metadata but fresh PyTorch weights.

    Statistics and settings that are not weights (batch-norm running statistics
    and [c, v_min], the calibration) are kept from `like`.
    """
    src = safetensors_io.read(like)
    config, meta = models.parse_metadata(src.metadata, like)
    torch.manual_seed(seed)
    model = models.build_model(config, meta)
    model.load_statistics(src.tensors)
    state = model.state()
    missing = sorted(set(src.tensors) - set(state))
    extra = sorted(set(state) - set(src.tensors))
    if missing or extra:
        raise ValueError(f"{like}: the model its config describes does not have the same tensors "
                         f"(only in the file: {missing[:8]}; only in the model: {extra[:8]})")
    for name, value in state.items():
        if value.shape != src.tensors[name].shape:
            raise ValueError(f"{like}: tensor {name} has shape {list(src.tensors[name].shape)}, "
                             f"the config gives {list(value.shape)}")
    safetensors_io.write(out, state, metadata=src.metadata, dtypes=src.dtypes)


def cmd_init(args) -> None:
    set_threads(args.threads)
    init_export(args.like, args.out, args.seed)
    print(f"wrote {args.out} (seed {args.seed})", file=sys.stderr)


def cmd_random_inputs(args) -> None:
    set_threads(args.threads)
    model, _ = models.load_export(args.export)
    rng = np.random.default_rng(args.seed)
    arrays, meta = coded_inputs.random_inputs(model, args.u, args.n, rng)
    coded_inputs.validate(model, arrays)
    safetensors_io.write(args.out, arrays, meta)
    shapes = ", ".join(f"{name} {list(a.shape)}" for name, a in sorted(arrays.items()))
    print(f"wrote {shapes} to {args.out}", file=sys.stderr)


# ---------------------------------------------------------------------------
# bench

def time_calls(fn: Callable[[], object], warmup: int, min_repeats: int, min_seconds: float,
               max_repeats: int = 10000) -> Dict[str, float]:
    """Median, min and max seconds of fn() after warm-up calls."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < max(min_repeats, 1) or (time.perf_counter() - start < min_seconds and len(times) < max_repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times)}


def _us(t: Dict[str, float], per: int, unit: str) -> Dict[str, float]:
    return {"us_per_batch": round(t["median_s"] * 1e6, 1), f"us_per_{unit}": round(t["median_s"] * 1e6 / per, 3),
            "min_us": round(t["min_s"] * 1e6, 1), "max_us": round(t["max_s"] * 1e6, 1), "repeats": t["repeats"]}


def _forward_timing(model, arrays, meta, args) -> Dict[str, float]:
    batch = coded_inputs.prepare(model, arrays, meta)
    with torch.inference_mode():
        return time_calls(lambda: model.outputs(batch), args.warmup, args.min_repeats, args.min_time)


def bench_user_batches(model, batches, rng, args) -> List[dict]:
    out = []
    for b in batches:
        arrays, meta = coded_inputs.random_inputs(model, b, 0, rng, full_sequences=True)
        out.append({"users": b, **_us(_forward_timing(model, arrays, meta, args), b, "user")})
    return out


def bench_ad_batches(model, batches, rng, args) -> List[dict]:
    out = []
    for b in batches:
        arrays, meta = coded_inputs.random_inputs(model, 0, b, rng)
        out.append({"ads": b, **_us(_forward_timing(model, arrays, meta, args), b, "ad")})
    return out


def bench_l2_shapes(model, shapes, rng, args) -> List[dict]:
    out = []
    for u, c in shapes:
        ctx = np.repeat(np.arange(u), c)
        arrays, meta = coded_inputs.random_inputs(model, u, u * c, rng, full_sequences=True, ctx=ctx)
        out.append({"contexts": u, "candidates_per_context": c, "rows": u * c,
                    **_us(_forward_timing(model, arrays, meta, args), u * c, "row")})
    return out


def bench_train_steps(model: models.L2Model, rng, args) -> dict:
    """Training steps on a copy of the model: forward, masked BCE from logits, backward, Adam.

    The categorical tables get sparse gradients and SparseAdam (only the rows a
    batch touches are updated, as in tandem's trainer); everything else Adam.
    Batch-norm uses the running statistics (its cost is negligible either way).
    """
    n, u = args.train_batch, args.train_contexts
    net = copy.deepcopy(model)
    net.train()
    net.set_sparse_tables(True)
    tables = {id(t.weight) for t in net.emb.values()}
    dense = [p for p in net.parameters() if id(p) not in tables]
    opt = torch.optim.Adam(dense, lr=2e-3)
    sparse_opt = torch.optim.SparseAdam([t.weight for t in net.emb.values()], lr=2e-3)
    arrays, meta = coded_inputs.random_inputs(net, u, n, rng, full_sequences=True)
    batch = coded_inputs.prepare(net, arrays, meta)
    labels = torch.from_numpy((rng.random((n, len(net.tasks))) < 0.3).astype(np.float32))
    weights = torch.tensor([1.0 if t in net.towers else 0.0 for t in net.tasks])

    def step():
        opt.zero_grad(set_to_none=True)
        sparse_opt.zero_grad(set_to_none=True)
        logits = net(batch.user, batch.rows)
        loss = (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weights).sum() / n
        loss.backward()
        opt.step()
        sparse_opt.step()

    t = time_calls(step, max(args.warmup, 2), args.min_repeats, args.min_time)
    return {"batch": n, "contexts": u, "examples_per_s": round(n / t["median_s"], 1),
            "ms_per_step": round(t["median_s"] * 1e3, 3), "min_ms": round(t["min_s"] * 1e3, 3),
            "max_ms": round(t["max_s"] * 1e3, 3), "repeats": t["repeats"],
            "optimizer": "Adam (dense) + SparseAdam (tables), lr 2e-3"}


def gemm_peak(n: int = 2048, runs: int = 5) -> dict:
    """numpy float32 n^3 matmul GFLOP/s (median of runs after one warm-up)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"n": n, "gflops": round(2.0 * n ** 3 / med / 1e9, 2), "runs_s": [round(t, 4) for t in times]}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _blas_libraries() -> List[str]:
    """The BLAS libraries loaded in this process (numpy's and torch's matmuls call them).

    Debian's libblas3 alone is the unoptimised reference BLAS; with
    libopenblas0 installed, the same path leads to OpenBLAS.
    """
    found = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if path.startswith("/") and any(k in os.path.basename(path) for k in ("blas", "blis", "mkl")):
                    found.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(found)


def cmd_bench(args) -> None:
    set_threads(args.threads)
    result: Dict[str, object] = {
        "torch": torch.__version__, "numpy": np.__version__, "threads": torch.get_num_threads(),
        "cpu": _cpu_name(), "cores": os.cpu_count(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                               "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "timing": f"median of >= {args.min_repeats} calls and >= {args.min_time} s after {args.warmup} warm-up "
                  "calls; forward under torch.inference_mode; inputs coded and converted beforehand",
    }
    rng = np.random.default_rng(args.seed)
    if args.export:
        model, _ = models.load_export(args.export)
        result["export"] = args.export
        result["kind"] = model.kind
        wanted = {"user_batches": args.user_batches, "ad_batches": args.ad_batches,
                  "l2_shapes": args.l2_shapes, "train_steps": args.train_steps}
        allowed = {"l1.user": ("user_batches",), "l1.ad": ("ad_batches",),
                   "l2": ("l2_shapes", "train_steps")}[model.kind]
        for key, value in wanted.items():
            if value and key not in allowed:
                raise ValueError(f"--{key.replace('_', '-')} does not apply to a {model.kind} export")
        if model.kind == "l1.user":
            result["user_batches"] = bench_user_batches(model, args.user_batches or [1, 64, 512, 2048], rng, args)
            result["sequences"] = f"all of length L = {model.schema.seq_length}"
        elif model.kind == "l1.ad":
            result["ad_batches"] = bench_ad_batches(model, args.ad_batches or [1, 64, 512, 2048], rng, args)
        else:
            result["l2_shapes"] = bench_l2_shapes(model, args.l2_shapes or [(1, 500), (8, 500)], rng, args)
            result["sequences"] = f"all of length L = {model.schema.seq_length}"
            if args.train_steps:
                result["train"] = bench_train_steps(model, rng, args)
    elif not args.gemm_peak:
        raise ValueError("bench needs --export, --gemm-peak or both")
    if args.gemm_peak:
        result["gemm_peak"] = gemm_peak()
    result["blas"] = _blas_libraries()
    print(json.dumps(result, indent=2))


# ---------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchref", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def threads(sp):
        sp.add_argument("--threads", type=int, default=None, help="torch threads (default 1)")

    r = sub.add_parser("run", help="forward pass of an export on coded inputs")
    r.add_argument("--export", required=True, help="l2_<surface>.safetensors, l1/<route>/user or ad.safetensors")
    r.add_argument("--inputs", required=True, help="coded inputs (safetensors, docs/ENGINE.md field names)")
    r.add_argument("--out", required=True, help="where to write the outputs (safetensors)")
    r.add_argument("--float64", action="store_true", help="compute in float64 (outputs are still written as F32)")
    threads(r)
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("init", help="an export like FILE with weights from PyTorch's own initialisation")
    i.add_argument("--like", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--seed", type=int, default=0)
    threads(i)
    i.set_defaults(func=cmd_init)

    g = sub.add_parser("random-inputs", help="valid random coded inputs for an export")
    g.add_argument("--export", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--u", type=int, default=4, help="contexts (L2, L1 user)")
    g.add_argument("--n", type=int, default=16, help="rows (L2, L1 ad)")
    g.add_argument("--seed", type=int, default=0)
    threads(g)
    g.set_defaults(func=cmd_random_inputs)

    b = sub.add_parser("bench", help="forward and training-step timings (JSON on stdout)")
    b.add_argument("--export", help="the export to time")
    b.add_argument("--user-batches", type=_ints, help="L1 user: contexts per batch, e.g. 1,64,512,2048")
    b.add_argument("--ad-batches", type=_ints, help="L1 ad: ads per batch, e.g. 1,64,512,2048")
    b.add_argument("--l2-shapes", type=_shapes, help="L2: UxC (contexts x candidates per context), e.g. 1x500,8x500")
    b.add_argument("--train-steps", action="store_true", help="L2: training-step throughput")
    b.add_argument("--train-batch", type=int, default=256)
    b.add_argument("--train-contexts", type=int, default=85)
    b.add_argument("--gemm-peak", action="store_true", help="numpy float32 2048^3 matmul GFLOP/s")
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--min-repeats", type=int, default=10)
    b.add_argument("--min-time", type=float, default=2.0, help="seconds of timed calls per measurement, at least")
    b.add_argument("--seed", type=int, default=0)
    threads(b)
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as e:
        print(f"torchref {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyError as e:
        print(f"torchref {args.command}: tandem.config or tandem.model lacks {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
