"""`python -m cloudsync ...`: the same as the `cloudsync` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
