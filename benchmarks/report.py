"""Turn a pytest-benchmark JSON file into the ratio tables of benchmarks/RESULTS.md, one
table per embedding shape and one for the workloads without embeddings.

Usage: python benchmarks/report.py benchmarks/latest.json > benchmarks/RESULTS.md
Ratios use the median of each benchmark; "x faster" = peer median / alcore median (below
1 shown as "x slower" = alcore median / peer median);
"x floor" = alcore median / floor, the floor being one read of the input matrix timed in
the same run (benchutil.floor) times the reads the workload cannot avoid (k-center: one
per pick).
"""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict
from pathlib import Path

# The runs RESULTS.md is made of: the main run (every suite, alcore on its AVX2 kernels,
# the targets' path), the suites whose kernels differ by instruction set on AVX-512, the
# uncertainty and TypiClust suites with every library on AVX2 code (numpy, OpenBLAS and
# FAISS dispatch to AVX-512 by themselves on an AVX-512 machine: without this the peers run
# faster code than they would on the AVX2 machine the targets are for), and the suites
# issue 10 added or changed (custom utilities, stream, stream density, river), measured
# after the first three, and those of issue 11 (query synthesis, pool sketch and audit,
# annotator agreement).
AVX2_FOR_ALL = ('NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL" OPENBLAS_CORETYPE=Haswell '
                "FAISS_OPT_LEVEL=avx2 ")
RUNS = [
    "ALCORE_ISA=avx2 pytest benchmarks --benchmark-only --benchmark-json=benchmarks/latest.json",
    "pytest benchmarks/test_bench_uncertainty.py benchmarks/test_bench_stream.py "
    "benchmarks/test_bench_kcenter.py --benchmark-only "
    "--benchmark-json=benchmarks/latest_avx512.json",
    AVX2_FOR_ALL + "ALCORE_ISA=avx2 pytest benchmarks/test_bench_uncertainty.py "
    "benchmarks/test_bench_diversity.py --benchmark-only -k \"test_pool or bald or "
    "(test_at_20k and typiclust)\" --benchmark-json=benchmarks/latest_avx2_for_all.json",
    "ALCORE_ISA=avx2 pytest benchmarks/test_bench_utility.py benchmarks/test_bench_stream.py "
    "benchmarks/test_bench_stream_density.py benchmarks/test_bench_river.py --benchmark-only "
    "--benchmark-json=benchmarks/latest_issue10.json",
    "ALCORE_ISA=avx2 pytest benchmarks/test_bench_synthesis.py benchmarks/test_bench_monitor.py "
    "benchmarks/test_bench_agreement.py --benchmark-only "
    "--benchmark-json=benchmarks/latest_issue11.json",
    "python benchmarks/report.py benchmarks/latest.json benchmarks/latest_avx512.json "
    "benchmarks/latest_avx2_for_all.json benchmarks/latest_issue10.json "
    "benchmarks/latest_issue11.json > benchmarks/RESULTS.md",
]

SHAPES = {
    "separated": "100-component Gaussian mixture, centres at scale 3, unit noise (clusters "
                 "far apart: the triangle-inequality pruning skips almost everything)",
    "overlapping": "the same mixture with centres at scale 1 (clusters touch)",
    "isotropic": "standard Gaussian, no structure (no pruning can help)",
    "real": "8x8 RGB patches of scikit-learn's two sample photographs, values in [0, 1], "
            "through a fixed Gaussian random projection (not centred)",
}
OTHER = "no embeddings (class probabilities, stream)"
HEADER = ["| benchmark | alcore | contender | contender time | ratio | notes |",
          "|---|---|---|---|---|---|"]


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def faster(peer: float, alcore: float) -> str:
    if peer >= alcore:
        return f"**{peer / alcore:.1f}x faster**"
    return f"**{alcore / peer:.1f}x slower**"


