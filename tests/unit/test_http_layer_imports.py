"""One HTTP path: which modules may import the HTTP libraries and the HTTP layer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cloudsync"


def imports(path: Path) -> set[str]:
    """The modules `path` imports (absolute, or relative as written with its dots)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" if node.module else f"{base}{alias.name}" for alias in node.names)
    return names


def modules() -> dict[str, set[str]]:
    return {str(path.relative_to(PACKAGE)): imports(path) for path in PACKAGE.rglob("*.py")}


def test_requests_and_urllib3_only_in_the_http_layer() -> None:
    """Only cloudsync/_http/ imports requests or urllib3."""
    offenders = {
        name for name, found in modules().items()
        if not name.startswith("_http/") and any(m.split(".")[0] in ("requests", "urllib3") for m in found)
    }
    assert offenders == set()


def test_websocket_client_only_in_the_websocket_transport() -> None:
    """websocket-client is imported (and its errors translated) by the WebSocket transport alone."""
    offenders = {name for name, found in modules().items() if name != "transports/websocket.py" and "websocket" in found}
    assert offenders == set()


def test_transports_and_the_reader_use_no_private_helper_of_the_http_layer() -> None:
    """Transports, the subscription, its reader and the checkpoints import from the HTTP
    layer at most its feed module's public names (caused_by lives in errors.py)."""
    for name, found in modules().items():
        if not (name.startswith("transports/") or name in ("_reader.py", "subscription.py", "checkpoint.py")):
            continue
        layer = ".._http" if name.startswith("transports/") else "._http"
        for module in (m for m in found if m == layer or m.startswith((layer + ".", "cloudsync._http"))):
            rest = module.split("_http", 1)[1]  # ".feeds", ".feeds.on_request_sent", ".HTTP", ""
            public_feeds = rest == ".feeds" or (rest.startswith(".feeds.") and not rest.rsplit(".", 1)[1].startswith("_"))
            assert public_feeds, (name, module)
