"""examples/stream_to_db.py, run for real: a WebSocket event source, a writer into the
embedded server, and a subscription that sees every event arrive."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stream_to_db.py"


def test_the_stream_example_stores_every_event_and_the_subscription_sees_them(capsys):
    """Every event the source sends is stored once and shown by the subscription."""
    pytest.importorskip("aiohttp")
    spec = importlib.util.spec_from_file_location("stream_to_db_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.run(300, timeout=30) == 300
    out = capsys.readouterr().out
    assert "writer: 300 written" in out and "subscription saw 300 of 300" in out
