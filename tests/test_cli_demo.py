"""`alcore demo`: what its tables say, where it writes, and its --out check."""

from __future__ import annotations

import pytest

from alcore import demo
from alcore.cli import main


def test_bald_row_names_its_real_size():
    lines = []
    demo.run(n=20_000, classes=5, k=50, repeats=1, out=lines.append)
    bald = next(line for line in lines if line.startswith("bald"))
    assert bald.endswith("(20 samples x 20,000 items x 5 classes)")
    assert "100k" not in bald


def test_simulation_says_where_what_default_is_and_what_the_bands_are(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    lines = []
    results = demo.simulation_tour(out_dir=str(tmp_path / "tour"), seeds=3, out=lines.append)
    text = "\n".join(lines)
    assert f"writing curves.json, summary.txt and learning_curves.png to {tmp_path / 'tour'}/" \
        in text
    assert "default = alcore.select(probs, k, embeddings=x): margin, then k-center" in text
    assert "bands are ±1 standard deviation over seeds" in text
    assert "3 seeds" in text and "95% CI" in text
    assert "AULC difference from the best" in text
    verdicts = [line for line in lines if "not distinguishable" in line or "is better" in line]
    assert len(verdicts) == len(results["strategies"]) - 1
    assert (tmp_path / "tour" / "learning_curves.png").exists()


def test_out_folder_is_checked_before_the_tour(tmp_path, capsys):
    code = main(["demo", "--items", "1000", "-k", "10", "--out", str(tmp_path / "a" / "b")])
    assert code == 2
    err = capsys.readouterr().err
    assert "the folder" in err and "does not exist; create it first" in err
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--items", "1000", "-k", "10", "--out", str(tmp_path / "file")]) == 2
    assert "is a file; name a folder" in capsys.readouterr().err
