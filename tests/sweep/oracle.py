"""Who may see what, written out from the README's rules and the rule book's docstrings in
prose, without importing marketplace.policy: the sweep's spec.

Facts (who belongs where, which grants are active, which rows have a moderation case) are
recorded by the world builder as it makes them; the rules below turn them into "may this
persona see this?". Each rule cites the prose it follows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

OWNER, ADMIN, MEMBER = "owner", "admin", "member"
SHOWN_IDEA_STATES = frozenset({"submitted", "under-review", "shortlisted", "awarded", "declined", "disqualified"})
# Moderation kinds a challenge's public decision log shows with their reason
# (moderation/decisions.py: "every governance decision on this challenge ... who, when, why").
DECISION_LOG_KINDS = frozenset({"hide", "restore", "request-edit", "lock", "unlock", "disqualify", "requalify"})


@dataclass(frozen=True)
class Persona:
    name: str
    site_role: str = "user"                  # user | moderator | admin
    orgs: tuple[tuple[str, str], ...] = ()   # (org key, role)
    scoped: frozenset[str] = frozenset()     # organisations whose challenges they moderate
    anonymous: bool = False
    blocked: bool = False                    # suspended or banned: treated as anonymous

    @property
    def signed_in(self) -> bool:
        return not self.anonymous and not self.blocked

    @property
    def staff(self) -> bool:
        """Site moderators and site admins (README: they see every published item)."""
        return self.signed_in and self.site_role in ("moderator", "admin")

    @property
    def site_admin(self) -> bool:
        return self.signed_in and self.site_role == "admin"

    def role(self, org: str | None) -> str | None:
        if not self.signed_in or org is None:
            return None
        return dict(self.orgs).get(org)

    def member(self, org: str | None) -> bool:
        return self.role(org) is not None

    def org_admin(self, org: str | None) -> bool:
        return self.role(org) in (OWNER, ADMIN)

    def any_org_admin(self) -> set[str]:
        return {o for o, r in self.orgs if r in (OWNER, ADMIN)} if self.signed_in else set()


@dataclass
class ItemF:
    key: str
    kind: str
    org: str
    visibility: str
    status: str
    hidden: bool = False
    access: set[str] = field(default_factory=set)        # personas with active invited access
    nda: bool = False                                    # current terms carry an NDA
    nda_accepted: set[str] = field(default_factory=set)
    reviewers: set[str] = field(default_factory=set)     # active reviewers
    has_case: bool = False                               # a report or action has it as context
    invite_revealed: set[str] = field(default_factory=set)  # invitees whose invitation named it


@dataclass
class Place:
    """Where a moderated row lives (policy/places.py prose)."""

    org: str | None
    context_kind: str | None
    discussion: bool = False
    site_only: bool = False


@dataclass
class IdeaF:
    key: str
    challenge: str
    status: str
    sealed: bool
    authors: dict[str, str] = field(default_factory=dict)  # persona -> lead | accepted | pending | declined
    hidden: bool = False
    has_case: bool = False


@dataclass
class PostF:
    """A question, answer or comment."""

    key: str
    item: str
    author: str
    hidden: bool = False
    deleted: bool = False
    answered: bool = False          # questions
    question: str | None = None     # answers: their question's key
    has_case: bool = False


@dataclass
class RequestF:
    key: str
    item: str
    author: str
    requester_org: str | None = None
    open_report: bool = False


@dataclass
class ListF:
    key: str
    org: str
    shared_with: set[str] = field(default_factory=set)
    entries: set[str] = field(default_factory=set)  # personas with an entry on it


@dataclass
class ActionF:
    key: str
    kind: str
    place: Place
    affected: set[str] = field(default_factory=set)
    reporters: set[str] = field(default_factory=set)   # reporters told the outcome of a dismissal
    challenge: str | None = None                       # the context challenge (decision log)
    target_viewers: frozenset[str] = frozenset()       # who sees the target (its hidden_reason shows there)


class Oracle:
    """The rules, over one world's facts."""

    def __init__(self, personas: dict[str, Persona]):
        self.personas = personas
        self.items: dict[str, ItemF] = {}
        self.ideas: dict[str, IdeaF] = {}
        self.posts: dict[str, PostF] = {}
        self.requests: dict[str, RequestF] = {}
        self.lists: dict[str, ListF] = {}
        self.actions: dict[str, ActionF] = {}

    def who(self, pred) -> frozenset[str]:
        return frozenset(n for n, p in self.personas.items() if pred(p))

    # ------------------------------------------------------------------ items (README table)

    def item_own(self, p: Persona, key: str) -> bool:
        """Drafts: the owning organisation's owners and admins. Site moderators and admins:
        every published item, hidden too. Hidden: the organisation's members. Then the level:
        public anyone, registered signed-in, invited members + invited access, organisation
        members."""
        it = self.items[key]
        if it.status == "draft":
            return p.org_admin(it.org)
        if p.staff:
            return True
        member = p.member(it.org)
        if it.hidden and not member:
            return False
        if it.visibility == "public":
            return True
        if it.visibility == "registered":
            return p.signed_in
        if it.visibility == "invited":
            return p.signed_in and (member or p.name in it.access)
        if it.visibility == "organisation":
            return member
        raise ValueError(it.visibility)

    def item_view(self, p: Persona, key: str) -> bool:
        """Plus: a moderator scoped to an organisation sees its (published) challenges in
        which something was reported or acted on."""
        it = self.items[key]
        if self.item_own(p, key):
            return True
        return (p.signed_in and it.org in p.scoped and it.kind == "challenge" and it.status != "draft"
                and it.has_case)

    def item_title(self, p: Persona, key: str) -> bool:
        """Title and summary: whoever sees the item, and an invitee whose invitation showed
        them (README: only where accepting would let the invitee see it)."""
        return self.item_view(p, key) or p.name in self.items[key].invite_revealed

    def item_brief(self, p: Persona, key: str) -> bool:
        """The full brief of a challenge whose terms carry an NDA: after accepting it (members,
        reviewers and moderators need not)."""
        it = self.items[key]
        if not self.item_view(p, key):
            return False
        if not it.nda:
            return True
        return p.member(it.org) or p.staff or p.name in it.reviewers or p.name in it.nda_accepted

    def org_admin_of(self, p: Persona, key: str) -> bool:
        """A reviewer appointment (and its NDA) is its holder's and the challenge
        organisation's admins'."""
        return p.org_admin(self.items[key].org)

    def panel(self, p: Persona, challenge: str) -> bool:
        """The review panel: the posting organisation's owners/admins and active reviewers."""
        it = self.items[challenge]
        return p.org_admin(it.org) or (p.signed_in and p.name in it.reviewers)

    # ------------------------------------------------------------------ moderation places

    def place_mod(self, p: Persona, pl: Place) -> bool:
        """Site moderators moderate everything; scoped moderators their organisation's
        challenges and what is under them (never site-only types); organisation admins the
        discussion content on their own items."""
        if not p.signed_in:
            return False
        if p.staff:
            return True
        if pl.site_only or pl.org is None:
            return False
        if pl.context_kind == "challenge" and pl.org in p.scoped:
            return True
        return pl.discussion and p.org_admin(pl.org)

    def item_place(self, key: str, discussion: bool = False) -> Place:
        it = self.items[key]
        return Place(it.org, it.kind, discussion)

    # ------------------------------------------------------------------ ideas

    def idea_view(self, p: Persona, key: str) -> bool:
        """Authors (lead, co-authors, pending co-authors) always; nobody else while it waits
        for co-authors; site moderators everything else, and whoever moderates a case on it;
        everyone else only shown states, not hidden, if they see the challenge (its own
        rule); sealed ones only the review panel."""
        i = self.ideas[key]
        if p.signed_in and i.authors.get(p.name) in ("lead", "accepted", "pending"):
            return True
        if i.status == "awaiting-coauthors":
            return False
        if p.staff:
            return True
        if i.has_case and self.place_mod(p, self.item_place(i.challenge)):
            return True
        if i.status not in SHOWN_IDEA_STATES or i.hidden:
            return False
        if not self.item_own(p, i.challenge):
            return False
        return not i.sealed or self.panel(p, i.challenge)

    def idea_author(self, p: Persona, key: str) -> bool:
        return p.signed_in and self.ideas[key].authors.get(p.name) in ("lead", "accepted", "pending")

    def idea_decision(self, p: Persona, key: str) -> bool:
        """A decline or disqualification reason: its authors, the review panel and the
        moderators of its place (among those who see the idea)."""
        i = self.ideas[key]
        return self.idea_view(p, key) and (
            self.idea_author(p, key) or self.panel(p, i.challenge)
            or self.place_mod(p, self.item_place(i.challenge)))

    def idea_review(self, p: Persona, key: str) -> bool:
        """Scores and the review section: the review panel, never an author of the idea."""
        return self.idea_view(p, key) and not self.idea_author(p, key) and self.panel(p, self.ideas[key].challenge)

    # ------------------------------------------------------------------ questions, answers, comments

    def _case_sees(self, p: Persona, post: PostF) -> bool:
        return post.has_case and self.place_mod(p, self.item_place(post.item, discussion=True))

    def question_view(self, p: Persona, key: str) -> bool:
        """On challenges one sees: answered ones everyone; unanswered ones the asker and the
        posting organisation; hidden ones the asker and the organisation's admins; deleted
        ones nobody else. Site moderators all; case moderators the row."""
        q = self.posts[key]
        if self._case_sees(p, q):
            return True
        if not self.item_own(p, q.item):
            return False
        if p.staff:
            return True
        if q.deleted:
            return False
        org = self.items[q.item].org
        mine = p.signed_in and p.name == q.author
        if q.hidden:
            return mine or p.org_admin(org)
        return q.answered or mine or p.member(org)

    def answer_view(self, p: Persona, key: str) -> bool:
        """Follow their question (a hidden question hides its answer from all but its asker
        and the organisation's admins); a hidden answer: its author and those admins."""
        a = self.posts[key]
        if self._case_sees(p, a):
            return True
        if not self.item_own(p, a.item):
            return False
        if p.staff:
            return True
        q = self.posts[a.question]
        org = self.items[a.item].org
        admin = p.org_admin(org)
        if q.hidden and not (admin or (p.signed_in and p.name == q.author)):
            return False
        if a.hidden:
            return admin or (p.signed_in and p.name == a.author)
        return True

    def comment_view(self, p: Persona, key: str) -> bool:
        """Everyone who sees the failure; hidden: the author and the organisation's admins;
        deleted: nobody else. Site moderators all; case moderators the row."""
        c = self.posts[key]
        if self._case_sees(p, c):
            return True
        if not self.item_own(p, c.item):
            return False
        if p.staff:
            return True
        if c.deleted:
            return False
        if c.hidden:
            return (p.signed_in and p.name == c.author) or p.org_admin(self.items[c.item].org)
        return True

    # ------------------------------------------------------------------ asset requests

    def request_view(self, p: Persona, key: str) -> bool:
        """Only the two parties (the sender, or the admins of the organisation it was sent
        for, and the asset owner's admins); site moderators while a report on it is open."""
        r = self.requests[key]
        if not p.signed_in:
            return False
        if p.name == r.author or (r.requester_org and p.org_admin(r.requester_org)):
            return True
        if p.org_admin(self.items[r.item].org):
            return True
        return p.staff and r.open_report

    # ------------------------------------------------------------------ data-sharing agreements (issue 17)

    def agreement_view(self, p: Persona, item: str, partner: str, named: set[str]) -> bool:
        """The owners and admins of both organisations, and the people named in it."""
        return p.signed_in and (p.org_admin(self.items[item].org) or p.org_admin(partner) or p.name in named)

    def asset_file_view(self, p: Persona, item: str, named: set[str]) -> bool:
        """The asset organisation's members; the people named in an agreement in force on the
        asset while it is not hidden. Site staff get nothing from their role."""
        it = self.items[item]
        if not p.signed_in:
            return False
        return p.member(it.org) or (p.name in named and not it.hidden)

    # ------------------------------------------------------------------ lists

    def list_view(self, p: Persona, key: str) -> bool:
        """The curating organisation's members, site admins and the admins of organisations
        it is shared with."""
        lst = self.lists[key]
        return p.member(lst.org) or p.site_admin or any(p.org_admin(o) for o in lst.shared_with)

    def list_name(self, p: Persona, key: str) -> bool:
        """... and each person on it sees their own entry, which names the list."""
        return self.list_view(p, key) or (p.signed_in and p.name in self.lists[key].entries)

    # ------------------------------------------------------------------ moderation

    def report_view(self, p: Persona, place: Place) -> bool:
        """Reports are seen by whoever moderates their place."""
        return self.place_mod(p, place)

    def action_view(self, p: Persona, key: str) -> bool:
        """Actions: whoever moderates their place, and the people they affect."""
        a = self.actions[key]
        return self.place_mod(p, a.place) or (p.signed_in and p.name in a.affected)

    def action_reason(self, p: Persona, key: str) -> bool:
        """The reason: on the action; a dismissal's to the reporters; a hide's beside the hidden
        row (to whoever sees it); a decision on a challenge's content in its public decision
        log (to whoever sees the challenge)."""
        a = self.actions[key]
        if self.action_view(p, key) or p.name in a.affected:  # told by e-mail, even when blocked
            return True
        if a.kind == "dismiss" and p.signed_in and p.name in a.reporters:
            return True
        if a.kind == "hide" and p.name in a.target_viewers:
            return True
        return a.kind in DECISION_LOG_KINDS and a.challenge is not None and self.item_view(p, a.challenge)
