"""CSV cells a spreadsheet will not run: every CSV the product writes goes through here.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab, carriage return or line feed before one)
is read by Excel, LibreOffice and Google Sheets as a formula (CSV injection: ``=HYPERLINK(...)``,
``=cmd|' /C calc'!A0``). End users' Telegram text and names reach our exports, so text cells are
neutralised by OWASP's rule (OWASP, "CSV Injection"): a cell that begins with one of those characters
is prefixed with a single quote, which spreadsheets show as text, and the csv module quotes cells with
separators or quotes. Numbers (int, float, Decimal) are written as they are: ``-12`` is a value, not
a formula, and a neutralised number would no longer sum.
"""
from __future__ import annotations

import csv
from decimal import Decimal
from typing import IO, Any, Iterable

# OWASP "CSV Injection": = + - @, tab (0x09), carriage return (0x0D); line feed (0x0A) and the
# full-width forms, which some spreadsheet locales also read as formula starts.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: Any) -> Any:
    """The value as a safe CSV cell: None -> "", numbers unchanged, any other value as text with a leading
    ``'`` when it starts with a character in ``FORMULA_STARTS``."""
    if value is None:
        return ""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_row(values: Iterable[Any]) -> list[Any]:
    """``csv_cell`` for every value of a row."""
    return [csv_cell(v) for v in values]


class SafeWriter:
    """``csv.writer`` whose rows go through ``csv_row`` (``writerow`` / ``writerows``)."""

    def __init__(self, stream: IO[str], **kwargs: Any) -> None:
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, values: Iterable[Any]) -> Any:
        return self._writer.writerow(csv_row(values))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def rows_to_csv_text(rows: list[dict]) -> str:
    """CSV text for a list of flat dicts (header from the first row's keys), every cell through ``csv_cell``."""
    import io

    if not rows:
        return ""
    out = io.StringIO()
    writer = SafeWriter(out)
    fields = list(rows[0])
    writer.writerow(fields)
    for row in rows:
        writer.writerow(row.get(f) for f in fields)
    return out.getvalue()
