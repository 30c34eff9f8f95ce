"""Monitoring what active learning selects: distribution audits of a selection against its
pool (:class:`PoolSketch`, :class:`AuditReport`).

Built on the engine; the engine does not import it, and ``import alcore`` does not import
it either (``import alcore.monitor``). Heavy dependencies (numba, faiss, polars,
matplotlib) are imported where first needed.
"""

from alcore.monitor.report import DEFAULT_THRESHOLDS, AuditReport
from alcore.monitor.sketch import PoolSketch

# agreement and holdout_curve (alcore/monitor/agreement.py, alcore/monitor/holdout.py) are
# imported here by their helper's branch.

__all__ = ["DEFAULT_THRESHOLDS", "AuditReport", "PoolSketch"]
