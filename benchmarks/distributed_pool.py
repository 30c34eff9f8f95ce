"""The issue-13 benchmark: a pool of Parquet partitions on disk (20M x 10 probabilities plus
64-d embeddings in full), scored out of core in one process (``client="sync"``) and on a
``LocalCluster`` of 2 worker processes, in the same run.

    python benchmarks/distributed_pool.py DIR [--rows 20000000] [--partitions 20] [--json F]

Writes the pool into DIR once (kept for later runs), then reports for each contender and
task (top-k margin; margin + k-center over the 5k best): wall seconds, items/s, the bytes
each partition's answer carried back and the plan shipped to each worker, and the peak
resident memory of this process (sync) or of each worker (cluster); beside them the floor:
reading the columns each task needs with polars in one process, first, so that all three
find the same pages in the OS cache. Scoring has no
pruning, so the embeddings' structure plays no part here: isotropic data is as hard as any.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

K = 1000
CLASSES, DIM = 10, 64


def write_pool(folder: Path, rows: int, partitions: int, seed: int = 0) -> list[Path]:
    """Softmax probabilities of random logits and isotropic embeddings, float32, one file
    per partition (row groups of 256k rows)."""
    import polars as pl

    folder.mkdir(parents=True, exist_ok=True)
    per = -(-rows // partitions)
    paths = []
    for p in range(partitions):
        path = folder / f"part-{p:04d}.parquet"
        paths.append(path)
        lo, hi = p * per, min(rows, (p + 1) * per)
        if path.exists():
            continue
        rng = np.random.default_rng([seed, p])
        logits = rng.normal(scale=2.0, size=(hi - lo, CLASSES)).astype(np.float32)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        emb = rng.standard_normal((hi - lo, DIM), dtype=np.float32)
        table = pl.DataFrame({"id": np.arange(lo, hi, dtype=np.int64),
                              "probs": probs, "embedding": emb})
        tmp = path.with_suffix(".tmp")
        table.write_parquet(tmp, row_group_size=262_144)
        tmp.rename(path)
        print(f"wrote {path.name} ({hi - lo} rows)", file=sys.stderr)
    return paths


def _reset_peak() -> None:
    """Start a new peak resident set (Linux >= 4.0: ``5`` into clear_refs resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_rss_mb() -> float:
    """This process's peak resident set since the last reset (VmHWM). Not ru_maxrss:
    Linux carries that across fork and exec, so a worker would report its parent's peak
    (writing the pool, say)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(paths: list[Path], rows: int) -> list[dict]:
    import polars as pl
    from distributed import Client, LocalCluster

    import alcore
    import alcore.distributed as ad

    tasks = {"top-k margin": {}, "margin + kcenter over 5k": {"diversity": "kcenter"}}
    results = []
    for task, options in tasks.items():
        for contender in ("floor", "sync (1 process)", "LocalCluster 2 workers"):
            if contender == "floor":
                # The columns the task cannot avoid reading, in one process; run first, so
                # that every contender finds the same pages in the OS cache.
                columns = ["id", "probs", *(["embedding"] if options else [])]
                _reset_peak()
                start = time.perf_counter()
                for path in paths:
                    pl.read_parquet(path, columns=columns)
                seconds = time.perf_counter() - start
                results.append({"task": task, "contender": f"floor: read {columns}",
                                "rows": rows, "seconds": seconds,
                                "items_per_s": rows / seconds,
                                "peak_rss_mb": {"this process": _peak_rss_mb()}})
                print(json.dumps(results[-1]), file=sys.stderr)
                continue
            if contender.startswith("sync"):
                _reset_peak()
                start = time.perf_counter()
                found = ad.select(paths, K, client="sync", **options)
                seconds = time.perf_counter() - start
                memory = {"this process": _peak_rss_mb()}
            else:
                with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, Client(cluster) as client:
                    client.run(alcore.warmup)
                    client.run(_reset_peak)
                    start = time.perf_counter()
                    found = ad.select(paths, K, client=client, **options)
                    seconds = time.perf_counter() - start
                    peaks = client.run(_peak_rss_mb)
                memory = {f"worker {i}": peak for i, peak in enumerate(peaks.values())}
            returned = found.config["bytes_returned"]
            results.append({
                "task": task, "contender": contender, "rows": rows, "seconds": seconds,
                "items_per_s": rows / seconds, "partitions": len(paths),
                "bytes_returned_per_partition": int(np.mean(returned)),
                "bytes_returned_total": int(np.sum(returned)),
                "bytes_shipped_per_worker": found.config["bytes_shipped"],
                "peak_rss_mb": memory, "indices_head": found.indices[:5].tolist(),
                "timings": found.timings})
            print(json.dumps(results[-1]), file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write-only", action="store_true", help="write the pool, no timing")
    args = parser.parse_args()
    paths = write_pool(args.folder, args.rows, args.partitions)
    if args.write_only:
        return
    results = run(paths, args.rows)
    timed = [r for r in results if "indices_head" in r]
    for a, b in zip(timed[::2], timed[1::2], strict=True):
        assert a["indices_head"] == b["indices_head"], "the contenders disagree"
    report = {"machine": {"cpu": platform.processor() or platform.machine(),
                          "isa": __import__("alcore")._core.isa()},
              "results": results}
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
