"""``python -m rtbcore.cli``: the same as the ``rtbcore`` command."""

import sys

from rtbcore.cli import main

sys.exit(main())
