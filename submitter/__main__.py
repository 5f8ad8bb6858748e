"""``python -m submitter``: the same as ``catalog-submit``."""

import sys

from submitter.cli import main

sys.exit(main())
