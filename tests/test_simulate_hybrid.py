"""`alcore simulate --hybrid`: the workflow loop on digits with simulated annotators (small
runs: few rounds, small batches)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import run as run_cli

import alcore
from alcore import simulate_hybrid

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


@pytest.fixture(scope="module")
def result(digits):
    x, y = digits
    return simulate_hybrid.run(x, y, rounds=3, batch=10, annotators=3, noise=0.1, seed=1)


def test_annotators_flip_to_another_class_with_the_noise_rate():
    classes = np.array([0, 1, 2, 3])
    truth = np.repeat(classes, 5000)
    labels = simulate_hybrid.annotate(truth, classes, 3, 0.3, np.random.default_rng(0))
    assert labels.shape == (20000, 3) and labels.dtype == classes.dtype
    wrong = labels != truth[:, None]
    # 60000 draws: the share of wrong labels is 0.3 within 5 standard errors.
    assert abs(wrong.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / wrong.size)
    # A wrong label is one of the other three classes, each equally likely.
    for c in classes:
        given = labels[(truth == c)[:, None] & wrong]
        assert c not in given
        shares = np.array([np.mean(given == o) for o in classes if o != c])
        assert np.all(np.abs(shares - 1 / 3) < 0.03)
    exact = simulate_hybrid.annotate(truth, classes, 2, 0.0, np.random.default_rng(0))
    assert np.array_equal(exact, np.column_stack([truth, truth]))
    text = np.array(["a", "b"])
    flipped = simulate_hybrid.annotate(np.array(["a", "b", "a"]), text, 4, 0.9999999,
                                       np.random.default_rng(0))
    assert np.array_equal(flipped, np.array([["b"] * 4, ["a"] * 4, ["b"] * 4]))


def test_labels_per_source_sum_to_the_spent_budget(result):
    assert result["budget"] == 30 and result["spent"] == 30
    assert sum(result["labels_per_source"].values()) == 30
    assert len(result["rounds"]) == 3
    total = dict.fromkeys(simulate_hybrid.SOURCES, 0)
    for r, entry in enumerate(result["rounds"], start=1):
        assert entry["round"] == r
        assert sum(entry["labels"].values()) == 10
        assert entry["spent"] == 10 * r
        # round(0.1 x 10) = 1 control item per round, drawn at random from the pool.
        assert entry["labels"]["control"] == 1
        for source, n in entry["labels"].items():
            total[source] += n
        assert 0 <= entry["agreement"] <= 1 and 0 <= entry["test_accuracy"] <= 1
        assert entry["expert"] >= 0
    assert total == result["labels_per_source"]
    assert result["control_items"] == 3
    assert result["pool_items"] + result["stream_items"] + result["test_items"] == 1797
    # Every item ends with one label: the 10 seed labels, the 30 spent, the auto-labels.
    assert result["final_labels"] == 10 + 30 + result["auto_labels"]


def test_lift_is_measured_live_and_against_random_selection_on_the_test_set(digits):
    x, y = digits
    run = simulate_hybrid.run(x, y, rounds=6, batch=10, annotators=1, noise=0.0, seed=4,
                              control_share=0.3)
    for entry in run["rounds"]:
        assert 0 <= entry["random_test_accuracy"] <= 1
        assert entry["test_lift"] == pytest.approx(entry["test_accuracy"]
                                                   - entry["random_test_accuracy"])
    assert run["test_lift"] == run["rounds"][-1]["test_lift"]
    # Round 1: both models know the seed set only, so the live lift pairs them at equal
    # labels from the first round on; 3 control items a round are all labeled.
    assert run["lift_rounds"] >= 1 and isinstance(run["lift"], float)
    assert -1 <= run["lift"] <= 1 and run["lift"] == run["rounds"][-1]["lift"]
    assert run["control_items"] == 18 and 0 <= run["counterfactual_accuracy"] <= 1
    summary = simulate_hybrid.table(run)
    assert "lift of active over random selection at equal labels: live " in summary
    assert f"on the test set {run['test_lift']:+.3f}" in summary


def test_expert_resolves_what_annotators_dispute(digits):
    x, y = digits
    # One annotator: nothing to compare, nothing routed; half its labels are wrong.
    alone = simulate_hybrid.run(x, y, rounds=2, batch=10, annotators=1, noise=0.5, seed=2)
    assert all(r["agreement"] is None for r in alone["rounds"])
    assert alone["wrong_labels"] >= 5
    # Three annotators: every disagreement goes to the always-right expert, so a wrong
    # label survives only when all three name the same wrong class.
    crowd = simulate_hybrid.run(x, y, rounds=2, batch=10, annotators=3, noise=0.5, seed=2)
    assert crowd["expert"] >= 10 and crowd["wrong_labels"] <= 2


def test_noiseless_annotators_always_agree(digits):
    x, y = digits
    exact = simulate_hybrid.run(x, y, rounds=2, batch=10, annotators=3, noise=0.0, seed=3)
    # Perfect agreement: nothing for the expert (the router has no expert tier here), and
    # every label is right, auto-labels aside (they are the model's).
    assert [r["agreement"] for r in exact["rounds"]] == [1.0, 1.0]
    assert exact["expert"] == 0
    wrong_auto = round(exact["auto_labels"] * (1 - (exact["auto_label_accuracy"] or 1)))
    assert exact["wrong_labels"] == wrong_auto


def test_files_are_written(result, tmp_path):
    files = simulate_hybrid.write(result, tmp_path / "out", "digits")
    assert [f.name for f in files] == list(simulate_hybrid.FILES)
    back = json.loads((tmp_path / "out" / "hybrid.json").read_text())
    assert back["labels_per_source"] == result["labels_per_source"]
    assert (tmp_path / "out" / "hybrid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tmp_path / "out" / "hybrid_summary.txt").read_text()
    assert "labels spent: 30 of 30" in summary


@pytest.mark.parametrize("options, message", [
    ({"noise": 1.0}, "noise must be"),
    ({"noise": -0.1}, "noise must be"),
    ({"annotators": 0}, "annotators"),
    ({"control_share": 1.0}, "control_share must be"),
    ({"rounds": 0}, "rounds"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(alcore.InvalidInputError, match=message):
        simulate_hybrid.check(**options)


def test_budget_beyond_the_data_is_refused(digits):
    x, y = digits
    with pytest.raises(alcore.InvalidInputError, match="budget=5000 labels after 10 first "
                                                       "labels need more items"):
        simulate_hybrid.run(x[:200], y[:200], budget=5000)


def test_command_line(tmp_path, capsys):
    out = tmp_path / "hyb"
    code, stdout, err = run_cli(["simulate", "--hybrid", "--rounds", "2", "--batch", "10",
                                 "--annotators", "2", "--noise", "0.2", "--out", out], capsys)
    assert code == 0, err
    assert "labels spent: 20 of 20" in stdout and "wrote " in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(simulate_hybrid.FILES)
    data = json.loads((out / "hybrid.json").read_text())
    assert data["annotators"] == 2 and data["noise"] == 0.2
    code, _, err = run_cli(["simulate", "--hybrid", "--rounds", "2", "--out", out], capsys)
    assert code == 2 and "exists; pass --overwrite to replace its files" in err
    code, _, err = run_cli(["simulate", "--noise", "0.1", "--out", tmp_path / "x"], capsys)
    assert code == 2 and "--noise applies to --hybrid only" in err
    code, _, err = run_cli(["simulate", "--hybrid", "--strategies", "margin", "--out",
                            tmp_path / "y"], capsys)
    assert code == 2 and "--strategies does not apply to --hybrid" in err
    code, _, err = run_cli(["simulate", "--hybrid", "--noise", "1.5", "--out",
                            tmp_path / "z"], capsys)
    assert code == 2 and "--noise must be < 1, got 1.5" in err and "e.g. --noise 0.1" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()
