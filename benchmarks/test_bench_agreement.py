"""Annotator agreement on 100k items x 5 annotators, 4 categories, 10 % of the ratings
missing: alcore.monitor.agreement (every statistic in one report: Cohen's kappa of the 10
annotator pairs, Fleiss' kappa, Krippendorff's alpha, per-item agreement, majority) against
the libraries a user would call instead, each for one statistic: scikit-learn's
cohen_kappa_score over the 10 pairs (each on the items both rated), statsmodels'
fleiss_kappa after aggregate_raters (it takes complete tables only, so it runs on the same
table with every rating present), and krippendorff.alpha (nominal) on the table with
missing ratings. The peers are timed inside the benchmark (best of 3); the ratios go to
extra_info, and every figure must equal alcore's."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from benchutil import record

import alcore.monitor

ANNOTATORS = 5
CATEGORIES = 4
MISSING = 0.1


def make_table(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(complete float table, the same with MISSING of it NaN): annotators copy a true label
    with probability 0.7, else label at random."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, CATEGORIES, size=n)
    noise = rng.integers(0, CATEGORIES, size=(n, ANNOTATORS))
    complete = np.where(rng.random((n, ANNOTATORS)) < 0.7, truth[:, None], noise)
    complete = complete.astype(np.float64)
    holes = complete.copy()
    holes[rng.random(holes.shape) < MISSING] = np.nan
    return complete, holes


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def sklearn_pairs(table: np.ndarray) -> np.ndarray:
    from sklearn.metrics import cohen_kappa_score

    kappas = []
    for a, b in itertools.combinations(range(table.shape[1]), 2):
        both = ~np.isnan(table[:, a]) & ~np.isnan(table[:, b])
        kappas.append(cohen_kappa_score(table[both, a], table[both, b]))
    return np.array(kappas)


def statsmodels_fleiss(complete: np.ndarray) -> float:
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    counts, _ = aggregate_raters(complete.astype(np.int64))
    return float(fleiss_kappa(counts, method="fleiss"))


def krippendorff_alpha(table: np.ndarray) -> float:
    import krippendorff

    return float(krippendorff.alpha(reliability_data=table.T, level_of_measurement="nominal"))


@pytest.mark.parametrize("label", ["100k"])
def test_agreement_100k_x_5(benchmark, sizes, label):
    n = sizes.rows(label)
    complete, table = make_table(n)
    benchmark.group = (f"agreement {sizes.name(label)} x {ANNOTATORS} annotators, "
                       f"{CATEGORIES} categories, {MISSING:.0%} missing")
    record(benchmark, "alcore", "alcore")
    report = benchmark.pedantic(alcore.monitor.agreement, args=(table,), rounds=5,
                                iterations=1, warmup_rounds=1)
    mine, _ = best_of(lambda: alcore.monitor.agreement(table))

    t_cohen, kappas = best_of(lambda: sklearn_pairs(table))
    t_fleiss, fleiss = best_of(lambda: statsmodels_fleiss(complete))
    t_alpha, alpha = best_of(lambda: krippendorff_alpha(table))
    mine_complete, complete_report = best_of(lambda: alcore.monitor.agreement(complete))

    upper = report.pairwise_kappa[np.triu_indices(ANNOTATORS, 1)]
    np.testing.assert_allclose(upper, kappas, rtol=1e-9)
    assert complete_report.fleiss_kappa == pytest.approx(fleiss, rel=1e-9)
    assert report.krippendorff_alpha == pytest.approx(alpha, rel=1e-9)

    peers = {"scikit-learn cohen_kappa_score, 10 pairs": t_cohen,
             "statsmodels aggregate_raters + fleiss_kappa (complete table)": t_fleiss,
             "krippendorff.alpha nominal": t_alpha}
    benchmark.extra_info["peer_seconds"] = peers
    benchmark.extra_info["alcore_best_s"] = mine
    benchmark.extra_info["alcore_complete_table_best_s"] = mine_complete
    benchmark.extra_info["ratios"] = {
        "cohen_kappa_score / alcore": t_cohen / mine,
        "fleiss_kappa / alcore (both on the complete table)": t_fleiss / mine_complete,
        "krippendorff.alpha / alcore": t_alpha / mine,
        "the three peers together / alcore": (t_cohen + t_fleiss + t_alpha) / mine,
    }
