"""A challenge's exports with proof (issue 11), for its admins (``export_ideas``):

* ``ideas.csv`` / ``ideas.json``: the ideas with their scores per round (raw and normalised,
  and in JSON every judge's score per criterion), their decisions and acceptance receipts;
* the evidence bundle (ZIP): the terms sheet versions (canonical JSON as stored, and their
  digests), every acceptance receipt (signed, as the accepter's own receipt page gives it),
  each idea with its attachments, the decision log, the CSV and JSON above, and
  ``manifest.json`` listing every other file's SHA-256 and size, so a lawyer can check that
  nothing was altered.

Everything starts from the policy: the ideas are ``visible(user, Idea)`` (sealed ideas only
for those who may open them, and their opening is logged in the sealed-view log like any
other), attachments ``can(user, "view", att)``, receipts ``receipt_exportable``, the decision
log as the requester may read it. An export never holds more than its requester may see.
The bundle is built in an anonymous temporary file: a failure leaves no file behind.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from typing import Any

from sqlalchemy import select
from werkzeug.utils import secure_filename

from .. import policy
from ..extensions import db
from ..models import (
    AuditEvent,
    ChallengeTerms,
    Idea,
    IdeaScore,
    Item,
    RoundScore,
    TermsAcceptance,
    User,
    utcnow,
)
from ..moderation import decisions
from ..policy.judging import receipt_exportable, rounds_of
from ..services import attachments as files_svc
from ..services import ideas as ideas_svc
from ..services import judging as judging_svc
from ..services import terms as terms_svc
from ..services.common import ServiceError
from . import csvsafe

EXPORT_SCHEMA = "marketplace.challenge-export/1"


def _ts(dt) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt is not None else None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def exportable_ideas(user: Any, challenge: Item) -> list[Idea]:
    return db.session.execute(policy.visible(user, Idea).where(Idea.challenge_id == challenge.id)
                              .order_by(Idea.id)).scalars().all()


def exportable_receipts(user: Any, challenge: Item) -> list[TermsAcceptance]:
    v = policy.viewer_for(user)
    rows = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.challenge_id == challenge.id)
                              .order_by(TermsAcceptance.id)).scalars().all()
    return [a for a in rows if receipt_exportable(v, challenge, a)]


def _judge_names(user: Any, challenge: Item, ids: set[int]) -> dict[int, str]:
    """Judges are named to whoever may see reviewers' names; otherwise "judge N"."""
    if not ids:
        return {}
    ordered = sorted(ids)
    if policy.can(user, "view_reviewer_names", challenge):
        names = {u.id: u.display_name for u in db.session.execute(select(User).where(User.id.in_(ordered))).scalars()}
        return {i: names.get(i, f"judge {n + 1}") for n, i in enumerate(ordered)}
    return {i: f"judge {n + 1}" for n, i in enumerate(ordered)}


