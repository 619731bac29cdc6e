"""Time zones: how times are shown and how local times typed into forms become UTC.

* Every time is stored in UTC (models.base.UTCDateTime).
* Every time *shown* is in the viewer's time zone with its abbreviation
  (``2025-06-01 17:00 CEST``): signed-in people choose an IANA zone (filled in from the
  browser when they register, changeable on the account page); anonymous visitors see the
  site default (``DEFAULT_TIMEZONE``, UTC unless configured). One Jinja filter, ``dt``,
  does it everywhere (``|dt(zone=...)`` shows another zone, e.g. the organisation's).
* Times an organisation *enters* (a challenge's opening and deadline, the reveal date of
  sealed ideas, access and list end dates, participation cut-offs) are read in the
  organisation's own time zone (`LocalDateTimeField`) and stored in UTC.

Daylight-saving changes make some local times impossible and others ambiguous. The
documented choice (README, "Time zones"):

* a time that does not exist (the clocks jump over it, e.g. 02:30 on the last Sunday of
  March in Europe/Paris) is refused with a form error naming the gap;
* a time that happens twice (the clocks go back over it) is refused too, with a form error
  asking for a time outside the repeated hour, *except* when it is the value the field
  already held (re-saving a form unchanged keeps the stored instant, whichever of the two
  it was).
"""
from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime, timedelta, timezone, tzinfo

UTC_NAME = "UTC"
TIME_FORMAT = "%Y-%m-%d %H:%M"
DATE_FORMAT = "%Y-%m-%d"
INPUT_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")


@functools.lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Every IANA zone name this system knows (the system's tz database), sorted, UTC first."""
    names = set(zoneinfo.available_timezones()) - {UTC_NAME}
    return (UTC_NAME, *sorted(n for n in names if "/" in n and not n.startswith(("Etc/", "SystemV/"))))


@functools.lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {UTC_NAME}


def is_valid_zone(name: str | None) -> bool:
    """An IANA zone name zoneinfo can load (never a path or an abbreviation such as CET)."""
    if not name or not isinstance(name, str) or len(name) > 64:
        return False
    if name not in _known():
        return False
    try:
        get_zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def get_zone(name: str | None) -> tzinfo:
    """The tzinfo for a zone name; UTC for UTC (works without a tz database), and for
    anything unknown (a stored value is validated when written, so this is a safety net)."""
    if not name or name == UTC_NAME:
        return timezone.utc
    try:
        return _load(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.utc


@functools.lru_cache(maxsize=256)
def _load(name: str) -> tzinfo:
    return zoneinfo.ZoneInfo(name)


def clean_zone(name: str | None, fallback: str | None = None) -> str:
    """`name` when it is a valid zone, else `fallback` (or the site default)."""
    name = (name or "").strip()
    if is_valid_zone(name):
        return name
    return fallback if fallback is not None else site_default()


def site_default() -> str:
    """DEFAULT_TIMEZONE from the configuration (UTC when unset or invalid)."""
    from flask import current_app, has_app_context

    name = current_app.config.get("DEFAULT_TIMEZONE", UTC_NAME) if has_app_context() else UTC_NAME
    return name if is_valid_zone(name) else UTC_NAME


def viewer_zone_name() -> str:
    """The zone times are shown in for the person asking: theirs when signed in, else the
    site default (also outside a request: CLI, mail written by background work)."""
    from flask import has_request_context

    if has_request_context():
        from flask_login import current_user

        if getattr(current_user, "is_authenticated", False):
            name = getattr(current_user, "timezone", None)
            if is_valid_zone(name):
                return name
    return site_default()


def abbreviation(local: datetime) -> str:
    """CEST, EST, UTC...; zones without a letter abbreviation get UTC+03 / UTC-03:30."""
    abbr = local.strftime("%Z")
    if abbr and abbr[0] not in "+-":
        return abbr
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    hours, mins = divmod(minutes, 60)
    return f"UTC{sign}{hours:02d}" + (f":{mins:02d}" if mins else "")


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def format_dt(value: datetime | str | None, zone: str | None = None, *, date_only: bool = False) -> str:
    """A stored (UTC) time as the viewer reads it: local time and zone abbreviation. An ISO
    8601 string (as quoted from a receipt) is read first; one that is not shows as it is."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    local = as_utc(value).astimezone(get_zone(zone or viewer_zone_name()))
    if date_only:
        return local.strftime(DATE_FORMAT)
    return f"{local.strftime(TIME_FORMAT)} {abbreviation(local)}"


def describe_zone(name: str) -> str:
    """'Europe/Paris (CET/CEST)': a zone's name and the abbreviations it uses this year."""
    tz = get_zone(name)
    year = datetime.now(timezone.utc).year
    abbrs = []
    for month in (1, 7):
        a = abbreviation(datetime(year, month, 1, 12, tzinfo=timezone.utc).astimezone(tz))
        if a not in abbrs:
            abbrs.append(a)
    return name if abbrs == [name] else f"{name} ({'/'.join(abbrs)})"


# --------------------------------------------------------------------------- local input


class LocalTimeError(ValueError):
    """A local time that does not name exactly one instant in its zone (DST gaps and
    repeats); the message says which and what to do."""


def local_to_utc(naive: datetime, zone: str, keep: datetime | None = None) -> datetime:
    """A wall-clock time in `zone` as an aware UTC datetime.

    Raises LocalTimeError for a time the zone skips, and for one it repeats unless `keep`
    (the stored value, UTC) is one of its two instants, which is then returned unchanged.
    """
    if naive.tzinfo is not None:
        return as_utc(naive)
    tz = get_zone(zone)
    if tz is timezone.utc:
        return naive.replace(tzinfo=timezone.utc)
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    when = naive.strftime(TIME_FORMAT)
    if first.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != naive:
        raise LocalTimeError(
            f"{when} does not exist in {zone}: the clocks go forward that night and skip it. "
            "Choose a time outside the skipped hour.")
    if first.utcoffset() != second.utcoffset():
        candidates = {as_utc(first), as_utc(second)}
        if keep is not None and as_utc(keep).replace(second=0, microsecond=0) in {
                c.replace(second=0, microsecond=0) for c in candidates}:
            return as_utc(keep)
        raise LocalTimeError(
            f"{when} happens twice in {zone} ({abbreviation(first)} and then {abbreviation(second)}): "
            "the clocks go back that night. Choose a time outside the repeated hour.")
    return as_utc(first)


def utc_to_local_input(value: datetime | None, zone: str) -> str:
    """A stored time as a datetime-local input value in `zone`."""
    if value is None:
        return ""
    return as_utc(value).astimezone(get_zone(zone)).strftime("%Y-%m-%dT%H:%M")


def parse_local(raw: str) -> datetime:
    """A datetime-local value (or 'YYYY-MM-DD HH:MM'), naive; ValueError if it is none."""
    raw = (raw or "").strip()
    for fmt in INPUT_FORMATS:
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            continue
    raise ValueError("Not a valid datetime value. Enter a date and time such as 2025-06-01 17:00.")
