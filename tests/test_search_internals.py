"""Whoosh's internals are reached from one module only, which checks Whoosh's version;
SEARCH_ENGINE picks the query engine and refuses unknown values at start.

The check is an AST walk over the package: in every module that imports Whoosh or lives
in marketplace/search/, no private attribute (``x._name``) of anything but ``self`` /
``cls``, no import from a Whoosh module outside its public API, no private or known
internal name imported from Whoosh, and no call of the codec's segment methods.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.search import whoosh_internals
from marketplace.search.whoosh_backend import WhooshBackend, make_engine

PACKAGE = Path(__file__).resolve().parent.parent / "marketplace"
ADAPTER = PACKAGE / "search" / "whoosh_internals.py"
EXEMPT = {ADAPTER}
# Names with a leading underscore that are documented public API (not Whoosh's): Werkzeug's
# LocalProxy documents _get_current_object() as the way to reach the object behind it.
DOCUMENTED_UNDERSCORE = {"_get_current_object"}
# Whoosh modules whose documented classes and functions the package may use.
PUBLIC_MODULES = {
    "whoosh", "whoosh.analysis", "whoosh.analysis.filters", "whoosh.columns", "whoosh.fields",
    "whoosh.formats", "whoosh.index", "whoosh.query", "whoosh.reading", "whoosh.scoring",
    "whoosh.searching", "whoosh.sorting", "whoosh.collectors",
}
# Public-looking names that are Whoosh internals (codec, writer, table of contents).
INTERNAL_NAMES = {"TOC", "SegmentWriter", "W3Codec", "Segment", "WHOOSH3_HEADER_MAGIC"}
# Methods of Whoosh's codec objects (segments, term infos, per-document readers).
INTERNAL_METHODS = {"segment", "segment_id", "deleted_docs", "is_inlined", "has_column_file"}


def whoosh_violations(path: Path, root: Path = PACKAGE) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    imports_whoosh = any(
        (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "whoosh" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "whoosh")
        for n in ast.walk(tree))
    if not imports_whoosh and path.parent.name != "search":
        return []
    where = lambda n: f"{path.relative_to(root.parent)}:{n.lineno}"  # noqa: E731
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "whoosh":
            if node.module not in PUBLIC_MODULES:
                out.append(f"{where(node)}: imports from {node.module}")
            for alias in node.names:
                if alias.name.startswith("_") or alias.name in INTERNAL_NAMES:
                    out.append(f"{where(node)}: imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "whoosh" and alias.name not in PUBLIC_MODULES:
                    out.append(f"{where(node)}: imports {alias.name}")
        elif isinstance(node, ast.Attribute):
            name = node.attr
            private = name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if private and owner not in ("self", "cls") and name not in DOCUMENTED_UNDERSCORE:
                out.append(f"{where(node)}: reads {ast.unparse(node)}")
            if name in INTERNAL_NAMES:
                out.append(f"{where(node)}: uses {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in INTERNAL_METHODS:
                out.append(f"{where(node)}: calls {ast.unparse(node.func)}()")
    return out


def test_whoosh_internals_are_used_in_the_adapter_only():
    found = [v for path in sorted(PACKAGE.rglob("*.py")) if path not in EXEMPT for v in whoosh_violations(path)]
    assert found == [], "Whoosh internals outside search/whoosh_internals.py:\n" + "\n".join(found)


def test_the_check_catches_what_it_is_for(tmp_path):
    sample = tmp_path / "marketplace" / "search" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "from whoosh.codec.whoosh3 import W3Codec\n"
        "from whoosh.index import TOC\n"
        "import whoosh.filedb.filestore\n"
        "def f(reader, self):\n"
        "    self._ok = reader._terms\n"
        "    return reader.segment().segment_id(), reader.__class__\n")
    found = [v.split(": ", 1)[1] for v in whoosh_violations(sample, root=tmp_path / "marketplace")]
    assert sorted(found) == sorted([
        "imports from whoosh.codec.whoosh3", "imports whoosh.codec.whoosh3.W3Codec", "imports whoosh.index.TOC",
        "imports whoosh.filedb.filestore", "reads reader._terms", "calls reader.segment()", "calls reader.segment().segment_id()"])


# --------------------------------------------------------------------------- the version check


def test_the_proven_version_is_accepted():
    assert whoosh_internals.check_version("2.7.4", environ={}) == "2.7.4"
    assert whoosh_internals.VERSION in whoosh_internals.PROVEN_VERSIONS


def test_another_version_is_refused_saying_what_to_do():
    with pytest.raises(whoosh_internals.WhooshVersionError) as e:
        whoosh_internals.check_version("2.7.5", environ={})
    message = str(e.value)
    assert "Whoosh 2.7.5 is installed" in message and "2.7.4" in message
    assert "SEARCH_ENGINE=whoosh" in message
    assert "tests/test_search_differential.py" in message and "PROVEN_VERSIONS" in message


def test_an_unproven_version_can_be_tried_on_purpose():
    with pytest.warns(RuntimeWarning, match="SEARCH_ENGINE=whoosh"):
        got = whoosh_internals.check_version("2.7.5", environ={whoosh_internals.TRY_UNPROVEN_ENV: "1"})
    assert got == "2.7.5"


def test_the_whoosh_engine_never_imports_the_internals(tmp_path):
    # A fresh interpreter, as a server with SEARCH_ENGINE=whoosh starts.
    import subprocess

    code = (
        "import sys, warnings; warnings.simplefilter('ignore')\n"
        f"sys.path.insert(0, {str(PACKAGE.parent)!r})\n"
        "from marketplace.search.whoosh_backend import WhooshBackend\n"
        f"b = WhooshBackend({str(tmp_path / 'ix')!r}, engine='whoosh')\n"
        "with b.lock():\n"
        "    b.ensure_index()\n"
        "print(sorted(m for m in sys.modules if m.startswith('marketplace.search.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out.strip().splitlines()[-1]))
    assert "marketplace.search.whoosh_engine" in loaded
    assert not loaded & {"marketplace.search.whoosh_internals", "marketplace.search.engine"}


# --------------------------------------------------------------------------- SEARCH_ENGINE


def test_an_unknown_engine_stops_the_app_at_start(tmp_path):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'x.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        SEARCH_ENGINE = "lucene"

    with pytest.raises(ValueError, match=r"SEARCH_ENGINE must be one of fast, whoosh, not 'lucene'"):
        create_app(Cfg)
    with pytest.raises(ValueError, match="SEARCH_ENGINE"):
        make_engine("")


@pytest.mark.parametrize("name", ["fast", "whoosh"])
def test_each_engine_is_selectable(tmp_path, name):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'x.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        SEARCH_ENGINE = name

    app = create_app(Cfg)
    backend = app.extensions["search"].backend
    assert isinstance(backend, WhooshBackend) and backend.engine.name == name
    assert backend.stats()["engine"]["name"] == name
