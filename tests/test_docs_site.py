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


# -- parameter tables ----------------------------------------------------------------------
# The dataclasses in `cloudsync.models` have no `Args:` yet (that file is edited elsewhere):
# expected to fail until it has them, and then the strict xfail says to drop this.
DOC_HEADING = re.compile(r'<h[2-6] id="([^"]+)" class="doc doc-heading">')
PARAMETERS = re.compile(r'<span class="doc-section-title">Parameters:</span></p>\s*<table>(.*?)</table>', re.S)
FIRST_CELL = re.compile(r'<tr class="doc-section-item">\s*<td>(.*?)</td>', re.S)


@pytest.fixture(scope="module")
def entries(site: Path) -> dict[str, str]:
    """API entry identifier -> its own part of the page: from its heading to the next
    entry's (a class's own docstring ends where its first member begins)."""
    found: dict[str, str] = {}
    for page in sorted((site / "api").glob("*.html")):
        markup = page.read_text(encoding="utf-8")
        headings = list(DOC_HEADING.finditer(markup))
        for this, following in zip(headings, [*headings[1:], None], strict=True):
            found[this.group(1)] = markup[this.end():following.start() if following else len(markup)]
    return found


def parameter_names(callable_: object) -> list[str]:
    """The parameters a caller passes (`self` and `cls` left out; `**name` as `name`)."""
    parameters = inspect.signature(callable_).parameters  # type: ignore[arg-type]
    return [name for name in parameters if name not in ("self", "cls")]


def documented_callables() -> dict[str, object]:
    """Identifier -> object for every public function, every public class whose constructor
    it defines itself takes parameters (a subclass that inherits one, such as `NotFound`,
    links to its base's table), and every public method, that the API pages document."""
    found: dict[str, object] = {}
    seen: set[int] = set()
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if id(obj) in seen or not callable(obj):
                continue
            seen.add(id(obj))
            identifier = f"{module.__name__}.{name}"
            if not inspect.isclass(obj):
                found[identifier] = obj
                continue
            if "__init__" in vars(obj) and parameter_names(obj):
                found[identifier] = obj
            for member, value in vars(obj).items():
                function = getattr(value, "__func__", value)
                if not member.startswith("_") and inspect.isfunction(function):
                    found[f"{identifier}.{member}"] = getattr(obj, member)
    return found


@pytest.mark.parametrize(("identifier", "obj"), sorted(documented_callables().items()))
def test_documented_callable_shows_a_table_of_every_parameter(
    entries: dict[str, str], identifier: str, obj: object
) -> None:
    """A public class's constructor, function or method that takes parameters shows, under
    its heading, a Parameters table naming each of them (methods without a docstring are
    not on the pages and are skipped)."""
    if identifier not in entries:
        pytest.skip(f"{identifier} is not documented on the API pages")
    expected = parameter_names(obj)
    if not expected:
        pytest.skip(f"{identifier} takes no parameters")
    table = PARAMETERS.search(entries[identifier])
    assert table is not None, f"{identifier}: no Parameters table"
    shown = [html.unescape(TAG.sub("", cell)).strip().lstrip("*") for cell in FIRST_CELL.findall(table.group(1))]
    assert shown == expected, f"{identifier}: the table names {shown}, the signature {expected}"


@pytest.mark.parametrize("identifier", [
    "cloudsync.Client", "cloudsync.Subscription", "cloudsync.Database.subscribe", "cloudsync.server.testing.serve",
])
def test_the_main_entry_points_have_parameter_tables(identifier: str) -> None:
    """The entry points a user starts from are among the callables checked for a
    parameter table (the check above cannot silently skip them)."""
    assert identifier in documented_callables()


# What the content column of a 1280-pixel-wide window shows of a code block's line.
CODE_BLOCK_WIDTH = 76


def test_api_code_blocks_fit_the_page(site: Path) -> None:
    """No line of a code block on an API page (a docstring's example or diagram, a
    signature) is wider than the page shows without scrolling sideways."""
    wide = {}
    for page in sorted((site / "api").glob("*.html")):
        for block in re.findall(r"<pre\b[^>]*>(.*?)</pre>", page.read_text(encoding="utf-8"), re.S):
            for line in html.unescape(TAG.sub("", block)).splitlines():
                if len(line) > CODE_BLOCK_WIDTH:
                    wide.setdefault(page.name, []).append(line)
    assert not wide, f"code lines wider than {CODE_BLOCK_WIDTH} characters: {wide}"
