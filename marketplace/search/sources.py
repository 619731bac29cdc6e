"""The built-in document types and the changes that reindex them.

Documents: challenges/failures/assets ("item"), organisations ("org"), ideas ("idea"),
and the Q&A and discussion posts the engagement feature made searchable ("question",
"comment"). Their content comes from each feature's own ``search_document()`` where it
has one; who may find them always comes from policy.doc_principals().

Which changes count as *narrowing* (the document may now be seen by fewer people, so
search filters it at query time until the outbox is applied): anything touching
visibility, status, moderation, grants, list attachments, authorship or deletion.
"""
from __future__ import annotations

from typing import Sequence

from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.routing import BuildError

from .. import policy
from ..extensions import db
from ..models import (
    AccessGrant,
    Item,
    ItemKind,
    ItemList,
    ItemTag,
    Organisation,
)
from .documents import (
    SUMMARY_BOOST,
    TITLE_BOOST,
    DocType,
    Presented,
    SearchDoc,
    display_text,
    doc_from_dict,
    principals_for,
    register_dependents,
    register_doc_type,
)
from .outbox import register_doc_source, with_dependents

SNIPPET_SOURCE_CHARS = 6000  # of a Markdown source, for snippets


def _url(endpoint: str, anchor: str = "", **values) -> str | None:
    try:
        return url_for(endpoint, **values) + anchor
    except (BuildError, RuntimeError):
        return None


def _plain(md: str | None) -> str:
    return display_text(md, SNIPPET_SOURCE_CHARS)


# --------------------------------------------------------------------------- items

ITEM_NARROWING = ("visibility", "status", "hidden_at", "org_id", "published_at")


def item_document(item: Item, principals=None, under_nda: bool | None = None) -> SearchDoc:
    principals, valid_until = principals or principals_for(item)
    parts = [(item.title, TITLE_BOOST), (item.summary or "", SUMMARY_BOOST)]
    if under_nda is None:
        under_nda = policy.brief_under_nda(item)
    if not under_nda:  # a brief under an NDA is not for everyone who may find the item
        parts += [(getattr(item, name) or "", 1.0) for name in item.MARKDOWN_FIELDS]
    if item.incentive_summary:
        parts.append((item.incentive_summary, 1.0))
    if item.tags:
        # Free text matches tags too ("lidar" finds an item tagged lidar); `tag:` still
        # filters on the exact tag field.
        parts.append((" ".join(item.tags), SUMMARY_BOOST))
    return SearchDoc(
        doc_type="item", doc_id=item.id, kind=item.kind, status=item.status, org_id=item.org_id,
        parts=tuple(parts), principals=principals, tags=tuple(item.tags),
        created=item.published_at or item.created_at, deadline=item.deadline, stale_at=valid_until,
    )


def item_documents(items) -> list[SearchDoc]:
    many = policy.item_doc_principals_many(items)
    nda = policy.briefs_under_nda(items)
    return [item_document(item, many[item.id], item.id in nda) for item in items]


def present_item(item: Item, under_nda: bool | None = None) -> Presented:
    meta = [item.organisation.name if item.organisation else "", item.status.capitalize()]
    if item.deadline and item.kind == ItemKind.CHALLENGE.value:
        meta.append("deadline " + item.deadline.strftime("%Y-%m-%d"))
    if under_nda is None:
        under_nda = policy.brief_under_nda(item)
    body = "" if under_nda else _plain(item.body)
    text = " ".join(p for p in (item.summary, body) if p)
    return Presented(title=item.title, url=_url("items.detail", kind=item.kind, item_id=item.id),
                     kind_label=item.kind_label, text=text, meta=[m for m in meta if m],
                     visibility=item.visibility)


def present_items(items, _user=None) -> dict[int, Presented]:
    """present_item for a page of items, asking the policy about NDAs once."""
    nda = policy.briefs_under_nda(items)
    return {item.id: present_item(item, item.id in nda) for item in items}


