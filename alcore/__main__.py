"""``python -m alcore``: the same command line as the ``alcore`` script, for environments
where the script's folder is not on PATH (a venv not activated, ``pip install --user``)."""

import sys

from alcore.cli import main

if __name__ == "__main__":  # importing the module (pydoc, autodoc) must not run the CLI
    sys.exit(main())
