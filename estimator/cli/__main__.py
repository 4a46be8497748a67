"""``python -m estimator.cli``: the same as the ``estimate`` command."""

import sys

from estimator.cli.main import main

sys.exit(main())
