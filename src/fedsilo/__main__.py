"""``python -m fedsilo``: the same command line as the ``fedsilo`` script."""

import sys

from fedsilo.cli import main

sys.exit(main())
