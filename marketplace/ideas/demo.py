"""Demo data for ideas: an invited, sealed challenge in Acme with terms, rules, reviewers
and a submitted idea by invited@contributor.test; the public gripper challenge with open
terms. Idempotent: a challenge that already has terms is left alone."""
from __future__ import annotations

import secrets

from sqlalchemy import select

from .. import policy
from ..extensions import db
from ..models import Item

SEALED_TITLE = "Confidential: next-generation lidar fusion"
OPEN_TITLE = "Grip fragile parcels without damage"


def _find(org, title):
    return db.session.execute(select(Item).where(Item.org_id == org.id, Item.title == title)).scalar()


def demo_hook(users: dict, orgs: dict) -> None:
    from ..services import ideas as ideas_svc
    from ..services import terms as terms_svc

    acme = orgs.get("Acme Robotics")
    owner = users.get("owner@acme.test")
    if acme is None or owner is None:
        return
    db.session.commit()  # the services below lock rows and commit; start from a clean slate

    lidar = _find(acme, SEALED_TITLE)
    if lidar is not None and policy.current_terms(lidar.id) is None:
        terms = terms_svc.save_terms(owner, lidar, {
            "ip_model": "assignment-on-award", "open_licence": "",
            "field_of_use": "Sensor fusion for indoor autonomous vehicles.",
            "territory": "Worldwide.", "licence_duration": "Perpetual once assigned.",
            "post_termination_rights": "If the challenge is cancelled, every contributor keeps all rights; "
                                       "Acme deletes unawarded submissions within 90 days.",
            "background_ip": "Each party keeps its own background IP; Acme gets no licence to it.",
            "foreground_ip": "Foreground IP stays with the contributor until the idea is awarded and the "
                             "award is paid; then it is assigned to Acme.",
            "confidentiality": "sealed", "reveal_at": None, "nda_text": "",
            "incentives": [
                {"kind": "royalty-share", "percentage": "3", "base": "net sales of products using the idea"},
                {"kind": "milestone-payment", "milestone": "Working prototype", "amount": "15000", "currency": "EUR"},
            ],
            "dispute_resolution": "Mediation, then the courts of Amsterdam.", "governing_law": "Dutch law",
        })[0]
        terms_svc.save_rules(owner, lidar, {
            "who_may_submit": "invited", "max_ideas_per_contributor": 2, "team_allowed": True,
            "max_team_size": 3, "allowed_domains": "", "blocked_domains": "competitor.test",
            "org_members_may_participate": False,
            "eligibility_statement": "I am an independent expert, not employed by a competitor of Acme.",
            "coi_declaration": "I have disclosed below any relationship with Acme or its suppliers.",
        })
        ideas_svc.add_criterion(owner, lidar, "Technical feasibility", 3, "Can it be built with parts we can buy?")
        ideas_svc.add_criterion(owner, lidar, "Cost", 2, "Bill of materials per vehicle.")
        ideas_svc.add_criterion(owner, lidar, "Originality", 1)
        if "admin@acme.test" in users:
            ideas_svc.appoint_reviewer(owner, lidar, "admin@acme.test")
        if "researcher@uni.test" in users:
            # An outside judge: invited by e-mail, and the demo accepts the link on their behalf.
            inv = ideas_svc.appoint_reviewer(owner, lidar, "researcher@uni.test",
                                             "I will keep every idea I review confidential, use it only to "
                                             "judge this challenge, and delete my copies when the review ends.")
            ideas_svc.accept_reviewer_invitation(users["researcher@uni.test"], inv.token)
        contributor = users.get("invited@contributor.test")
        if contributor is not None:
            ideas_svc.submit_idea(contributor, lidar, {
                "challenge_id": lidar.id, "submission_key": secrets.token_urlsafe(24),
                "title": "Dust-robust fusion with polarised stereo",
                "summary": "Polarised stereo cameras reject dust glare before fusing with low-cost lidar.",
                "body": "## Approach\n\nUse **polarising filters** on the stereo pair, then weight lidar "
                        "returns by a dust-density estimate.\n\n- Cheap parts\n- Runs on the existing CPU",
                "terms_version": terms.version, "terms_digest": terms.digest, "accept_terms": True,
                "confirm_eligibility": True, "confirm_coi": True, "coi_note": "None.",
            })

    grip = _find(acme, OPEN_TITLE)
    if grip is not None and policy.current_terms(grip.id) is None:
        terms_svc.save_terms(owner, grip, {
            "ip_model": "non-exclusive-licence", "open_licence": "",
            "field_of_use": "Gripping systems for warehouse robots.", "territory": "European Union.",
            "licence_duration": "Five years from the award.",
            "post_termination_rights": "The contributor keeps ownership; the licence ends after five years.",
            "background_ip": "Each party keeps its own background IP.",
            "foreground_ip": "The contributor owns it; Acme receives a non-exclusive licence on award.",
            "confidentiality": "open", "reveal_at": None, "nda_text": "",
            "incentives": [
                {"kind": "cash-prize", "amount": "20000", "currency": "EUR", "winners": 1},
                {"kind": "collaboration-contract", "description": "A paid pilot in one of our warehouses."},
            ],
            "dispute_resolution": "Mediation, then the courts of Amsterdam.", "governing_law": "Dutch law",
        })
        terms_svc.save_rules(owner, grip, {
            "who_may_submit": "registered", "max_ideas_per_contributor": 3, "team_allowed": True,
            "max_team_size": 4, "allowed_domains": "", "blocked_domains": "",
            "org_members_may_participate": False, "eligibility_statement": "", "coi_declaration": "",
        })
        ideas_svc.add_criterion(owner, grip, "Damage reduction", 3)
        ideas_svc.add_criterion(owner, grip, "Cycle time", 2)

    # Every other open demo challenge gets a plain terms sheet too: no challenge is ever open
    # without terms (demo.load_demo checks it once every hook has run).
    from ..demo import ITEMS as DEMO_ITEMS

    demo_titles = {(org_name, title) for org_name, kind, title, *_rest in DEMO_ITEMS if kind == "challenge"}
    org_ids = [o.id for o in orgs.values()]
    for ch in db.session.execute(select(Item).where(Item.kind == "challenge", Item.status == "open",
                                                    Item.org_id.in_(org_ids)).order_by(Item.id)).scalars().all():
        if (ch.organisation.name, ch.title) not in demo_titles or policy.current_terms(ch.id) is not None:
            continue
        owner_of = _owner_of(ch)
        if owner_of is None:
            continue
        terms_svc.save_terms(owner_of, ch, _plain_terms(ch.organisation.name))
        if policy.challenge_rules(ch.id) is None:
            terms_svc.save_rules(owner_of, ch, terms_svc.default_rules_for(ch))


def _owner_of(ch: Item):
    from ..models import Membership, OrgRole, User

    return db.session.execute(select(User).join(Membership, Membership.user_id == User.id).where(
        Membership.org_id == ch.org_id, Membership.role == OrgRole.OWNER.value).order_by(User.id).limit(1)).scalar()


def _plain_terms(org_name: str) -> dict:
    return {
        "ip_model": "contributor-retains", "open_licence": "",
        "field_of_use": "Evaluating the idea for this challenge only.", "territory": "Worldwide.",
        "licence_duration": "Not applicable: no licence is granted.",
        "post_termination_rights": "The contributor keeps every right; unawarded ideas are deleted after the challenge.",
        "background_ip": "Each party keeps its own background IP.",
        "foreground_ip": f"The contributor owns it; {org_name} may only evaluate the idea.",
        "confidentiality": "open", "reveal_at": None, "nda_text": "",
        "incentives": [{"kind": "recognition", "description": f"Named as a winner by {org_name}."}],
        "dispute_resolution": "Good-faith negotiation, then mediation.", "governing_law": "Dutch law",
    }
