"""``python -m hala`` runs the ``hala`` command."""

import sys

from hala.cli import main

sys.exit(main())
