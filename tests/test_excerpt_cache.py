"""The `excerpt` filter's cache: it answers exactly what computing the excerpt afresh
answers (for any text and limit), it is keyed by the text's digest (an edited body gets a new
excerpt), and it never grows past its cap."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace import templating
from marketplace.sanitize import plain_text

MARKDOWN = st.text(alphabet=st.sampled_from(list("ab *_#`[]()<>&\n-1.é")), max_size=400)


@settings(max_examples=200, deadline=None)
@given(MARKDOWN, st.integers(min_value=1, max_value=500))
def test_cached_excerpt_is_the_fresh_excerpt(text, limit):
    fresh = templating._cut(plain_text(text), limit) if text else ""
    assert templating.excerpt(text, limit) == fresh
    assert templating.excerpt(text, limit) == fresh  # the second answer comes from the cache


def test_an_edited_body_gets_its_new_excerpt():
    assert templating.excerpt("**Old** words") == "Old words"
    assert templating.excerpt("**New** words") == "New words"
    assert templating.excerpt("**Old** words", 3) == "Old…"


def test_the_cache_stays_under_its_cap(monkeypatch):
    monkeypatch.setattr(templating, "_EXCERPTS_MAX", 8)
    templating._EXCERPTS.clear()
    for i in range(50):
        assert templating.excerpt(f"Body number {i}") == f"Body number {i}"
        assert len(templating._EXCERPTS) <= 8
