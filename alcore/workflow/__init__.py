"""The hybrid active-learning loop: one labelling queue over pool, stream and synthesis
sources, a durable SQLite ledger, and a Label Studio round trip.

Built on the engine; the engine does not import it, nor does ``import alcore``.
"""

from alcore.workflow._labelstudio import (
    LabelStudioExport,
    read_label_studio_export,
    to_label_studio_tasks,
)

__all__ = ["LabelStudioExport", "read_label_studio_export", "to_label_studio_tasks"]
