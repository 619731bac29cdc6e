"""The one sanitiser: Markdown -> HTML (markdown-it-py, raw HTML off) -> one bleach allow-list.

Everything user-written that is shown as HTML passes through ``render_markdown``; templates
mark only its output ``|safe``. bleach is used nowhere else, so it can be swapped here.
"""
from __future__ import annotations

import re
import threading
from functools import lru_cache

import bleach
from bleach.linkifier import Linker
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "strong", "em", "b", "i", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody",
    "tr", "th", "td",
})
ALLOWED_ATTRS = {"a": ["href", "title", "rel"], "th": ["align", "style"], "td": ["align", "style"],
                 "ol": ["start"]}
ALLOWED_PROTOCOLS = frozenset({"http", "https", "mailto"})
MAX_SOURCE = 200_000


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    # js-default: CommonMark plus tables and strikethrough, raw HTML disabled.
    return MarkdownIt("js-default", {"html": False, "linkify": False, "typographer": False})


def _nofollow(attrs, new=False):
    href_key = (None, "href")
    if href_key in attrs:
        attrs[(None, "rel")] = "nofollow noopener noreferrer ugc"
    return attrs


# bleach's Linker (and its html5lib parser) keeps per-call state: one per thread.
_local = threading.local()


def _linker() -> Linker:
    linker = getattr(_local, "linker", None)
    if linker is None:
        linker = _local.linker = Linker(callbacks=[_nofollow], parse_email=False)
    return linker


def clean_html(html: str) -> str:
    cleaned = bleach.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={k: [a for a in v if a != "style"] for k, v in ALLOWED_ATTRS.items()},
        protocols=ALLOWED_PROTOCOLS,
        strip=True,
        strip_comments=True,
    )
    return _linker().linkify(cleaned)


def render_markdown(source: str | None) -> str:
    """Markdown source -> safe HTML. Empty input gives an empty string."""
    if not source:
        return ""
    return clean_html(_md().render(source[:MAX_SOURCE]))


def plain_text(source: str | None) -> str:
    """Markdown -> plain text (for search documents and snippets): no markup survives."""
    if not source:
        return ""
    html = _md().render(source[:MAX_SOURCE])
    text = bleach.clean(html, tags=set(), strip=True, strip_comments=True)
    # bleach escapes &, <, > in text; search wants the characters back.
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    return re.sub(r"\s+", " ", text).strip()


def escape_text(text: str | None) -> str:
    """Plain text shown inside HTML without Markdown (e.g. one-line summaries)."""
    return bleach.clean(text or "", tags=set(), strip=True)
