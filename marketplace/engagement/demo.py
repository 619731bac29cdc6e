"""Demo data for engagement (called by `flask demo load`; idempotent): rules, a published
and a waiting question, a discussion with a pinned lesson, terms on assets, requests."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import Item
from ..models.engagement import AssetRequest, AssetTerms, Comment, Question
from ..services import engagement as svc


def _item(orgs, org_name: str, title: str) -> Item | None:
    org = orgs.get(org_name)
    if org is None:
        return None
    return db.session.execute(select(Item).where(Item.org_id == org.id, Item.title == title)).scalar()


def _has(model, **kw) -> bool:
    return db.session.execute(select(model.id).filter_by(**kw).limit(1)).first() is not None


def add_engagement_demo(users: dict, orgs: dict) -> None:
    db.session.flush()
    acme_admin = users["admin@acme.test"]
    researcher = users["researcher@uni.test"]
    outsider = users["outsider@contributor.test"]
    curator = users["curator@cluster.test"]
    owner = users["owner@acme.test"]

    grip = _item(orgs, "Acme Robotics", "Grip fragile parcels without damage")
    if grip is not None and not _has(Question, item_id=grip.id):
        svc.set_rules(acme_admin, grip, {"ask_rule": "registered", "question_cutoff_hours": 48})
        q = svc.ask_question(researcher, grip, "Are parcels heavier than **5 kg** in scope?", show_name=True)
        svc.answer_question(acme_admin, q, "No: parcels up to 5 kg only. Heavier items use a separate line.")
        svc.ask_question(outsider, grip, "Can we visit a warehouse to measure the parcels?", show_name=False)

    suction = _item(orgs, "Acme Robotics", "Suction grippers on recycled cardboard")
    if suction is not None and not _has(Comment, item_id=suction.id):
        svc.set_rules(acme_admin, suction, {"comment_rule": "registered"})
        c = svc.add_comment(researcher, suction, "Did you try measuring porosity with a simple air-flow test?")
        reply = svc.add_comment(curator, suction, "What we learned too: a foam lip around the cup sealed "
                                "porous boxes well enough in our pilot.", parent=c)
        svc.pin_comment(acme_admin, reply)

    terms = {
        ("North Sea Energy Cluster", "Wave tank test facility"): (curator, {
            "licence_kind": "collaboration-only", "fee_model": "negotiable", "field_of_use": "Marine testing",
            "territory": "", "duration": "Two-week slots", "notes": "Joint test campaigns only."}),
        ("Techville University", "Patent: self-healing polymer coating"): (researcher, {
            "licence_kind": "non-exclusive", "fee_model": "royalty", "field_of_use": "Industrial coatings",
            "territory": "EU and UK", "duration": "Until patent expiry", "notes": ""}),
        ("Acme Robotics", "Warehouse motion data set (2 TB)"): (acme_admin, {
            "licence_kind": "non-exclusive", "fee_model": "free", "field_of_use": "Non-commercial research",
            "territory": "Worldwide", "duration": "3 years", "notes": "Attribution required."}),
    }
    for (org_name, title), (by, data) in terms.items():
        asset = _item(orgs, org_name, title)
        if asset is not None and not _has(AssetTerms, item_id=asset.id):
            svc.publish_terms(by, asset, data)

    motion = _item(orgs, "Acme Robotics", "Warehouse motion data set (2 TB)")
    if motion is not None and not _has(AssetRequest, item_id=motion.id):
        t = svc.current_terms(motion)
        svc.send_request(researcher, motion, "licence", "We would like to train a motion-prediction model.",
                         terms_version=t.version, terms_digest=t.digest)
    tank = _item(orgs, "North Sea Energy Cluster", "Wave tank test facility")
    if tank is not None and not _has(AssetRequest, item_id=tank.id):
        t = svc.current_terms(tank)
        r = svc.send_request(owner, tank, "collaboration", "Could we test a floating charging dock in Q3?",
                             terms_version=t.version, terms_digest=t.digest, on_behalf_of=orgs["Acme Robotics"])
        svc.decide_request(curator, r, "follow-up", "Q3 is full; would the first two weeks of Q4 work?")
