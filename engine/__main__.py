"""``python -m engine`` is ``radbridge``."""

import sys

from engine.cli import main

sys.exit(main())