def notes(extra: dict) -> str:
    """The figures a benchmark records beside its time (benchmarks' extra_info)."""
    out = []
    if "recall@10" in extra:
        out.append(f"recall@10 {extra['recall@10']:.3f}")
    if "index" in extra:
        out.append(f"index `{extra['index']}`")
    if extra.get("inertia") is not None:
        clusters = f" ({extra['clusters']} clusters)" if "clusters" in extra else ""
        out.append(f"k-means inertia {extra['inertia']:.4g}{clusters}")
    if "rows_per_s" in extra:
        out.append(f"{extra['rows_per_s'] / 1e6:.1f} M rows/s")
    for key in ("radius", "min_distance"):
        if key in extra:
            out.append(f"{key} {extra[key]:.3g}")
    if "taken" in extra:
        out.append(f"{extra['taken']} taken")
    if "compile_first_process_s" in extra:  # a custom utility (test_bench_utility.py)
        out.append(f"Numba compile {extra['compile_first_process_s']:.2f} s in a first "
                   f"process, {extra['compile_cached_process_s']:.2f} s cached in a second "
                   f"(import numba {extra['numba_import_s']:.2f} s)")
    if "p99_s" in extra and extra.get("role") != "absolute":  # absolute rows list them
        out.append(f"per call p50 {fmt_time(extra['p50_s'])}, p99 {fmt_time(extra['p99_s'])}")
    if "items_per_s" in extra:
        out.append(f"{extra['items_per_s']:,.0f} items/s")
    if "overhead_us_per_item" in extra:
        out.append(f"{extra['overhead_us_per_item']:.2f} µs/item beyond the classifier")
    if "model_calls" in extra:  # boundary synthesis (test_bench_synthesis.py)
        out.append(f"{extra['model_calls']} predict_proba calls ({extra['bisection_steps']} "
                   f"bisection steps, {extra['rows_per_call']:.0f} rows per call; one call "
                   f"per point and step would be {extra['per_point_calls']})")
    if "traced_peak_mb" in extra:  # PoolSketch.build (test_bench_monitor.py)
        out.append(f"traced peak {extra['traced_peak_mb']:.0f} MB beyond the "
                   f"{extra['pool_mb']:.0f} MB pool")
    if "rss_high_water_mb" in extra:
        out.append(f"peak RSS {extra['rss_high_water_mb']:.0f} MB")
    if "seconds_once" in extra:  # an audit (test_bench_monitor.py)
        out.append(f"first call {fmt_time(extra['seconds_once'])} (target "
                   f"{fmt_time(extra['target_s'])})")
    return ", ".join(out)


def both_notes(alcore: dict, peer: dict) -> str:
    mine, theirs = notes(alcore), notes(peer)
    return f"alcore: {mine}; contender: {theirs}" if theirs else mine


def group_lines(group: str, benches: list[dict]) -> list[str]:
    lines = []
    by_role = defaultdict(list)
    for b in benches:
        by_role[b["extra_info"].get("role", "peer")].append(b)
    for b in by_role["absolute"]:
        extra = b["extra_info"]
        detail = ", ".join(f"{key[:-2]} {fmt_time(value)}" for key, value in extra.items()
                           if key.endswith("_s") and key != "rows_per_s")
        lines.append(f"| {group} | {fmt_time(b['stats']['median'])} | "
                     f"`{extra['contender']}` | {detail} | | {notes(extra)} |")
    if not by_role["alcore"]:
        for b in by_role["peer"] + by_role["floor"]:  # a partial run: times only
            lines.append(f"| {group} | | {b['extra_info']['contender']} | "
                         f"{fmt_time(b['stats']['median'])} | | |")
        return lines
    alcore_bench = by_role["alcore"][0]
    alcore = alcore_bench["stats"]["median"]
    extra = alcore_bench["extra_info"]
    label = group
    # Peers timed inside the alcore benchmark (e.g. scaled from a sample of queries).
    for peer, t in extra.get("peer_seconds", {}).items():
        lines.append(f"| {label} | {fmt_time(alcore)} | {peer} | {fmt_time(t)} | "
                     f"{faster(t, alcore)} | {notes(extra)} |")
    for b in by_role["peer"]:
        t = b["stats"]["median"]
        lines.append(f"| {label} | {fmt_time(alcore)} | {b['extra_info']['contender']} | "
                     f"{fmt_time(t)} | {faster(t, alcore)} | "
                     f"{both_notes(extra, b['extra_info'])} |")
    for b in by_role["floor"]:
        passes = b["extra_info"].get("passes", 1)
        t = b["stats"]["median"] * passes
        one = f" ({fmt_time(b['stats']['median'])} per pass)" if passes > 1 else ""
        lines.append(f"| {label} | {fmt_time(alcore)} | {b['extra_info']['contender']} | "
                     f"{fmt_time(t)}{one} | **{alcore / t:.2f}x floor** | {notes(extra)} |")
    if not by_role["peer"] and not by_role["floor"] and not extra.get("peer_seconds"):
        lines.append(f"| {label} | {fmt_time(alcore)} | | | | {notes(extra)} |")
    return lines


