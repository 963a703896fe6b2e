"""The command's exit statuses."""

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by SIGINT
EXIT_BROKEN_PIPE = 141  # ... and one ended by SIGPIPE (`cloudsync find ... | head`)