def _item_source(item: Item, change) -> list:
    return with_dependents("item", item.id, change.touches(*ITEM_NARROWING))


def _item_child_source(narrowing_attrs: Sequence[str], insert_narrows: bool = False):
    def fn(obj, change) -> list:
        narrowing = change.touches(*narrowing_attrs) or (insert_narrows and change.op == "insert")
        return with_dependents("item", obj.item_id, narrowing)

    return fn


# --------------------------------------------------------------------------- organisations


def org_document(org: Organisation) -> SearchDoc:
    principals, valid_until = principals_for(org)
    return SearchDoc(
        doc_type="org", doc_id=org.id, kind="organisation", status="active", org_id=org.id,
        parts=((org.name, TITLE_BOOST), (org.description or "", 1.0)), principals=principals,
        tags=(org.kind,) if org.kind else (), created=org.created_at, stale_at=valid_until,
    )


def present_org(org: Organisation) -> Presented:
    return Presented(title=org.name, url=_url("orgs.detail", slug=org.slug), kind_label="Organisation",
                     text=_plain(org.description), meta=[org.kind.replace("-", " ").capitalize()])


def _org_source(org: Organisation, change) -> list:
    jobs = [("org", org.id, change.op == "delete")]
    if change.op == "delete":
        # The database cascades the organisation's items away: unindex them too.
        ids = db.session.execute(select(Item.id).where(Item.org_id == org.id)).scalars().all()
        for item_id in ids:
            jobs += with_dependents("item", item_id, True)
    return jobs


# --------------------------------------------------------------------------- registration


def register_builtin() -> None:
    register_doc_type(DocType("item", Item, item_document, present_item, document_many=item_documents,
                              load_options=(selectinload(Item.tag_rows),),
                              present_options=(selectinload(Item.organisation),), present_many=present_items))
    register_doc_type(DocType("org", Organisation, org_document, present_org))
    register_doc_source(Item, _item_source, bulk=("item", Item.id))
    register_doc_source(ItemTag, _item_child_source(()), bulk=("item", ItemTag.item_id))
    # A new grant only widens; changing or removing one may narrow.
    register_doc_source(AccessGrant, _item_child_source(("revoked_at", "expires_at", "item_id", "user_id",
                                                         "org_id")), bulk=("item", AccessGrant.item_id))
    register_doc_source(ItemList, _item_child_source(("item_id", "list_id")), bulk=("item", ItemList.item_id))
    register_doc_source(Organisation, _org_source, bulk=("org", Organisation.id))
    _register_ideas()
    _register_engagement()


