"""Monitoring what active learning selects and how annotators agree.

:func:`agreement` measures annotator agreement (Cohen's, Fleiss' kappa, Krippendorff's
alpha, per-item agreement); :class:`HoldoutCurve` follows a model's accuracy on a fixed,
representative held-out set round after round and warns when it diverges from the accuracy
on the selected data.
"""

from alcore.monitor.agreement import AgreementReport, agreement
from alcore.monitor.holdout import HoldoutCurve, HoldoutPoint, holdout_curve

__all__ = ["AgreementReport", "HoldoutCurve", "HoldoutPoint", "agreement", "holdout_curve"]
