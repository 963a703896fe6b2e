"""The import rules of docs/architecture.md, checked on the source (no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cloudsync"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _from_imports(path: Path) -> list[tuple[str, str, int]]:
    """Every `from X import name` of `path` as `(absolute X, name, line)`."""
    name = _module_name(path)
    package = (name if path.name == "__init__.py" else name.rpartition(".")[0]).split(".")
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [(module, alias.name, node.lineno) for alias in node.names]
    return found


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every module `path` imports, absolute, with its line: `from .a import b` counts
    as `cloudsync.x.a.b` when `b` is a module, else as `cloudsync.x.a`."""
    found = [(alias.name, node.lineno) for node in ast.walk(ast.parse(path.read_text(), str(path)))
             if isinstance(node, ast.Import) for alias in node.names]
    for module, name, line in _from_imports(path):
        full = f"{module}.{name}"
        found.append((full if _is_module(full) else module, line))
    return found


def _private_names(path: Path) -> list[tuple[str, int]]:
    """Private names (not modules) imported from another cloudsync module."""
    return [
        (f"{module}.{name}", line)
        for module, name, line in _from_imports(path)
        if _within(module, "cloudsync") and name.startswith("_") and not name.startswith("__")
        and not _is_module(f"{module}.{name}")
    ]


SOURCES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {_module_name(p): _imports(p) for p in SOURCES}


def _within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(importers: tuple[str, ...], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{mod}:{line} imports {target}"
        for mod, targets in GRAPH.items()
        if _within(mod, *importers) and not _within(mod, *allowed)
        for target, line in targets
        if _within(target, *forbidden)
    ]


CLIENT_HTTP = ("cloudsync._http",)
SUBSCRIPTION = ("cloudsync.subscription", "cloudsync._reader", "cloudsync._ledger", "cloudsync._dedupe",
                "cloudsync._delivery", "cloudsync._watchdog")
CLIENT_TOP = ("cloudsync.client", "cloudsync.database", "cloudsync.checkpoint")
SERVER = ("cloudsync.server",)


def test_only_the_http_layer_imports_requests_and_urllib3() -> None:
    """`requests` and `urllib3` are imported by the HTTP layer alone."""
    assert _violations(("cloudsync",), ("requests", "urllib3"), allowed=CLIENT_HTTP) == []


def test_only_the_websocket_transport_imports_websocket_client() -> None:
    """websocket-client is imported by the WebSocket transport alone."""
    assert _violations(("cloudsync",), ("websocket",), allowed=("cloudsync.transports.websocket",)) == []


def test_the_subscription_and_checkpoints_never_import_the_http_layer() -> None:
    """The subscription reaches the server only through its transport and its database."""
    assert _violations((*SUBSCRIPTION, "cloudsync.checkpoint"), CLIENT_HTTP) == []


def test_transports_use_only_the_http_layers_feed_module() -> None:
    """A transport opens feeds through `cloudsync._http.feeds` (by way of its `FeedConnection`),
    never through the document client's `HTTP`."""
    assert _violations(("cloudsync.transports",), CLIENT_HTTP, allowed=()) == [
        v for v in _violations(("cloudsync.transports",), CLIENT_HTTP) if v.endswith(("cloudsync._http.feeds",))
    ]


def test_wire_parsers_do_no_io() -> None:
    """The wire parsers import only models, errors and JSON: no HTTP, no sockets, no transports."""
    forbidden = ("socket", "ssl", "threading", "requests", "urllib3", "websocket", "cloudsync._http",
                 "cloudsync.transports", *SUBSCRIPTION, *CLIENT_TOP, *SERVER)
    assert _violations(("cloudsync.wire",), forbidden) == []


def test_transports_never_import_the_subscription_or_the_client() -> None:
    """A transport knows the contract, not who drives it."""
    assert _violations(("cloudsync.transports",), (*SUBSCRIPTION, *CLIENT_TOP)) == []


def test_the_subscription_never_imports_a_concrete_transport() -> None:
    """The subscription drives any transport through the contract in transports.base."""
    concrete = ("cloudsync.transports.longpoll", "cloudsync.transports.continuous", "cloudsync.transports.sse",
                "cloudsync.transports.websocket", "cloudsync.transports.mock")
    assert _violations(SUBSCRIPTION, concrete) == []


def test_the_server_never_imports_client_code() -> None:
    """The embedded server shares only errors, JSON and the selector matcher with the client."""
    client = ("cloudsync._http", "cloudsync.transports", *SUBSCRIPTION, *CLIENT_TOP, "cloudsync.auth",
              "cloudsync.wire", "cloudsync._retry", "cloudsync._paging")
    assert _violations(SERVER, client) == []


def test_the_client_never_imports_the_server() -> None:
    """Nothing outside the server package (and the CLI's `serve`) imports it or aiohttp."""
    assert _violations(("cloudsync",), (*SERVER, "aiohttp"), allowed=(*SERVER, "cloudsync.cli")) == []


