"""Turn a pytest-benchmark JSON file into the ratio table of benchmarks/RESULTS.md.

Usage: python benchmarks/report.py benchmarks/latest.json > benchmarks/RESULTS.md
Ratios use the median of each benchmark; "x faster" = peer median / alcore median;
"x floor" = alcore median / floor median (the floor is one pass over the input memory).
"""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict
from pathlib import Path

COMMAND = ("pytest benchmarks --benchmark-only --benchmark-json=benchmarks/latest.json && "
           "python benchmarks/report.py benchmarks/latest.json > benchmarks/RESULTS.md")


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def main(path: str) -> None:
    with open(path) as f:
        data = json.load(f)
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"]].append(bench)
    info = data.get("machine_info", {})
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{COMMAND}`",
        "",
        f"Machine: {info.get('cpu', {}).get('brand_raw', platform.processor())}, "
        f"{info.get('cpu', {}).get('count', '?')} cores; "
        f"Python {info.get('python_version', platform.python_version())}; "
        f"run {data.get('datetime', '')[:19]}.",
        "",
        "Medians. *x faster* = contender median / alcore median (higher is better for "
        "alcore); *x floor* = alcore median / floor median (1.0 = as fast as one pass over "
        "the input memory).",
        "",
        "| benchmark | alcore | contender | contender time | ratio |",
        "|---|---|---|---|---|",
    ]
    for group, benches in groups.items():
        by_role = defaultdict(list)
        for b in benches:
            by_role[b["extra_info"].get("role", "peer")].append(b)
        if "absolute" in by_role:
            for b in by_role["absolute"]:
                extra = b["extra_info"]
                detail = ", ".join(f"{key[:-2]} {fmt_time(value)}" for key, value in extra.items()
                                   if key.endswith("_s"))
                lines.append(f"| {group} | {fmt_time(b['stats']['median'])} | "
                             f"`{extra['contender']}` | {detail} | |")
            continue
        alcore_bench = by_role["alcore"][0]
        alcore = alcore_bench["stats"]["median"]
        extra = alcore_bench["extra_info"]
        # Peers timed inside the alcore benchmark (e.g. scaled from a sample).
        for name, t in extra.get("peer_seconds", {}).items():
            note = f" (recall@10 {extra['recall@10']:.3f})" if "recall@10" in extra else ""
            lines.append(f"| {group}{note} | {fmt_time(alcore)} | {name} | {fmt_time(t)} | "
                         f"**{t / alcore:.1f}x faster** |")
        for b in by_role["peer"]:
            t = b["stats"]["median"]
            lines.append(f"| {group} | {fmt_time(alcore)} | {b['extra_info']['contender']} | "
                         f"{fmt_time(t)} | **{t / alcore:.1f}x faster** |")
        for b in by_role["floor"]:
            t = b["stats"]["median"]
            lines.append(f"| {group} | {fmt_time(alcore)} | memory floor | {fmt_time(t)} | "
                         f"**{alcore / t:.2f}x floor** |")
    # Measurements that are not pytest-benchmark runs (simulations, end-to-end CLI), kept
    # by hand in SIMULATIONS.md beside this script.
    extra = Path(__file__).with_name("SIMULATIONS.md")
    if extra.exists():
        lines += ["", extra.read_text().rstrip()]
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
