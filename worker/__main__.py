"""``python -m worker TASK``: the image's entrypoint."""

import sys

from worker.router import main

sys.exit(main())
