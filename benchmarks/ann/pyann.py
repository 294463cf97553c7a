#!/usr/bin/env python3
"""Times hnswlib and faiss HNSW on the vectors the Go benchmark wrote.

Reads base and query .fvecs, builds each library's index with the given M
and efConstruction on all threads, then for each ef searches all queries
in one batch call, first on one thread and then on --threads, repeating a
pass at least --min-passes times and until --min-time seconds have passed;
the fastest pass counts. The result ids go to .ivecs
files in --out (the Go side computes recall); timings go to stdout as one
JSON object.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def read_fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = int(a[0])
    return np.ascontiguousarray(a.reshape(-1, d + 1)[:, 1:].view(np.float32))


def write_ivecs(path, ids):
    ids = np.asarray(ids, dtype=np.int32)
    out = np.empty((ids.shape[0], ids.shape[1] + 1), dtype=np.int32)
    out[:, 0] = ids.shape[1]
    out[:, 1:] = ids
    out.tofile(path)


def timed(search, min_time, min_passes):
    """Runs search() at least min_passes times and until min_time has passed;
    returns the ids of the last pass and the seconds of the fastest."""
    passes, total, best, ids = 0, 0.0, float("inf"), None
    while total < min_time or passes < min_passes:
        t0 = time.perf_counter()
        ids = search()
        el = time.perf_counter() - t0
        total += el
        best = min(best, el)
        passes += 1
    return ids, best


def run_hnswlib(base, queries, a):
    import hnswlib

    n, d = base.shape
    p = hnswlib.Index(space="l2", dim=d)
    p.init_index(max_elements=n, ef_construction=a.efc, M=a.m, random_seed=1)
    p.set_num_threads(a.threads)
    t0 = time.perf_counter()
    p.add_items(base, np.arange(n), num_threads=a.threads)
    build = time.perf_counter() - t0
    runs = []
    for threads in (1, a.threads):
        p.set_num_threads(threads)
        for ef in a.ef:
            p.set_ef(ef)
            ids, sec = timed(lambda: p.knn_query(queries, k=a.k, num_threads=threads)[0],
                             a.min_time, a.min_passes)
            path = os.path.join(a.out, f"hnswlib_t{threads}_ef{ef}.ivecs")
            write_ivecs(path, ids)
            runs.append({"ef": ef, "threads": threads, "seconds": sec, "ids": path})
    return {"version": getattr(hnswlib, "__version__", "0.6.2 (Debian)"), "build_s": build,
            "build_threads": a.threads, "runs": runs}


def run_faiss(base, queries, a):
    import faiss

    n, d = base.shape
    faiss.omp_set_num_threads(a.threads)
    index = faiss.IndexHNSWFlat(d, a.m)
    index.hnsw.efConstruction = a.efc
    t0 = time.perf_counter()
    index.add(base)
    build = time.perf_counter() - t0
    runs = []
    for threads in (1, a.threads):
        faiss.omp_set_num_threads(threads)
        for ef in a.ef:
            index.hnsw.efSearch = ef
            ids, sec = timed(lambda: index.search(queries, a.k)[1], a.min_time, a.min_passes)
            path = os.path.join(a.out, f"faiss_t{threads}_ef{ef}.ivecs")
            write_ivecs(path, ids)
            runs.append({"ef": ef, "threads": threads, "seconds": sec, "ids": path})
    return {"version": faiss.__version__, "build_s": build, "build_threads": a.threads, "runs": runs}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--ef", default="10,20,40,80,120,200,400")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--min-passes", type=int, default=3)
    ap.add_argument("--libs", default="hnswlib,faiss")
    a = ap.parse_args()
    a.ef = [int(x) for x in a.ef.split(",") if x]
    base = read_fvecs(a.base)
    queries = read_fvecs(a.queries)
    out = {}
    for lib in a.libs.split(","):
        if not lib:
            continue
        print(f"{lib}: building", file=sys.stderr, flush=True)
        out[lib] = {"hnswlib": run_hnswlib, "faiss": run_faiss}[lib](base, queries, a)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
