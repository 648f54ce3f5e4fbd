"""`python -m lib.recall`: the harness's command line (lib/recall/cli.py)."""

import sys

from lib.recall.cli import main

sys.exit(main())
