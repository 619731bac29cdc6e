"""Rules for the code and for the test suite itself.

* Our own Python compiles without a SyntaxWarning (nor Python 3.11's DeprecationWarning for an
  invalid escape, which 3.12 turns into a SyntaxWarning): the `python -W error::SyntaxWarning`
  check, for every file of ours, whatever .pyc files happen to be cached.
* pytest's warning filters (pyproject.toml) silence those warnings for Whoosh's files only.
* Under CI=true a run in which anything was skipped fails, and ``unavailable(reason)`` (a
  missing outside service) fails instead of skipping (tests/conftest.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import whoosh

ROOT = Path(__file__).resolve().parent.parent
OUR_CODE = ("marketplace", "migrations", "tests", "bench", "scripts")

# Code that warns when compiled: a comparison with a literal by identity (SyntaxWarning) and
# an invalid escape sequence (DeprecationWarning on 3.11, SyntaxWarning from 3.12).
BAD_SOURCE = 'N = 1\nZERO = N is 0\nPATTERN = "\\d+"\n'


def _our_sources() -> list[Path]:
    files = sorted(ROOT.glob("*.py"))
    for folder in OUR_CODE:
        files += sorted(p for p in (ROOT / folder).rglob("*.py") if "artifacts" not in p.parts)
    return files


def test_our_code_compiles_without_syntax_warnings():
    sources = _our_sources()
    assert len(sources) > 50 and ROOT / "marketplace" / "__init__.py" in sources
    problems = []
    for path in sources:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                compile(path.read_text(encoding="utf-8"), str(path), "exec")
            except (SyntaxError, SyntaxWarning, DeprecationWarning) as e:
                problems.append(f"{path.relative_to(ROOT)}: {e}")
    assert problems == []


def _warnings_when_compiled(filename: Path) -> list[str]:
    """The compile-time warnings that get through the filters in force (pytest's, from
    pyproject.toml), for BAD_SOURCE attributed to `filename`."""
    with warnings.catch_warnings(record=True) as caught:  # keeps the filters, records what passes
        try:
            compile(BAD_SOURCE, str(filename), "exec")
        except SyntaxError as e:  # a run with -W error::SyntaxWarning: it got through too
            return [f"error: {e}"]
    return [f"{w.category.__name__}: {w.message}" for w in caught]


def test_warning_filters_silence_whoosh_only():
    ours = _warnings_when_compiled(ROOT / "marketplace" / "probe_bad_escape.py")
    assert any("is" in w and "literal" in w for w in ours) or any(w.startswith("error") for w in ours), ours
    assert _warnings_when_compiled(Path(whoosh.__file__).parent / "codec" / "probe_bad_escape.py") == []


# --------------------------------------------------------------------------- no skips in CI

SKIPPING_TESTS = textwrap.dedent("""
    import pytest

    def test_passes():
        assert True

    def test_skips():
        pytest.skip("nothing to see here")

    def test_needs_a_service(unavailable):
        unavailable("the frobnicator is not running")
""")


def _run_pytest(tmp_path: Path, ci: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_skipping.py").write_text(SKIPPING_TESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CI"))}
    env.update(CI=ci, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
         "-p", "tests.conftest", "-p", "no:cacheprovider", "-q", "-rs", *args, str(tmp_path / "test_skipping.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)


def test_outside_ci_a_missing_service_skips_with_its_reason(tmp_path):
    r = _run_pytest(tmp_path, "")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed, 2 skipped" in r.stdout and "the frobnicator is not running" in r.stdout


def test_under_ci_a_missing_service_fails_and_any_skip_fails_the_run(tmp_path):
    r = _run_pytest(tmp_path, "true")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed, 1 passed, 1 skipped" in r.stdout, r.stdout
    assert "the frobnicator is not running (CI=true" in r.stdout
    assert "skipped under CI=true" in r.stdout and "test_skipping.py::test_skips (skipped)" in r.stdout


def test_under_ci_a_skip_in_an_xdist_worker_fails_the_run(tmp_path):
    r = _run_pytest(tmp_path, "1", "-n", "1", "-k", "not needs_a_service")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 passed, 1 skipped" in r.stdout and "test_skipping.py::test_skips (skipped)" in r.stdout, r.stdout
