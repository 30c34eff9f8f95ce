"""alcore simulate --experiment minority: the cut, the recall table, the files, bad flags."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import run

from alcore import InvalidInputError, simulate, simulate_synthesis

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def test_the_minority_class_really_is_cut_to_its_share():
    y = np.repeat(np.arange(5), [100, 90, 80, 70, 60])
    rng = np.random.default_rng(0)
    rows = simulate_synthesis.imbalanced_rows(y, 2, 0.02, rng)
    kept = y[rows]
    others = int(np.count_nonzero(y != 2))
    assert np.count_nonzero(kept == 2) == round(0.02 * others / 0.98) == 7
    assert np.count_nonzero(kept == 2) / len(kept) == pytest.approx(0.02, abs=0.002)
    for cls in (0, 1, 3, 4):  # the other classes keep every item
        assert np.count_nonzero(kept == cls) == np.count_nonzero(y == cls)
    assert len(np.unique(rows)) == len(rows) and (np.diff(rows) > 0).all()
    other = simulate_synthesis.imbalanced_rows(y, 2, 0.02, np.random.default_rng(1))
    assert not np.array_equal(rows, other)  # which rare items stay follows the seed
    with pytest.raises(InvalidInputError, match=r"^minority_share=0.001 leaves 0 items of "
                                                r"class 2 in a pool of 320; the experiment "
                                                r"needs at least 3"):
        simulate_synthesis.imbalanced_rows(y, 2, 0.001, rng)
    with pytest.raises(InvalidInputError, match=r"^minority_share=0.4 needs 213 items of "
                                                r"class 2 in the pool, but it holds 80"):
        simulate_synthesis.imbalanced_rows(y, 2, 0.4, rng)


def test_default_rare_class_is_the_least_frequent():
    _, y = simulate.load_dataset("digits")
    assert simulate_synthesis.rare_class(y) == 8
    assert simulate_synthesis.rare_class(y, "3") == 3
    with pytest.raises(InvalidInputError, match=r"^minority_class=12 is not a class of the "
                                                r"dataset; its classes are 0, 1, 2"):
        simulate_synthesis.rare_class(y, "12")


def test_recall_tables_and_pool_share():
    x, y = simulate.load_dataset("digits")
    results = simulate_synthesis.run(x, y, rounds=3, batch=8, seeds=2)
    assert results["labels"] == [10, 18, 26] and results["minority_class"] == 8
    assert results["pool_share"] == pytest.approx(0.02, abs=0.001)
    assert results["synthetic_per_round"] == 4
    assert set(results["arms"]) == set(simulate_synthesis.ARMS)
    for name, entry in results["arms"].items():
        recall = np.array(entry["recall"])
        assert recall.shape == (2, 3) and ((0 <= recall) & (recall <= 1)).all()
        np.testing.assert_allclose(entry["recall_mean"], recall.mean(axis=0))
        assert entry["recall_area"] == pytest.approx(recall.mean())
        labeled = np.array(entry["minority_labeled"])
        assert labeled.shape == (2, 3) and (labeled[:, 0] == 2).all()  # 2 first rare labels
        assert (np.diff(labeled, axis=1) >= 0).all()
        if name != "margin":
            syn = entry["synthesis"]
            assert syn["kept"] <= syn["generated"] and syn["mapped"] <= 2 * 2 * 4
            assert syn["mapped_minority"] <= syn["mapped"]
            assert "difference" in entry["vs_margin"]
    # Every arm starts from the same first labels and model: the first round is paired.
    first = {name: tuple(np.array(e["recall"])[:, 0]) for name, e in results["arms"].items()}
    assert len(set(first.values())) == 1
    json.dumps(results, allow_nan=False)


def test_every_arm_spends_the_same_labels(monkeypatch):
    spent = []
    original = simulate.STRATEGIES["margin"]

    def counting(probs, features, labeled, batch, seed):
        picks = original(probs, features, labeled, batch, seed)
        spent.append(int(labeled.sum()) + len(picks))
        return picks

    monkeypatch.setitem(simulate.STRATEGIES, "margin", counting)
    x, y = simulate.load_dataset("digits")
    simulate_synthesis.run(x, y, rounds=3, batch=6, seeds=1, arms=("margin",
                                                                  "margin+minority"))
    # labels after the picks of rounds 1 and 2, for each arm: 10 + 6, 10 + 12
    assert spent == [16, 22, 16, 22]


def test_cli_writes_the_files(tmp_path, capsys):
    out = tmp_path / "minority"
    code, printed, err = run(["simulate", "--experiment", "minority", "--dataset", "digits",
                              "--minority-class", "8", "--minority-share", "0.02",
                              "--rounds", "3", "--batch", "6", "--seeds", "2", "--variant",
                              "borderline", "--out", out], capsys)
    assert code == 0, err
    results = json.loads((out / "minority_recall.json").read_text())
    assert results["variant"] == "borderline" and results["seeds"] == 2
    assert np.array(results["arms"]["margin+minority"]["recall"]).shape == (2, 3)
    assert (out / "minority_recall.png").stat().st_size > 10_000
    summary = (out / "minority_summary.txt").read_text()
    assert summary.startswith("class 8 cut to 2.0% of the pool")
    assert "recall area vs margin" in summary and "kept by validate" in summary
    assert "margin+boundary" in printed and "wrote " in printed
    code, _, err = run(["simulate", "--experiment", "minority", "--out", out], capsys)
    assert code == 2
    assert err.strip() == (f"alcore: error: {out} exists; pass --overwrite to replace its "
                           f"files (minority_recall.json, minority_summary.txt, "
                           f"minority_recall.png)")


@pytest.mark.parametrize("flags, message", [
    (["--minority-share", "0.7"],
     "alcore: error: --minority-share must be < 0.5, got 0.7; pass a share of the pool in "
     "(0, 0.5), e.g. 0.02"),
    (["--minority-share", "0"],
     "alcore: error: --minority-share must be > 0, got 0.0; pass a share of the pool in "
     "(0, 0.5), e.g. 0.02"),
    (["--minority-class", "12"],
     "alcore: error: --minority-class 12 is not a class of the dataset; its classes are 0, "
     "1, 2, 3, 4, 5, 6, 7, 8, 9"),
    (["--variant", "adasyn"],
     "alcore: error: --variant must be one of 'smote', 'borderline', got 'adasyn'"),
    (["--strategies", "random"],
     "alcore: error: --strategies does not apply to --experiment minority; leave it out"),
    (["--minority-share", "0.001"],
     "alcore: error: --minority-share 0.001 leaves 1 items of class 8 in a pool of 1136; "
     "the experiment needs at least 3 (2 first labels and one to find): raise "
     "--minority-share"),
])
def test_wrong_flag_values_exit_2_with_one_line(tmp_path, capsys, flags, message):
    out = tmp_path / "s"
    code, _, err = run(["simulate", "--experiment", "minority", "--rounds", "2", "--seeds",
                        "1", *flags, "--out", out], capsys)
    assert code == 2
    assert err.strip() == message
    assert not out.exists()


def test_minority_flags_do_not_apply_to_learning_curves(tmp_path, capsys):
    code, _, err = run(["simulate", "--dataset", "wine", "--minority-share", "0.1",
                        "--variant", "smote", "--out", tmp_path / "s"], capsys)
    assert code == 2
    assert err.strip() == ("alcore: error: --minority-share, --variant do not apply to "
                           "--experiment learning-curves; leave them out")
