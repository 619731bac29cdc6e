"""Readable field-by-field differences between two versions of a challenge terms sheet or of
a data-sharing agreement sheet (issue 17).

Both kinds of sheet are stored as canonical JSON (marketplace/audit.py canonical_json), so a
diff compares the two stored documents, never the editable rows: what is shown is exactly
what was hashed into each version's digest. Each field has a kind that says how a change
reads: ``text`` (before / after), ``choice`` (a labelled value), ``date``, ``number`` (with
its unit), ``flag`` (yes / no) and ``list`` (entries added and removed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from ..models import Confidentiality, IPModel
from ..models.agreements import EndOfTerm
from ..timezones import format_dt


@dataclass(frozen=True)
class FieldSpec:
    key: str
    label: str
    kind: str  # text | choice | date | number | flag | list
    show: Callable[[Any], str] | None = None  # how one value (or list entry) reads
    unit: str = ""


@dataclass
class FieldChange:
    key: str
    label: str
    kind: str
    before: str = ""
    after: str = ""
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """One line, for mails and plain text."""
        if self.kind == "list":
            parts = [f"added: {'; '.join(self.added)}" if self.added else "",
                     f"removed: {'; '.join(self.removed)}" if self.removed else ""]
            return f"{self.label}: " + ", ".join(p for p in parts if p)
        return f"{self.label}: {self.before or '(none)'} → {self.after or '(none)'}"


def _choice(enum) -> Callable[[Any], str]:
    def show(v: Any) -> str:
        try:
            member = enum(v)
        except ValueError:
            return str(v)
        return getattr(member, "label", None) or member.value.replace("-", " ").capitalize()
    return show


def _date(v: Any) -> str:
    return format_dt(v) if v else "(none)"


def _flag(v: Any) -> str:
    return "yes" if v else "no"


def _incentive(v: Any) -> str:
    from .terms import describe_incentive

    return describe_incentive(v) if isinstance(v, dict) else str(v)


TERMS_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("ip_model", "IP model", "choice", _choice(IPModel)),
    FieldSpec("open_licence", "Open licence", "text"),
    FieldSpec("field_of_use", "Field of use", "text"),
    FieldSpec("territory", "Territory", "text"),
    FieldSpec("licence_duration", "Licence duration", "text"),
    FieldSpec("post_termination_rights", "Post-termination rights", "text"),
    FieldSpec("background_ip", "Background IP", "text"),
    FieldSpec("foreground_ip", "Foreground IP", "text"),
    FieldSpec("dispute_resolution", "Dispute resolution", "text"),
    FieldSpec("governing_law", "Governing law", "text"),
    FieldSpec("confidentiality", "Confidentiality", "choice", _choice(Confidentiality)),
    FieldSpec("reveal_at", "Reveal date", "date", _date),
    FieldSpec("nda_text", "NDA", "text"),
    FieldSpec("incentives", "Incentives", "list", _incentive),
)

SHEET_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("purpose", "Purpose limitation", "text"),
    FieldSpec("allowed_uses", "Allowed uses", "text"),
    FieldSpec("access_roles", "Roles that may access", "list"),
    FieldSpec("duration_days", "Duration", "number", unit="days"),
    FieldSpec("onward_sharing", "Onward sharing allowed", "flag", _flag),
    FieldSpec("end_of_term", "At the end", "choice", _choice(EndOfTerm)),
    FieldSpec("end_of_term_days", "Deletion or return within", "number", unit="days"),
    FieldSpec("confidentiality_days", "Confidentiality after the end", "number", unit="days"),
    FieldSpec("surviving_terms", "Terms surviving the end", "text"),
    FieldSpec("publication_rules", "Publication rules", "text"),
    FieldSpec("personal_data", "Personal data", "flag", _flag),
    FieldSpec("governing_law", "Governing law", "text"),
)


def _show(spec: FieldSpec, v: Any) -> str:
    if spec.kind == "number":
        return "" if v is None else f"{v} {spec.unit}".strip()
    if spec.show is not None:
        return spec.show(v)
    return "" if v is None else str(v)


def diff_documents(before: dict, after: dict, specs: tuple[FieldSpec, ...]) -> list[FieldChange]:
    """The fields whose value differs between two canonical documents, in sheet order."""
    out: list[FieldChange] = []
    for spec in specs:
        a, b = before.get(spec.key), after.get(spec.key)
        if spec.kind == "list":
            a_list = [_show(spec, x) for x in (a or [])]
            b_list = [_show(spec, x) for x in (b or [])]
            added = [x for x in b_list if x not in a_list]
            removed = [x for x in a_list if x not in b_list]
            if added or removed or a_list != b_list:
                out.append(FieldChange(spec.key, spec.label, "list", added=added, removed=removed,
                                       before="; ".join(a_list), after="; ".join(b_list)))
        elif a != b:
            out.append(FieldChange(spec.key, spec.label, spec.kind, before=_show(spec, a), after=_show(spec, b)))
    return out


def diff_terms(old, new) -> list[FieldChange]:
    """Between two ChallengeTerms versions (any order given; read as old -> new)."""
    return diff_documents(json.loads(old.canonical), json.loads(new.canonical), TERMS_FIELDS)


def diff_sheets(old, new) -> list[FieldChange]:
    """Between two DataSharingSheet versions."""
    return diff_documents(json.loads(old.canonical), json.loads(new.canonical), SHEET_FIELDS)
