"""Ids typed by users (URL parameters, admin paths, command arguments) read as integers, or refused."""
from __future__ import annotations

# At most 18 digits always fits a PostgreSQL bigint (max 9,223,372,036,854,775,807: 19 digits), so a parsed id
# can be given to any query without an out-of-range error.
_MAX_DIGITS = 18


def parse_id(raw: object) -> int | None:
    """``raw`` as a row id if it is 1 to 18 plain ASCII digits ("42"), else None.

    ``str.isdigit()`` alone is not enough: "¹".isdigit() is True but int("¹") raises ValueError, and
    int("٣") (an Arabic-Indic digit) is 3, so an id must be ASCII as well. No sign, spaces or separators
    are accepted; callers strip first if they mean to. ``raw`` may be any object (an admin's ``object_id``
    is a str, a query parameter may be missing): it is read with ``str()``, None gives None.
    """
    if raw is None:
        return None
    text = str(raw)
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        return None
    return int(text)