def test_the_selector_matcher_is_stdlib_only() -> None:
    """`cloudsync.selector` runs in the client without the server's dependencies."""
    imported = {t for t, _ in GRAPH["cloudsync.selector"] if t.startswith("cloudsync") or "." not in t}
    assert {t for t in imported if _within(t, "cloudsync") and not _within(t, "cloudsync.errors", "cloudsync._json")} == set()
    assert not _violations(("cloudsync.selector",), ("aiohttp", *SERVER))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    """Private helpers stay in their module: what others need is public."""
    assert _private_names(path) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_reaches_into_another_objects_http(path: Path) -> None:
    """Only an object itself touches its `_http` attribute (`self._http`, or `other._http` when
    it compares itself with another of its class)."""
    reaches = [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "_http"
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "other"))
    ]
    assert reaches == []


def _private_module_owner(module: str) -> str | None:
    """The package a private module belongs to (`cloudsync.transports` for
    `cloudsync.transports._httpfeed`), or `None` for a module with no private part."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:index])
    return None


def test_a_private_module_is_imported_only_within_its_package() -> None:
    """A module whose name starts with an underscore serves its own package: `cloudsync._reader`
    any of `cloudsync`, `cloudsync.transports._httpfeed` only the transports."""
    assert [
        f"{mod}:{line} imports {target}"
        for mod, targets in GRAPH.items()
        for target, line in targets
        if _within(target, "cloudsync") and (owner := _private_module_owner(target)) is not None
        and not _within(mod, owner)
    ] == []


def _module_aliases(path: Path) -> set[str]:
    """The names `path` binds to cloudsync modules (`from .. import _json`, `import cloudsync.x as y`)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.asname for alias in node.names if alias.asname and _within(alias.name, "cloudsync")}
    names |= {name for module, name, _ in _from_imports(path)
              if _within(module, "cloudsync") and _is_module(f"{module}.{name}")}
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_reads_another_modules_private_attributes(path: Path) -> None:
    """`module._name` is the import rule by another road: what a module offers others is public."""
    modules = _module_aliases(path)
    assert [
        f"{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
        and node.attr.startswith("_") and not node.attr.startswith("__")
    ] == []


SHARED_WITH_THE_SERVER = ("cloudsync.errors", "cloudsync._json", "cloudsync.selector")


def test_the_server_imports_of_the_client_package_only_what_it_shares() -> None:
    """An allow-list, so that a client module added later (replication, the writer, the CLI...)
    is kept out too: the server imports `errors`, `_json`, `selector` and the package's
    `__version__`, nothing else outside `cloudsync.server`."""
    outside = [
        f"{mod}:{line} imports {target}"
        for mod, targets in GRAPH.items() if _within(mod, *SERVER)
        for target, line in targets
        if _within(target, "cloudsync") and not _within(target, *SERVER, *SHARED_WITH_THE_SERVER)
        and target != "cloudsync"
    ]
    from_package = [
        f"{_module_name(path)}:{line} imports {name} from cloudsync"
        for path in SOURCES if _within(_module_name(path), *SERVER)
        for module, name, line in _from_imports(path)
        if module == "cloudsync" and name != "__version__" and not _is_module(f"cloudsync.{name}")
    ]
    assert outside + from_package == []


LIVE_QUERY = ("cloudsync.live_query", "cloudsync._result_window")
MOVING_DATA = ("cloudsync.replication", "cloudsync.backups", "cloudsync.writer")


def test_a_live_query_imports_no_transport_and_nothing_of_http() -> None:
    """A live query is a subscription's consumer: it reads through `Database` and follows a
    `Subscription`, never a transport or the HTTP layer directly."""
    assert _violations(LIVE_QUERY, (*CLIENT_HTTP, "cloudsync.transports", *SUBSCRIPTION)) == []


def test_moving_data_goes_through_the_database_and_the_subscription() -> None:
    """Replication, backup/restore and the writer use `Database`'s methods and a public
    `Subscription` (by way of `db.subscribe`): nothing of the HTTP layer, none of the
    subscription's private parts."""
    assert _violations(MOVING_DATA, (*CLIENT_HTTP, *SUBSCRIPTION[1:])) == []


def test_the_cli_uses_only_public_modules() -> None:
    """`cloudsync` on the command line is a user of the library: it imports no private module
    of it (`_http`, `_reader`, `_retry`...), only what an application could import."""
    assert [
        f"{mod}:{line} imports {target}"
        for mod, targets in GRAPH.items() if _within(mod, "cloudsync.cli")
        for target, line in targets
        if _within(target, "cloudsync") and _private_module_owner(target) is not None
    ] == []


LONG_CLASS = 310
"""Lines above which a class must be accounted for ("about 300" in docs/architecture.md)."""


def test_every_long_class_is_accounted_for_on_the_architecture_page() -> None:
    """A class over about 300 lines is named, with its file, in the Sizes section of
    docs/architecture.md, which says why it is that long."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    sizes = page[page.index("## Sizes"):]
    classes = [(node, path) for path in SOURCES for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ClassDef)]
    long_classes = [
        (node.name, str(path.relative_to(PACKAGE)), lines)
        for node, path in classes
        if (lines := (node.end_lineno or node.lineno) - node.lineno + 1) > LONG_CLASS
    ]
    assert long_classes  # the walk found the classes at all
    assert [(name, file, lines) for name, file, lines in long_classes
            if f"`{name}`" not in sizes or f"`{file}`" not in sizes] == []
