"""``python -m alcore``: the same command line as the ``alcore`` script, for environments
where the script's folder is not on PATH (a venv not activated, ``pip install --user``)."""

import sys

from alcore.cli import main

sys.exit(main())
