"""alcore: a native-accelerated active-learning selection engine.

Training code hands alcore what its model computed for the unlabeled items (probabilities
or logits, Monte-Carlo / ensemble samples) and alcore picks the items a human should label
next. See :mod:`alcore.scores` for the uncertainty scores and :func:`select_top` for the
fused score + top-k selection, :mod:`alcore.diversity` for diversity-aware batches.

Heavy optional dependencies (faiss, numba, polars, dask, matplotlib) are imported lazily,
where first needed, so ``import alcore`` stays fast.
"""

from alcore import density, diversity, scores, stopping, stream
from alcore._errors import AlcoreError, InvalidInputError
from alcore._threads import get_num_threads, set_num_threads
from alcore._version import __version__
from alcore._warmup import warmup
from alcore.batching import BatchSizer
from alcore.select import Selection, select
from alcore.selection import TopSelection, select_top, top_k

__all__ = [
    "AlcoreError",
    "BatchSizer",
    "InvalidInputError",
    "Selection",
    "TopSelection",
    "__version__",
    "density",
    "diversity",
    "get_num_threads",
    "scores",
    "select",
    "select_top",
    "set_num_threads",
    "stopping",
    "stream",
    "top_k",
    "warmup",
]