def export_data(user: Any, challenge: Item) -> dict:
    """The export as one JSON-able dict (also the source of the CSV)."""
    ideas = exportable_ideas(user, challenge)
    receipts = exportable_receipts(user, challenge)
    by_idea: dict[int | None, list[TermsAcceptance]] = {}
    for a in receipts:
        by_idea.setdefault(a.idea_id, []).append(a)
    rounds = rounds_of(challenge.id)
    results = {r.id: {res.idea.id: res for res in judging_svc.round_results(r, ideas)} for r in rounds}
    judge_ids: set[int] = set()
    raw_scores: dict[int, list] = {}
    for r in rounds:
        for s in db.session.execute(select(RoundScore).where(RoundScore.round_id == r.id,
                                                             RoundScore.idea_id.in_([i.id for i in ideas] or [0]))
                                    .order_by(RoundScore.idea_id, RoundScore.judge_id, RoundScore.criterion_id)
                                    ).scalars():
            raw_scores.setdefault(s.idea_id, []).append(s)
            judge_ids.add(s.judge_id)
    flat = {}
    if not rounds:
        for i in ideas:
            flat[i.id] = db.session.execute(select(IdeaScore).where(IdeaScore.idea_id == i.id)
                                            .order_by(IdeaScore.reviewer_id, IdeaScore.criterion_id)).scalars().all()
            judge_ids |= {s.reviewer_id for s in flat[i.id]}
    names = _judge_names(user, challenge, judge_ids)
    crit_names = {c.id: c.name for r in rounds for c in r.criteria}
    flat_crit = {c.id: c.name for c in ideas_svc.criteria_of(challenge.id)}
    where = judging_svc.current_rounds(challenge.id, ideas)
    out_ideas = []
    for idea in ideas:
        award = ideas_svc.award_of(idea)
        now_in = where[idea.id]
        entry: dict[str, Any] = {
            "id": idea.id, "title": idea.title, "summary": idea.summary, "status": idea.status,
            "confidentiality": idea.confidentiality, "revision": idea.revision,
            "content_sha256": idea.content_hash, "submitted_at": _ts(idea.submitted_at),
            "authors": [{"name": a.user.display_name if a.user else None, "status": a.status}
                        for a in idea.authors if a.status in policy.IDEA_VISIBLE_AUTHOR_STATES],
            "current_round": now_in.name if now_in is not None else None,
            "decision": {"status": idea.status, "decided_at": _ts(idea.decided_at), "reason": idea.decision_reason},
            "award": {"incentive": award.incentive, "awarded_at": _ts(award.created_at),
                      "paid_at": _ts(award.paid_at)} if award is not None else None,
            "rounds": [],
            "receipts": [{"acceptance_id": a.id, "purpose": a.purpose, "terms_version": a.terms_version,
                          "terms_digest": a.terms_digest, "idea_revision": a.idea_revision,
                          "content_sha256": a.content_hash, "accepted_at": _ts(a.accepted_at),
                          "accepted_by": a.user.display_name if a.user else None}
                         for a in by_idea.get(idea.id, [])],
        }
        for r in rounds:
            res = results[r.id].get(idea.id)
            entry["rounds"].append({
                "round": r.name, "position": r.position,
                "raw_mean": _round(res.raw_mean) if res else None,
                "normalised_mean": _round(res.z_mean) if res else None,
                "judges": [{"judge": names.get(j), "weighted_total": _round(t), "z": _round(res.z[j])}
                           for j, t in sorted(res.per_judge.items())] if res else [],
                "scores": [{"judge": names.get(s.judge_id), "criterion": crit_names.get(s.criterion_id),
                            "score": s.score} for s in raw_scores.get(idea.id, []) if s.round_id == r.id],
            })
        if not rounds:
            summary = ideas_svc.score_summary(idea)
            entry["rounds"].append({
                "round": "review", "position": 1, "raw_mean": _round(summary["weighted"]), "normalised_mean": None,
                "judges": [], "scores": [{"judge": names.get(s.reviewer_id), "criterion": flat_crit.get(s.criterion_id),
                                          "score": s.score} for s in flat.get(idea.id, [])]})
        out_ideas.append(entry)
    return {
        "schema": EXPORT_SCHEMA,
        "challenge": {"id": challenge.id, "title": challenge.title, "status": challenge.status},
        "generated_at": _ts(utcnow()),
        "normalisation": judging_svc.NORMALISATION_METHOD,
        "rounds": [{"name": r.name, "position": r.position, "starts_at": _ts(r.starts_at), "ends_at": _ts(r.ends_at),
                    "advance_count": r.advance_count,
                    "criteria": [{"name": c.name, "weight": c.weight} for c in r.criteria]} for r in rounds],
        "ideas": out_ideas,
        "nda_receipts": [{"acceptance_id": a.id, "terms_version": a.terms_version, "terms_digest": a.terms_digest,
                          "accepted_at": _ts(a.accepted_at), "accepted_by": a.user.display_name if a.user else None}
                         for a in by_idea.get(None, [])],
    }


def export_json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_csv(data: dict) -> str:
    """One row per idea; per round its raw and normalised means and judges; decisions; receipts."""
    round_names = [r["name"] for r in data["rounds"]] or ["review"]
    header = ["idea_id", "title", "status", "confidentiality", "content_sha256", "submitted_at", "authors",
              "current_round"]
    for n in round_names:
        header += [f"{n}: raw mean (0-10)", f"{n}: normalised mean (z)", f"{n}: judges"]
    header += ["decided_at", "decision_reason", "award", "receipts"]
    rows = []
    for i in data["ideas"]:
        row = [i["id"], i["title"], i["status"], i["confidentiality"], i["content_sha256"], i["submitted_at"],
               "; ".join(f"{a['name']} ({a['status']})" for a in i["authors"]), i["current_round"]]
        per = {r["round"]: r for r in i["rounds"]}
        for n in round_names:
            r = per.get(n)
            row += [r["raw_mean"] if r else None, r["normalised_mean"] if r else None,
                    len(r["judges"]) if r and r["judges"] else (len({s["judge"] for s in r["scores"]}) if r else 0)]
        award = i["award"]
        row += [i["decision"]["decided_at"], i["decision"]["reason"],
                terms_svc.describe_incentive(award["incentive"]) if award else None,
                "; ".join(f"#{a['acceptance_id']} {a['purpose']} v{a['terms_version']} {a['terms_digest']} "
                          f"{a['accepted_at']}" for a in i["receipts"])]
        rows.append(row)
    return csvsafe.to_csv(header, rows)


