"""The hybrid active-learning loop: one labelling queue over pool, stream and synthesis
sources under one label budget, recorded in a durable SQLite ledger.

Import it as ``import alcore.workflow`` (``import alcore`` does not load it; the engine
never imports it).

* :class:`Workflow` runs the loop: ``next_batch()`` selects and queues, ``submit_labels()``
  stores labels and calls the model-update callback, ``status()`` reports; a crash loses
  nothing (:meth:`Workflow.resume`).
* :class:`PoolSource`, :class:`StreamSource`, :class:`SynthesisSource` propose items.
* :class:`Ledger` is the SQLite file every event is written to (:class:`LedgerError` when
  it cannot be used).
* :func:`serve` puts a ledger behind the Label Studio ML backend protocol (``alcore serve
  LEDGER``): predictions from the ledger, labels back through Label Studio's webhook.
* :func:`to_label_studio_tasks` turns queued items into Label Studio tasks with the model's
  label as a prediction; :func:`read_label_studio_export` reads Label Studio's JSON export
  into label records (:class:`LabelStudioExport`: agreement, items to route to the expert).
"""

from alcore.workflow._labelstudio import (
    LabelStudioExport,
    read_label_studio_export,
    to_label_studio_tasks,
)
from alcore.workflow._ledger import Ledger, LedgerError
from alcore.workflow._serve import LedgerServer, serve
from alcore.workflow._sources import PoolSource, StreamSource, SynthesisSource
from alcore.workflow._workflow import Workflow

__all__ = ["LabelStudioExport", "Ledger", "LedgerError", "LedgerServer", "PoolSource",
           "StreamSource", "SynthesisSource", "Workflow", "read_label_studio_export", "serve",
           "to_label_studio_tasks"]
