"""Allows ``python -m flashmm.cli``."""

import sys

from flashmm.cli.main import main

sys.exit(main())
