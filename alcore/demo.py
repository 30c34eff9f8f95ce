"""``alcore demo``: a seeded tour of what alcore does, with timings."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

import alcore
from alcore import _core, _numpy_reference


def _best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    fn()  # first call pays page faults and lazy set-up
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_pool(n: int, classes: int, seed: int) -> np.ndarray:
    """Softmax of Gaussian logits with a per-item confidence scale: a mix of confident and
    ambiguous items, float32, shape (n, classes)."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, classes), dtype=np.float32)
    logits *= rng.uniform(0.5, 6.0, size=(n, 1)).astype(np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def run(n: int = 1_000_000, classes: int = 10, k: int = 1000, seed: int = 0,
        repeats: int = 5, out: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Build a seeded pool, select k items with every score, print a table.

    Returns the timings (seconds) per score, for tests and scripts.
    """
    alcore.warmup()
    out(f"alcore {alcore.__version__}: {_core.isa()} kernels, {alcore.get_num_threads()} threads")
    start = time.perf_counter()
    probs = make_pool(n, classes, seed)
    labeled = np.zeros(n, dtype=bool)
    labeled[np.random.default_rng(seed + 1).choice(n, size=n // 100, replace=False)] = True
    out(f"pool: {n:,} items x {classes} classes, float32 ({probs.nbytes / 1e6:.0f} MB), "
        f"{int(labeled.sum()):,} already labeled; built in {time.perf_counter() - start:.2f} s")
    out(f"selecting the {k} most informative unlabeled items\n")
    header = (f"{'score':<17}{'alcore ms':>10}{'numpy ms':>10}{'speed-up':>10}"
              f"{'best score':>13}{f'{k}th score':>13}  same batch")
    out(header)
    out("-" * len(header))
    results: dict[str, dict[str, float]] = {}
    for name in ("least_confidence", "margin", "ratio", "entropy"):
        fast, chosen = _best_of(
            lambda name=name: alcore.select_top(probs, k, score=name, labeled=labeled), repeats
        )

        def with_numpy(name: str = name) -> np.ndarray:
            scores = _numpy_reference.score(name, probs)
            scores[labeled] = -np.inf
            return _numpy_reference.top_k(scores, k)

        slow, numpy_chosen = _best_of(with_numpy, 1)
        scores = getattr(alcore.scores, name)(probs[chosen])
        same = set(chosen.tolist()) == set(numpy_chosen.tolist())
        out(f"{name:<17}{fast * 1e3:>10.2f}{slow * 1e3:>10.1f}{slow / fast:>9.0f}x"
            f"{scores[0]:>13.5f}{scores[-1]:>13.5f}  {'yes' if same else 'no (ties)'}")
        results[name] = {"alcore": fast, "numpy": slow}

    t_members, n_samples = 20, min(n, 100_000)
    rng = np.random.default_rng(seed + 2)
    samples = make_pool(t_members * n_samples, classes, seed + 3).reshape(
        t_members, n_samples, classes)
    samples = np.ascontiguousarray(samples[:, rng.permutation(n_samples)])
    k_bald = min(k, n_samples)
    fast, _ = _best_of(lambda: alcore.select_top(samples, k_bald, score="bald"), repeats)
    slow, _ = _best_of(
        lambda: _numpy_reference.top_k(_numpy_reference.bald(samples), k_bald), 1)
    out(f"{'bald':<17}{fast * 1e3:>10.2f}{slow * 1e3:>10.1f}{slow / fast:>9.0f}x"
        f"  ({t_members} samples x {n_samples:,} items x {classes} classes)")
    results["bald"] = {"alcore": fast, "numpy": slow}
    out("\nnumpy = vectorised numpy scoring + argpartition; alcore = one fused native pass "
        "(validation included).")
    return results


def stream_tour(n: int = 1_000_000, seed: int = 0,
                out: Callable[[str], None] = print) -> dict[str, float]:
    """Gate a seeded stream of n 10-class rows under a 5 % budget."""
    from alcore.stream import StreamGate

    rows = make_pool(n, 10, seed + 4)
    gate = StreamGate("variable_uncertainty", 0.05)
    gate.decide_one(rows[0])
    start = time.perf_counter()
    queried = gate.decide_many(rows[1:])
    seconds = time.perf_counter() - start
    stats = gate.stats
    ms = seconds * 1e3
    took = f"{ms:.0f}" if ms >= 10 else f"{ms:.2g}"  # a small --items run is not "0 ms"
    out(f"stream: {stats.seen:,} items gated in {took} ms "
        f"({stats.seen / seconds / 1e6:.0f} M items/s); {stats.queried:,} sent to annotators "
        f"({stats.budget_used:.2%} of a 5.00% budget), threshold now {stats.threshold:.3f}")
    return {"seconds": seconds, "queried_share": float(queried.mean())}


def simulation_tour(out_dir: str = "alcore-demo-out", seeds: int = 20,
                    out: Callable[[str], None] = print) -> dict | None:
    """Learning curves on digits (needs scikit-learn and matplotlib): random, margin and
    alcore.select's default (plus scikit-activeml's margin when it is installed), over
    ``seeds`` seeds, with 95 % intervals of the AULC differences."""
    from alcore import simulate

    try:
        x, y = simulate.load_dataset("digits")
        simulate._need("matplotlib")
    except ImportError:
        out("simulation: skipped (pip install 'alcore[full]' for scikit-learn and matplotlib)")
        return None
    strategies = ["random", "margin", "default"]
    if simulate.has_skactiveml():
        strategies.append("skactiveml-margin")
    out(f"simulation on digits (LogisticRegression, 10 rounds of 10 labels, {seeds} seeds; "
        f"writing curves.json, summary.txt and learning_curves.png to {out_dir}/):")
    out("  default = alcore.select(probs, k, embeddings=x): margin, then k-center over the "
        "5 x k best-margin items")
    results = simulate.run(x, y, strategies, rounds=10, batch=10, seeds=seeds)
    files = simulate.write(results, out_dir, f"digits: learning curves, {seeds} seeds")
    for line in simulate.table(results).splitlines():
        out("  " + line)
    out(f"  plot: {files[-1]} (mean curves; bands are ±1 standard deviation over seeds)")
    return results


def tour(n: int = 1_000_000, classes: int = 10, k: int = 1000, seed: int = 0,
         repeats: int = 5, out_dir: str = "alcore-demo-out", seeds: int = 20,
         out: Callable[[str], None] = print) -> dict:
    """The product tour: pool selection at scale, a gated stream, a simulation."""
    start = time.perf_counter()
    pool = run(n=n, classes=classes, k=k, seed=seed, repeats=repeats, out=out)
    out("")
    stream = stream_tour(n=n, seed=seed, out=out)
    out("")
    simulation = simulation_tour(out_dir=out_dir, seeds=seeds, out=out)
    out(f"\ntour finished in {time.perf_counter() - start:.1f} s")
    return {"pool": pool, "stream": stream, "simulation": simulation}
