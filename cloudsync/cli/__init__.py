"""The `cloudsync` command line: [main][cloudsync.cli.main.main] parses the command and hands
it to its module, one module per command (`serve`, `watch`, `find`, `load`,
`backup`, `restore`, `replicate`)."""

from .main import main

__all__ = ["main"]
