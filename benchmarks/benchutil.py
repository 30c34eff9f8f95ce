"""Helpers shared by the benchmark suites."""


def record(benchmark, contender: str, role: str) -> None:
    """Tag a benchmark so benchmarks/report.py can form the ratios of its group."""
    benchmark.extra_info["contender"] = contender
    benchmark.extra_info["role"] = role
