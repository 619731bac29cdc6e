"""Factories for the ideas feature: terms, rules, a ready challenge, submissions.

They go through the real services (policy checks, audit, hashes), so tests exercise the
same paths as the pages.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from marketplace.extensions import db
from marketplace.models import Idea, Item, Organisation, User
from marketplace.services import ideas as ideas_svc
from marketplace.services import terms as terms_svc

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20


def terms_data(**over) -> dict:
    data = {
        "ip_model": "non-exclusive-licence", "open_licence": "",
        "field_of_use": "Warehouse robotics.", "territory": "Worldwide.", "licence_duration": "Five years.",
        "post_termination_rights": "Contributors keep everything if the challenge is cancelled.",
        "background_ip": "Each party keeps its own.", "foreground_ip": "The contributor owns it.",
        "confidentiality": "sealed", "reveal_at": None, "nda_text": "",
        "incentives": [{"kind": "cash-prize", "amount": "1000", "currency": "EUR", "winners": 1},
                       {"kind": "recognition", "description": "Named on our website."}],
        "dispute_resolution": "Mediation.", "governing_law": "Dutch law",
    }
    data.update(over)
    return data


def rules_data(**over) -> dict:
    data = {"who_may_submit": "registered", "max_ideas_per_contributor": 3, "team_allowed": True,
            "max_team_size": 3, "allowed_domains": "", "blocked_domains": "",
            "org_members_may_participate": False, "eligibility_statement": "", "coi_declaration": ""}
    data.update(over)
    return data


@dataclass
class Setup:
    owner: User
    org: Organisation
    challenge: Item
    terms: object


class IdeaFactories:
    def __init__(self, f):
        self.f = f

    def set_terms(self, owner: User, challenge: Item, **over):
        terms, _created = terms_svc.save_terms(owner, challenge, terms_data(**over))
        return terms

    def set_rules(self, owner: User, challenge: Item, **over):
        return terms_svc.save_rules(owner, challenge, rules_data(**over))

    def challenge(self, visibility: str = "public", confidentiality: str = "sealed", rules: dict | None = None,
                  owner: User | None = None, org: Organisation | None = None, **terms_over) -> Setup:
        owner = owner or self.f.make_user()
        org = org or self.f.make_org(owner=owner)
        ch = self.f.make_item(org, kind="challenge", visibility=visibility, status="open")
        terms = self.set_terms(owner, ch, confidentiality=confidentiality, **terms_over)
        self.set_rules(owner, ch, **(rules or {}))
        return Setup(owner, org, ch, terms)

    def submission(self, challenge: Item, **over) -> dict:
        terms = terms_svc.policy.current_terms(challenge.id)
        data = {"challenge_id": str(challenge.id), "submission_key": secrets.token_urlsafe(24),
                "title": "An idea", "summary": "In one line.", "body": "The **idea** itself.",
                "terms_version": str(terms.version) if terms else "", "terms_digest": terms.digest if terms else "",
                "accept_terms": True, "confirm_eligibility": True, "confirm_coi": True, "coi_note": ""}
        data.update(over)
        return data

    def submit(self, user: User, challenge: Item, uploads=None, **over) -> Idea:
        idea, _created = ideas_svc.submit_idea(user, challenge, self.submission(challenge, **over), uploads)
        return idea

    def form(self, challenge: Item, **over) -> dict:
        """The same submission as posted by the browser (checkbox values as 'y')."""
        data = self.submission(challenge, **over)
        out = {}
        for k, v in data.items():
            if v is True:
                out[k] = "y"
            elif v is False or v is None:
                continue
            else:
                out[k] = v
        return out


def reload(obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)
