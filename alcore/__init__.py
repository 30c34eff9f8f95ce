"""alcore: a native-accelerated active-learning selection engine.

Training code hands alcore what its model computed for the unlabeled items (probabilities
or logits, Monte-Carlo / ensemble samples, embeddings) and alcore picks the items a human
should label next. See :mod:`alcore.scores` for the uncertainty scores, :func:`select_top`
for the fused score + top-k selection, :mod:`alcore.diversity` for diversity-aware batches,
:func:`select` for the composed selection with per-item reasons, :mod:`alcore.synthesis`
for synthetic queries where real data is scarce and :mod:`alcore.monitor` for audits of
what was selected and of how annotators agree.

Every function follows one convention: model outputs or embeddings first, then ``k``, then
keyword-only options; logits are the same array with ``logits=True``; ``labeled=`` and
``exclude=`` wherever items are picked; picks come back as int64 index arrays.

Heavy optional dependencies (faiss, numba, polars, dask, matplotlib) are imported lazily,
where first needed, so ``import alcore`` stays fast.
"""


def _missing_core(error: ImportError) -> ImportError:
    """The error to raise when the compiled core cannot be imported, saying why and what
    to do: the usual cause is running Python from a source checkout, whose ``alcore/``
    folder (without the compiled extension) comes before the installed package."""
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    if any(here.glob("_core*.so")) or any(here.glob("_core*.pyd")):
        return error  # the extension is there but broken: its own message says why
    installed = []
    for entry in sys.path:
        candidate = Path(entry or ".").resolve() / "alcore"
        if candidate != here and (candidate / "__init__.py").is_file():
            installed.append(str(candidate))
    shadowed = (f"and shadows the installed package at {installed[0]} "
                if installed else "and shadows any installed alcore ")
    return ImportError(
        f"alcore's compiled core (alcore._core) is missing: the source checkout at "
        f"{here.parent} has no compiled alcore._core {shadowed}(Python imports the alcore/ "
        f"folder of the current directory first). Run Python from another directory, or "
        f"build this checkout for development with `pip install -e .`"
    )


try:
    from alcore import _core  # noqa: F401  (first, so a missing core is named as such)
except ImportError as _error:
    raise _missing_core(_error) from _error

from alcore import (  # noqa: E402
    density,
    diversity,
    io,
    model_change,
    scores,
    stopping,
    stream,
    stream_density,
)
from alcore._errors import AlcoreError, InvalidInputError  # noqa: E402
from alcore._pipeline import Selection, select  # noqa: E402
from alcore._threads import get_num_threads, set_num_threads  # noqa: E402
from alcore._top import select_top, top_k  # noqa: E402
from alcore._utility import Utility, utility  # noqa: E402
from alcore._version import __version__  # noqa: E402
from alcore._warmup import warmup  # noqa: E402
from alcore.batching import BatchSizer  # noqa: E402

# Built on the engine and imported on first use (alcore.monitor, alcore.synthesis work
# after `import alcore` as the other modules do), so that `import alcore` does not pay for
# them: the engine itself never imports them.
_LAYERS = ("monitor", "synthesis")


def __getattr__(name: str):
    if name in _LAYERS:
        import importlib

        return importlib.import_module(f"alcore.{name}")
    raise AttributeError(f"module 'alcore' has no attribute {name!r}")


__all__ = [
    "AlcoreError",
    "BatchSizer",
    "InvalidInputError",
    "Selection",
    "Utility",
    "__version__",
    "density",
    "diversity",
    "get_num_threads",
    "io",
    "model_change",
    "monitor",
    "scores",
    "select",
    "select_top",
    "set_num_threads",
    "stopping",
    "stream",
    "stream_density",
    "synthesis",
    "top_k",
    "utility",
    "warmup",
]
