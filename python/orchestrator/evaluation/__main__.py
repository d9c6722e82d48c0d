"""``python -m orchestrator.evaluation``: the ``orchestrator eval`` command."""

import sys

from orchestrator.evaluation.command import main

sys.exit(main())
