"""expected_gradient_length against direct gradient computations: finite differences of
scikit-learn models' per-sample losses on their own coef_/intercept_, and slow loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import prob_matrices

import alcore
from alcore.model_change import expected_gradient_length as egl


def _numeric_grad(loss, coef, intercept, h=1e-6):
    """Central differences of loss(coef, intercept) over every weight and intercept."""
    grad = []
    for array in (coef, intercept):
        for idx in np.ndindex(array.shape):
            up, down = array.copy(), array.copy()
            up[idx] += h
            down[idx] -= h
            if array is coef:
                grad.append((loss(up, intercept) - loss(down, intercept)) / (2 * h))
            else:
                grad.append((loss(coef, up) - loss(coef, down)) / (2 * h))
    return np.array(grad)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _data(n=200, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=1.0, size=(classes, d))
    y = rng.integers(classes, size=n)
    return centers[y] + rng.normal(size=(n, d)), y


def test_ovr_sgdclassifier_equals_finite_difference_gradients():
    sk = pytest.importorskip("sklearn.linear_model")
    X, y = _data()
    clf = sk.SGDClassifier(loss="log_loss", alpha=0.01, random_state=0).fit(X, y)
    items = X[:8]
    sig = _sigmoid(clf.decision_function(items))
    p = clf.predict_proba(items)
    np.testing.assert_allclose(p, sig / sig.sum(axis=1, keepdims=True))  # OvR normalised

    expected = []
    for x, row in zip(items, p, strict=True):
        total = 0.0
        for label in range(3):
            target = (np.arange(3) == label).astype(float)

            # The per-sample loss of the one-vs-rest model: each class's binary log-loss
            # (SGDClassifier's log_loss on +-1 targets), from sklearn's own coefficients.
            def loss(coef, intercept, x=x, target=target):
                z = coef @ x + intercept
                return np.sum(np.logaddexp(0.0, -(2 * target - 1) * z))

            total += row[label] * np.linalg.norm(_numeric_grad(loss, clf.coef_,
                                                               clf.intercept_))
        expected.append(total)
    got = egl(sig, items, model="ovr")
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # The decision function itself with logits=True: the same.
    np.testing.assert_allclose(egl(clf.decision_function(items), items, model="ovr",
                                   logits=True), expected, rtol=1e-6)
    # The multinomial formula on predict_proba is a different model: it must not match.
    assert not np.allclose(egl(p, items, model="softmax"), expected, rtol=1e-3)


def test_binary_sgdclassifier_equals_finite_difference_gradients():
    sk = pytest.importorskip("sklearn.linear_model")
    X, y = _data(classes=2, seed=1)
    clf = sk.SGDClassifier(loss="log_loss", alpha=0.01, random_state=0).fit(X, y)
    items = X[:10]
    p = clf.predict_proba(items)
    expected = []
    for x, row in zip(items, p, strict=True):
        total = 0.0
        for label in (0, 1):
            def loss(coef, intercept, x=x, label=label):
                z = (coef @ x + intercept)[0]
                return float(np.logaddexp(0.0, -(2 * label - 1) * z))

            total += row[label] * np.linalg.norm(_numeric_grad(loss, clf.coef_,
                                                               clf.intercept_))
        expected.append(total)
    np.testing.assert_allclose(egl(p, items), expected, rtol=1e-6)
    np.testing.assert_allclose(egl(p[:, 1], items), expected, rtol=1e-6)  # 1-D form
    np.testing.assert_allclose(egl(clf.decision_function(items), items, logits=True),
                               expected, rtol=1e-6)
    # Without the intercept's gradient: |x| instead of sqrt(|x|^2 + 1).
    no_bias = [e / math.sqrt(x @ x + 1) * math.sqrt(x @ x)
               for e, x in zip(expected, items, strict=True)]
    np.testing.assert_allclose(egl(p, items, bias=False), no_bias, rtol=1e-6)


def test_multinomial_logistic_equals_finite_difference_gradients():
    sk = pytest.importorskip("sklearn.linear_model")
    X, y = _data(classes=4, seed=2)
    clf = sk.LogisticRegression(max_iter=500).fit(X, y)  # multinomial (softmax)
    items = X[:6]
    p = clf.predict_proba(items)
    expected = []
    for x, row in zip(items, p, strict=True):
        total = 0.0
        for label in range(4):
            def loss(coef, intercept, x=x, label=label):
                z = coef @ x + intercept
                return -(z[label] - z.max() - math.log(np.exp(z - z.max()).sum()))

            total += row[label] * np.linalg.norm(_numeric_grad(loss, clf.coef_,
                                                               clf.intercept_))
        expected.append(total)
    np.testing.assert_allclose(egl(p, items), expected, rtol=1e-6)
    np.testing.assert_allclose(egl(p, items, model="softmax"), expected, rtol=1e-6)
    np.testing.assert_allclose(egl(clf.decision_function(items), items, logits=True),
                               expected, rtol=1e-6)


def test_linear_regression_expected_gradient_by_quadrature():
    # E over y ~ N(y_hat, sigma^2) of |grad of (y_hat - y)^2 / 2| by quadrature of the
    # numeric gradient (Simpson on a fine symmetric grid: |z| is not smooth at 0, so one
    # grid node sits there), against sigma sqrt(2/pi) |x~|.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 3))
    w, b, sigma = rng.normal(size=3), 0.3, 0.7
    nodes = np.linspace(-9.0, 9.0, 1801)
    simpson = np.ones(nodes.size)
    simpson[1:-1:2], simpson[2:-1:2] = 4.0, 2.0
    weights = simpson * np.exp(-nodes**2 / 2) / math.sqrt(2 * math.pi) * (nodes[1] - nodes[0]) / 3
    expected = []
    for row in x:
        y_hat = row @ w + b
        total = 0.0
        for z, q in zip(nodes, weights, strict=True):
            target = y_hat + sigma * z

            def loss(coef, intercept, row=row, target=target):
                return 0.5 * (row @ coef + intercept[0] - target) ** 2

            total += q * np.linalg.norm(_numeric_grad(loss, w, np.array([b])))
        expected.append(total)
    np.testing.assert_allclose(egl(None, x, model="linear", sigma=sigma), expected, rtol=1e-5)
    per_item = np.full(5, sigma)
    np.testing.assert_allclose(egl(None, x, model="linear", sigma=per_item), expected,
                               rtol=1e-5)


def _slow(p, x, model, bias=True):
    norm = math.sqrt(sum(float(t) ** 2 for t in x) + (1.0 if bias else 0.0))
    c = len(p)
    if model == "logistic" and c == 2:
        return 2 * float(p[1]) * (1 - float(p[1])) * norm
    if model == "ovr":
        label_p = [float(s) / sum(float(t) for t in p) for s in p]
    else:
        label_p = [float(s) for s in p]
    total = 0.0
    for y in range(c):
        residual = math.sqrt(sum((float(p[j]) - (1.0 if j == y else 0.0)) ** 2
                                 for j in range(c)))
        total += label_p[y] * residual
    return total * norm


@settings(max_examples=100, deadline=None)
@given(prob_matrices(max_rows=20, max_classes=10), st.sampled_from(["logistic", "softmax",
                                                                    "ovr"]),
       st.booleans(), st.data())
def test_matches_slow_loops(probs, model, bias, data):
    n = probs.shape[0]
    x = data.draw(hnp.arrays(np.float64, (n, 3), elements=st.floats(-5, 5)))
    if model == "ovr":
        probs = probs.copy()
        probs[probs.sum(axis=1) == 0, 0] = 1.0
    got = egl(probs, x, model=model, bias=bias)
    want = [_slow(p, r, model, bias) for p, r in zip(probs.astype(np.float64), x, strict=True)]
    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: egl(np.array([[0.5, 0.6]]), np.ones((1, 2))),
     r"probs rows must sum to 1 \(probs row 0 sums to 1.1, atol=0.001\)"),
    (lambda: egl(np.array([[np.nan, 1.0]]), np.ones((1, 2))),
     r"probs must be finite: probs\[0, 0\] is nan"),
    (lambda: egl(np.array([[0.5, 0.5]]), np.array([[1.0, np.inf]])),
     r"features must be finite: features\[0, 1\] is inf"),
    (lambda: egl(np.array([[0.5, 0.5]]), np.ones(2)),
     r"features must be 2-D with shape \(N items, d\), got shape \(2,\)"),
    (lambda: egl(np.array([[0.5, 0.5]] * 2), np.ones((3, 2))),
     r"probs has 2 items but features has 3"),
    (lambda: egl(np.array([[1.5, -0.5]]), np.ones((1, 2))),
     r"probs must lie in \[0, 1\]: probs row 0, column 0 is 1.5"),
    (lambda: egl(np.array([[0.5, 0.5]]), np.ones((1, 2)), model="tree"), r"model"),
    (lambda: egl(None, np.ones((1, 2)), model="linear"), r"sigma is required"),
    (lambda: egl(None, np.ones((2, 2)), model="linear", sigma=[1.0, 0.0]),
     r"sigma must be finite and > 0: sigma\[1\] is 0.0"),
    (lambda: egl(np.ones((1, 2)) / 2, np.ones((1, 2)), model="linear", sigma=1.0),
     r"probs must be None for model='linear'"),
    (lambda: egl(np.ones((1, 2)) / 2, np.ones((1, 2)), sigma=1.0),
     r"sigma is only for model='linear'"),
    (lambda: egl(np.array([0.5]), np.ones((1, 2)), model="softmax"),
     r"probs must be 2-D \(N, C\) for model='softmax'"),
    (lambda: egl(np.zeros((1, 3)), np.ones((1, 2)), model="ovr"),
     r"every per-class sigmoid 0"),
    (lambda: egl(np.ones((1, 2)) / 2, np.ones((1, 2)), modle="ovr"),
     r"unknown argument modle= \(did you mean model=\?\)"),
])
def test_bad_inputs(call, message):
    with pytest.raises(alcore.InvalidInputError, match=message):
        call()
