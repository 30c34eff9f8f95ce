"""Selection over partitioned pools on Dask (dask.distributed): each partition is scored
where it lives, with the native kernels, and only its best candidates travel.

* :func:`select`: the top k by an uncertainty score (or a custom utility), optionally
  weighted by a k-NN density against a sample index shipped to the workers, and
  optionally followed by a diversity stage on the merged candidates, from Parquet (or
  other pool) files, a Dask array of probabilities or a Dask dataframe.
* :class:`DistributedSelection`: an :class:`alcore.Selection` of global row numbers, with
  the items' ids and whether the merge was exact.

Built on the engine, which never imports it; ``import alcore.distributed`` does not import
Dask (each call does). Needs the ``distributed`` extra: ``pip install 'alcore[distributed]'``.
"""

from alcore import _validation as _v
from alcore.distributed._select import DistributedSelection, select

__all__ = ["DistributedSelection", "select"]

_v.guard_signatures(globals())
