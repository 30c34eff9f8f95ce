"""The hybrid active-learning loop (``import alcore.workflow``; ``import alcore`` does not
load it, and the engine never imports it).

* :func:`serve` puts a ledger behind the Label Studio ML backend protocol (``alcore serve
  LEDGER``): predictions from the ledger, labels back through Label Studio's webhook.
"""

from alcore.workflow._ledger import Ledger, LedgerError
from alcore.workflow._serve import LedgerServer, serve

__all__ = ["Ledger", "LedgerError", "LedgerServer", "serve"]
