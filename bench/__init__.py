"""cloudsync benchmarks: run with `bash scripts/bench` (see docs/benchmarks.md)."""
