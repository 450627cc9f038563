"""`python -m sweep ...` is the `sweep` command."""

import sys

from .cli import main

sys.exit(main())