# --------------------------------------------------------------------------- the evidence bundle


def _decision_log(user: Any, challenge: Item) -> list[dict]:
    entries = decisions.decision_log(user, challenge, limit=100_000)
    hashes = dict(db.session.execute(select(AuditEvent.id, AuditEvent.hash).where(
        AuditEvent.id.in_([e.id for e in entries] or [0]))).all())
    return [{"audit_event_id": e.id, "audit_hash": hashes.get(e.id), "when": _ts(e.when), "who": e.who,
             "category": e.category, "what": e.what, "why": e.why, "detail": e.detail} for e in entries]


def build_bundle(user: Any, challenge: Item):
    """The evidence bundle as an open anonymous temporary file, positioned at 0. The caller
    sends (and so closes, and so deletes) it; on any error nothing is left on disk."""
    if not policy.can(user, "export_ideas", challenge):
        raise ServiceError("Only the challenge's organisation admins export it.", 403)
    tmp = tempfile.TemporaryFile(suffix=".zip")
    try:
        files: list[dict] = []
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            def put(path: str, data: bytes) -> None:
                z.writestr(path, data)
                files.append({"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})

            data = export_data(user, challenge)
            put("ideas.json", export_json(data).encode())
            put("ideas.csv", export_csv(data).encode())
            terms = db.session.execute(select(ChallengeTerms).where(ChallengeTerms.challenge_id == challenge.id)
                                       .order_by(ChallengeTerms.version)).scalars().all()
            index = []
            for t in terms:
                put(f"terms/v{t.version}.json", t.canonical.encode())
                index.append({"version": t.version, "digest": t.digest, "file": f"terms/v{t.version}.json",
                              "digest_matches_canonical": terms_svc.terms_digest_ok(t),
                              "created_at": _ts(t.created_at)})
            put("terms/digests.json", export_json({"algorithm": "sha256 of the canonical JSON", "versions": index})
                .encode())
            for a in exportable_receipts(user, challenge):
                put(f"receipts/receipt-{a.id}.json", (terms_svc.receipt_json(a) + "\n").encode())
            for idea in exportable_ideas(user, challenge):
                ideas_svc.log_sealed_view(user, idea, "evidence bundle")
                payload = ideas_svc.idea_payload(idea)
                payload["revisions"] = [{"number": r.number, "content_sha256": r.content_hash,
                                         "terms_version": r.terms.version if r.terms else None,
                                         "created_at": _ts(r.created_at)} for r in ideas_svc.revisions_of(idea)]
                put(f"ideas/{idea.id}/idea.json", export_json(payload).encode())
                for att in idea.current_attachments:
                    if not policy.can(user, "view", att):
                        continue
                    try:
                        with files_svc.open_stored(att.stored_name) as fh:
                            blob = fh.read()
                    except (ServiceError, OSError):
                        continue  # a missing file is shown by its absence from the manifest
                    name = secure_filename(att.filename) or "file"
                    put(f"ideas/{idea.id}/files/{att.id}-{name}", blob)
            put("decision_log.json", export_json({"challenge_id": challenge.id,
                                                  "entries": _decision_log(user, challenge)}).encode())
            manifest = {"schema": "marketplace.evidence-bundle/1", "challenge_id": challenge.id,
                        "challenge_title": challenge.title, "generated_at": _ts(utcnow()),
                        "algorithm": "sha256", "files": files,
                        "note": "Each file's SHA-256 over its bytes in this archive; terms digests are over the "
                                "canonical JSON (terms/digests.json); receipts carry their own signature."}
            z.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        tmp.seek(0)
        return tmp
    except BaseException:
        tmp.close()
        raise

