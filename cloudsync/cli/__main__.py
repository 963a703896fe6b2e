"""`python -m cloudsync.cli ...`: the same as `python -m cloudsync ...`."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