def _register_ideas() -> None:
    from ..models import ChallengeTerms, Idea, IdeaAuthor
    from ..services.ideas import search_document as idea_search_document

    def idea_document(idea) -> SearchDoc:
        principals, valid_until = principals_for(idea)
        return doc_from_dict("idea", idea_search_document(idea), principals, valid_until)

    def present_idea(idea, user=None, seen_challenges=None) -> Presented:
        ch = idea.challenge
        # Its authors keep an idea whose challenge they may no longer see (hidden by moderators).
        if seen_challenges is not None:
            named = ch is not None and ch.id in seen_challenges
        else:
            named = ch is not None and (user is None or policy.can(user, "view", ch))
        return Presented(title=idea.title, url=_url("ideas.detail", idea_id=idea.id), kind_label="Idea",
                         text=" ".join(p for p in (idea.summary, _plain(idea.body)) if p),
                         meta=[f"Idea for “{ch.title}”" if named else "", idea.status_label])

    def present_ideas(ideas, user) -> dict[int, Presented]:
        """present_idea for a page of ideas: which of their challenges the viewer sees is one
        query through the challenge rule's SQL form, not a check per hit."""
        ch_ids = {i.challenge_id for i in ideas if i.challenge_id is not None}
        seen = set(db.session.execute(
            policy.visible(user, Item).where(Item.id.in_(ch_ids)).with_only_columns(Item.id)).scalars()) \
            if ch_ids else set()
        return {i.id: present_idea(i, user, seen) for i in ideas}

    def ideas_of(item_ids):
        rows = db.session.execute(select(Idea.id).where(Idea.challenge_id.in_(list(item_ids)))).scalars()
        return [("idea", i) for i in rows]

    narrowing = ("status", "hidden_at", "confidentiality", "reveal_at", "challenge_id", "submitted_at")
    register_doc_type(DocType("idea", Idea, idea_document, present_idea,
                              load_options=(selectinload(Idea.authors),),
                              present_options=(selectinload(Idea.challenge),), present_for=present_idea,
                              present_many=present_ideas))
    register_dependents("item", ideas_of)
    # A new terms version may put the challenge's brief under an NDA (out of its document).
    register_doc_source(ChallengeTerms, lambda t, ch: [("item", t.challenge_id, True)],
                        bulk=("item", ChallengeTerms.challenge_id))
    register_doc_source(Idea, lambda idea, ch: [("idea", idea.id, ch.touches(*narrowing))],
                        bulk=("idea", Idea.id))
    register_doc_source(IdeaAuthor, lambda a, ch: [("idea", a.idea_id, ch.touches("status", "user_id",
                                                                                  "idea_id"))],
                        bulk=("idea", IdeaAuthor.idea_id))


def _register_engagement() -> None:
    from ..models import Answer, Comment, Question
    from ..services.engagement import search_document as eng_search_document

    def question_document(q) -> SearchDoc:
        principals, valid_until = principals_for(q)
        return doc_from_dict("question", eng_search_document(q), principals, valid_until)

    def comment_document(c) -> SearchDoc:
        principals, valid_until = principals_for(c)
        return doc_from_dict("comment", eng_search_document(c), principals, valid_until)

    def present_post(obj, label: str, anchor: str) -> Presented:
        item = obj.item
        d = eng_search_document(obj)
        # A permalink: the item page opens its thread at the page holding the post.
        return Presented(title=d["title"], url=_url("items.detail", f"#{anchor}-{obj.id}", kind=item.kind,
                                                    item_id=item.id, post=f"{anchor}-{obj.id}"),
                         kind_label=label, text=d["text"], meta=[item.organisation.name])

    def posts_of(item_ids):
        ids = list(item_ids)
        out = [("question", i) for i in db.session.execute(
            select(Question.id).where(Question.item_id.in_(ids))).scalars()]
        out += [("comment", i) for i in db.session.execute(
            select(Comment.id).where(Comment.item_id.in_(ids))).scalars()]
        return out

    hiding = ("hidden_at", "deleted_at", "item_id", "author_id")
    def post_options(model) -> tuple:
        # A page of results: each post's item with its organisation and tags (the title,
        # link and meta line) read once per page, not once per result.
        return (selectinload(model.item).selectinload(Item.organisation),
                selectinload(model.item).selectinload(Item.tag_rows))

    register_doc_type(DocType("question", Question, question_document,
                              lambda q: present_post(q, "Q&A", "question"),
                              present_options=post_options(Question)))
    register_doc_type(DocType("comment", Comment, comment_document,
                              lambda c: present_post(c, "Discussion", "comment"),
                              present_options=post_options(Comment)))
    register_dependents("item", posts_of)
    register_doc_source(Question, lambda q, ch: [("question", q.id, ch.touches(*hiding))],
                        bulk=("question", Question.id))
    register_doc_source(Answer, lambda a, ch: [("question", a.question_id, ch.touches("hidden_at", "question_id"))],
                        bulk=("question", Answer.question_id))
    register_doc_source(Comment, lambda c, ch: [("comment", c.id, ch.touches(*hiding))],
                        bulk=("comment", Comment.id))

