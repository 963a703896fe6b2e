"""The documentation site builds with `mkdocs build --strict`, shows no raw Sphinx roles,
and its API reference shows every public class once, under its name, with its signature."""

from __future__ import annotations

import html
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cloudsync
import cloudsync.errors
import cloudsync.server.testing
import cloudsync.transports

ROOT = Path(__file__).resolve().parent.parent
# The modules whose `__all__` is the public API, in the order a name is documented under.
PUBLIC_MODULES = (cloudsync, cloudsync.transports, cloudsync.errors, cloudsync.server.testing)
RAW_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|exc|data|mod|obj):`?\S+")
TAG = re.compile(r"<[^>]+>")


def public_classes() -> dict[str, str]:
    """Class name -> the identifier its API entry has (`cloudsync.X`, or the module's path)."""
    found: dict[str, str] = {}
    seen: set[int] = set()
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and id(obj) not in seen:
                seen.add(id(obj))
                found[name] = f"{module.__name__}.{name}"
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (the 'docs' extra)")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def page_text(path: Path) -> str:
    """A built page's visible text (tags removed, entities decoded); scripts and styles dropped."""
    markup = re.sub(r"<(script|style)\b.*?</\1>", "", path.read_text(encoding="utf-8"), flags=re.S)
    return html.unescape(TAG.sub("", markup))


def test_no_page_shows_a_raw_sphinx_role(site: Path) -> None:
    """No built page shows `:class:`, `:meth:`... as text: every docstring is Markdown."""
    raw = {}
    for page in sorted(site.rglob("*.html")):
        hits = sorted({m.group(0) for m in RAW_ROLE.finditer(page_text(page))})
        if hits:
            raw[str(page.relative_to(site))] = hits
    assert not raw, f"raw Sphinx roles in the built site: {raw}"


def has_own_constructor(cls: type) -> bool:
    """Whether cloudsync defines the class's `__init__` (itself, a base or a dataclass); the
    others (`Auth`, an enum, an exception taking a message) have no signature worth showing."""
    return any("__init__" in vars(k) for k in cls.__mro__ if k.__module__.startswith("cloudsync"))


@pytest.mark.parametrize(("name", "identifier"), sorted(public_classes().items()))
def test_public_class_has_one_heading_with_its_signature(site: Path, name: str, identifier: str) -> None:
    """A public class is on exactly one API page, as a heading named after it; one with a
    constructor of its own is followed by its signature (`Name(...)`, the constructor's
    parameters merged in)."""
    heading = re.compile(
        rf'<h([23]) id="{re.escape(identifier)}" class="doc doc-heading">((?:(?!</h[23]>).)*)</h\1>\s*'
        r'(?:<div class="doc-signature highlight">(.*?)</div>)?',
        re.S,
    )
    found = [m for page in sorted((site / "api").glob("*.html"))
             for m in heading.finditer(page.read_text(encoding="utf-8"))]
    assert len(found) == 1, f"{identifier}: {len(found)} headings in the API pages"
    title = re.search(r'<span class="doc doc-object-name doc-class-name">(.*?)</span>', found[0].group(2))
    assert title is not None and html.unescape(TAG.sub("", title.group(1))).strip() == name
    if has_own_constructor(getattr(sys.modules[identifier.rpartition(".")[0]], name)):
        signature = found[0].group(3)
        assert signature is not None, f"{identifier}: no signature under the heading"
        assert html.unescape(TAG.sub("", signature)).lstrip().startswith(f"{name}(")
