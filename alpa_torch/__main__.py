"""``python -m alpa_torch``: the ``alpa-torch`` command line (see cli.py)."""
import sys

from alpa_torch.cli import main

if __name__ == "__main__":
    sys.exit(main())
