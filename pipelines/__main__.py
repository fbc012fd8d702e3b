"""``python -m hala_pipelines`` runs the ``hala`` command."""

import sys

from hala_pipelines.cli import main

sys.exit(main())
