"""Slow, obviously-correct references: one row at a time, in float64, straight from the
definitions. Every kernel is checked against these."""

from __future__ import annotations

import math

import numpy as np


def _rows(probs: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(row, dtype=np.float64) for row in probs]


def row_entropy(row: np.ndarray) -> float:
    return -sum(float(p) * math.log(float(p)) for p in row if p > 0)


def least_confidence(probs: np.ndarray) -> np.ndarray:
    return np.array([1.0 - max(row) for row in _rows(probs)])


def margin(probs: np.ndarray) -> np.ndarray:
    out = []
    for row in _rows(probs):
        first, second = sorted(row, reverse=True)[:2]
        out.append(1.0 - (first - second))
    return np.array(out)


def ratio(probs: np.ndarray) -> np.ndarray:
    out = []
    for row in _rows(probs):
        first, second = sorted(row, reverse=True)[:2]
        out.append(second / first)
    return np.array(out)


def entropy(probs: np.ndarray) -> np.ndarray:
    return np.array([row_entropy(row) for row in _rows(probs)])


SCORES = {
    "least_confidence": least_confidence,
    "margin": margin,
    "ratio": ratio,
    "entropy": entropy,
}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def bald(samples: np.ndarray) -> np.ndarray:
    t, n, _ = samples.shape
    out = []
    for i in range(n):
        members = [np.asarray(samples[m, i], dtype=np.float64) for m in range(t)]
        mean = sum(members) / t
        out.append(row_entropy(mean) - sum(row_entropy(p) for p in members) / t)
    return np.array(out)


def kl_consensus(samples: np.ndarray) -> np.ndarray:
    """Mean KL(p_t || mean), computed directly (not via the BALD identity)."""
    t, n, _ = samples.shape
    out = []
    for i in range(n):
        members = [np.asarray(samples[m, i], dtype=np.float64) for m in range(t)]
        mean = sum(members) / t
        kl = [sum(p * math.log(p / q) for p, q in zip(member, mean, strict=True) if p > 0)
              for member in members]
        out.append(sum(kl) / t)
    return np.array(out)


def votes(samples: np.ndarray) -> np.ndarray:
    """(N, C) vote counts, each member voting for its first most probable class."""
    t, n, c = samples.shape
    counts = np.zeros((n, c))
    for m in range(t):
        for i in range(n):
            counts[i, int(np.argmax(samples[m, i]))] += 1
    return counts


def variation_ratio(samples: np.ndarray) -> np.ndarray:
    t = samples.shape[0]
    return np.array([1.0 - max(row) / t for row in votes(samples)])


def vote_entropy(samples: np.ndarray) -> np.ndarray:
    t = samples.shape[0]
    return np.array([row_entropy(row / t) for row in votes(samples)])


SAMPLE_SCORES = {
    "bald": bald,
    "kl_consensus": kl_consensus,
    "variation_ratio": variation_ratio,
    "vote_entropy": vote_entropy,
}


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Sort every (score desc, index asc) pair and take the first k not excluded."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    if exclude is not None:
        order = [i for i in order if not exclude[i]]
    return np.array(order[:k], dtype=np.int64)