def machine_lines(data: dict) -> list[str]:
    info = data.get("machine_info", {})
    mine = info.get("alcore", {})
    flags = mine.get("cpu_flags", {})
    offered = ", ".join(f"{flag} {'yes' if flags[flag] else 'no'}" for flag in flags) or "?"
    cap = mine.get("ALCORE_ISA")
    lines = [
        f"Machine: {info.get('cpu', {}).get('brand_raw', platform.processor())}, "
        f"{info.get('cpu', {}).get('count', '?')} cores; "
        f"Python {info.get('python_version', platform.python_version())}; "
        f"run {data.get('datetime', '')[:19]}.",
        "",
        f"Instruction set: alcore kernels `{mine.get('isa', '?')}` "
        f"(ALCORE_ISA{'=' + cap if cap else ' unset'}); CPU flags: {offered}"
        + "".join(f"; {name}={value}" for name, value in mine.get("env", {}).items()) + ".",
    ]
    if mine.get("sizes") == "smoke":
        lines += ["", "**Smoke sizes** (ALCORE_BENCH_SIZES=smoke): not the sizes the names give."]
    return lines


def tables(data: dict, level: str) -> list[str]:
    """The run's tables, one section per embedding shape (headings at ``level``)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"]].append(bench)
    by_shape: dict[str, list[str]] = defaultdict(list)
    for group, benches in groups.items():
        shape = next((b["extra_info"]["shape"] for b in benches
                      if "shape" in b["extra_info"]), OTHER)
        by_shape[shape] += group_lines(group, benches)
    lines: list[str] = []
    for shape in [*SHAPES, OTHER, *(s for s in by_shape if s not in SHAPES and s != OTHER)]:
        if shape not in by_shape:
            continue
        title = f"Embeddings: {shape}" if shape in SHAPES else "Other workloads"
        lines += ["", f"{level} {title}", "", sentence(SHAPES.get(shape, shape)), "",
                  *HEADER, *by_shape[shape]]
    return lines


def main(path: str, *supplementary: str) -> None:
    """Print RESULTS.md: the main run's tables, then each supplementary run's, then the
    hand-kept pages beside this script (SUMMARY.md first, SIMULATIONS.md last)."""
    with open(path) as f:
        data = json.load(f)
    here = Path(__file__).parent
    lines = [
        "# Benchmark results",
        "",
        "Commands:",
        "",
        *(f"- `{command}`" for command in RUNS),
        "",
        *machine_lines(data),
        "",
        "Medians. *x faster* = contender median / alcore median (higher is better for "
        "alcore; *x slower* is the inverse, where alcore loses); *x floor* = alcore median / "
        "the memory floor (1.0 = as fast as the reads of the input the workload cannot "
        "avoid: one streaming read of the matrix, timed in the same run, times the passes "
        "shown).",
    ]
    summary = here / "SUMMARY.md"
    if summary.exists():
        lines += ["", summary.read_text().rstrip()]
    lines += tables(data, "##")
    for extra_path in supplementary:
        with open(extra_path) as f:
            extra_run = json.load(f)
        lines += ["", f"## Supplementary run: `{Path(extra_path).name}`", "",
                  *machine_lines(extra_run), *tables(extra_run, "###")]
    # Measurements that are not pytest-benchmark runs (simulations), kept by hand.
    simulations = here / "SIMULATIONS.md"
    if simulations.exists():
        lines += ["", simulations.read_text().rstrip()]
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:])
