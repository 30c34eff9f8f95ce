"""Monitoring what active learning selects and how annotators agree.

* :class:`PoolSketch` summarises a pool once, in bounded memory; ``sketch.audit(selected)``
  gives an :class:`AuditReport` of effect sizes (PSI, KS, RFF-MMD, cluster coverage and
  TVD, predicted-class TVD, k-center radius), each with a threshold and a warning.
* :func:`agreement` measures annotator agreement (Cohen's, Fleiss' kappa, Krippendorff's
  alpha, per-item agreement) on an items x annotators table or (item, annotator, label)
  triples.
* :class:`HoldoutCurve` follows a model's accuracy on a fixed, representative held-out set
  round after round and warns when it diverges from the accuracy on the selected data.

Built on the engine; the engine does not import it. Heavy dependencies (numba, faiss,
polars, matplotlib) are imported where first needed.
"""

from alcore.monitor._agreement import AgreementReport, agreement
from alcore.monitor._holdout import HoldoutCurve, HoldoutPoint, holdout_curve
from alcore.monitor._report import DEFAULT_THRESHOLDS, AuditReport
from alcore.monitor._sketch import PoolSketch

__all__ = ["DEFAULT_THRESHOLDS", "AgreementReport", "AuditReport", "HoldoutCurve",
           "HoldoutPoint", "PoolSketch", "agreement", "holdout_curve"]
