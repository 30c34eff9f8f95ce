"""The README's examples run, in order, in one namespace, so the README cannot drift from
the code; its figures that name a constant of the code agree with it."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import pytest

import alcore

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown text with the line number of their first line."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


class _Runner:
    """Runs the blocks in order, each once; a block runs only after every earlier one."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.namespace: dict = {"__name__": "readme"}
        self.done = 0
        self.failed: tuple[int, BaseException] | None = None

    def run_through(self, i: int) -> None:
        while self.done <= i:
            if self.failed is not None:
                line, err = self.failed
                pytest.fail(f"an earlier README block (line {line}) failed: "
                            f"{type(err).__name__}: {err}")
            line, source = BLOCKS[self.done]
            # Pad with blank lines so tracebacks give the README's own line numbers.
            code = compile("\n" * (line - 1) + source, str(README), "exec")
            cwd = os.getcwd()
            os.chdir(self.workdir)  # blocks may write files (pool.parquet)
            try:
                exec(code, self.namespace)
            except BaseException as err:
                self.failed = (line, err)
                raise
            finally:
                os.chdir(cwd)
            self.done += 1


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return _Runner(tmp_path_factory.mktemp("readme"))


def test_readme_has_examples():
    assert len(BLOCKS) >= 5
    # The first block sets up the data every later block uses.
    assert "probs =" in BLOCKS[0][1] and "emb =" in BLOCKS[0][1]


@pytest.mark.parametrize("i", range(len(BLOCKS)), ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_block_runs(runner, i):
    runner.run_through(i)


def test_the_runner_reports_a_failing_block(tmp_path):
    # The runner must be able to fail: a block raising makes its test and the later ones fail.
    runner = _Runner(tmp_path)
    saved = list(BLOCKS)
    BLOCKS[:] = [(1, "x = 1\n"), (3, "raise RuntimeError('boom')\n"), (5, "y = x\n")]
    try:
        runner.run_through(0)
        assert runner.namespace["x"] == 1
        with pytest.raises(RuntimeError, match="boom"):
            runner.run_through(1)
        with pytest.raises(pytest.fail.Exception, match=r"line 3\) failed: RuntimeError"):
            runner.run_through(2)
    finally:
        BLOCKS[:] = saved


def test_python_blocks_are_found_with_their_lines():
    text = "intro\n```python\na = 1\n```\n```bash\nls\n```\n\n```python\nb = 2\nc = 3\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n"), (10, "b = 2\nc = 3\n")]


def test_first_two_commands_are_unchanged():
    # CI (.ci/run) runs the second command; both must stay exactly as they are.
    text = README.read_text(encoding="utf-8")
    bash = re.findall(r"^```bash\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert bash[:2] == [
        'python3 -m venv .venv && .venv/bin/pip install ".[full]" && .venv/bin/alcore demo\n',
        'python3 -m venv .venv && .venv/bin/pip install --quiet '
        '".[test,labelstudio,distributed]" && '
        ".venv/bin/ruff check . && .venv/bin/pytest --benchmark-disable\n",
    ]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert bash[1] in ci


def test_readme_claims_match_the_code():
    from alcore import _faiss, density

    text = README.read_text(encoding="utf-8")
    # The migration table names the old API on purpose; every other line must not.
    table = re.search(r"^\| before \| after \|\n(?:^\|.*\n)+", text, re.MULTILINE)
    assert table is not None
    text = " ".join((text[:table.start()] + text[table.end():]).split())
    # knn_density: exact brute force up to APPROXIMATE_MIN_ITEMS, then the IVF self-join;
    # exact=True: brute force up to EXACT_MAX_ITEMS, then the pruned self-join.
    assert "IVF-SQ8" not in text
    assert _faiss.APPROXIMATE_MIN_ITEMS == 20_000 and _faiss.EXACT_MAX_ITEMS == 100_000
    assert "exact FAISS brute force up to 20 000 items" in text
    assert "brute force up to 100 000 items" in text
    assert _faiss.choose_index(20_000, None).exact
    assert _faiss.choose_index(20_001, None).kind == "ivf"
    assert _faiss.choose_index(100_001, True).kind == "clustered"
    assert "exact" in density.knn_density.__doc__
    # TypiClust's cluster cap and the row-sum tolerance, as the README states them.
    assert "`max_clusters=500`" in text
    assert inspect.signature(alcore.diversity.typiclust).parameters["max_clusters"].default == 500
    assert "(atol 1e-3)" in text
    assert inspect.signature(alcore.select_top).parameters["atol"].default == 1e-3
    # Where the demo writes, as its --out default says (issue 8, defect 21).
    from alcore.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    demo_out = commands.choices["demo"].get_default("out")
    assert f"into `{demo_out}/`" in text
    assert "`curves.json`, `summary.txt` and `learning_curves.png`" in text
    # Removed API must not be advertised.
    for stale in ("return_scores", "TopSelection", "select_top(1000,", "select(1000,",
                  "logits=raw_outputs", ".indices, batch"):
        assert stale not in text, stale
