"""Builds the extraction fidelity fixtures: one small file per format whose every visible sentence
carries a unique marker, plus markers that must NOT come out (scripts, styles, hidden elements,
deleted revisions, running headers, comments).

    .venv/bin/python -m rag.tests.fidelity_fixtures OUTDIR    # writes the files, prints the expectations

``build(folder)`` writes them and returns ``{file name: Expectation}``; rag/tests/test_fidelity.py
ingests each and checks that every marker is in exactly one chunk, in order, under its section.
Nothing here is downloaded or copied: DOCX is built with python-docx plus raw WordprocessingML, PDF
is written object by object and protected with pypdf.
"""
from __future__ import annotations

import io
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Expectation:
    """``markers``: (marker, section or page) in reading order; ``absent``: markers that must not appear;
    ``words``: normalised words that must appear (hygiene: ligatures, accents, soft hyphens)."""

    markers: list[tuple[str, str | int]]
    absent: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    title: str = ""


def _html() -> tuple[str, Expectation]:
    html = """<!doctype html><html><head><title>Site | HTML page</title>
<style>.hidden { display: none } /* HXABSENT01 */</style>
<script>var secret = "HXABSENT02";</script></head>
<body><nav><a href="/">Home</a></nav>
<h1>HTML fidelity</h1>
<div>Text sitting directly in a div HX01.</div>
<section>Section text before a paragraph HX02.<p>A paragraph inside the section HX03.</p>Tail text after it HX04.</section>
<span>A loose span outside any block HX05.</span> <b>Bold text HX06</b> then plain text.
<h2>Details and lists</h2>
<details><summary>Summary line HX07</summary><div>Text shown when opened HX08.</div></details>
<ul><li>First item HX09<ul><li>Nested item HX10</li></ul></li><li>Second item HX11</li></ul>
<ol start="3"><li>Third step HX12</li><li>Fourth step HX13</li></ol>
<div hidden>HXABSENT03</div><div style="display: none">HXABSENT04</div><template><p>HXABSENT05</p></template>
<span aria-hidden="true">HXABSENT06</span><!-- HXABSENT07 -->
<h2>Tables and text</h2>
<table><tr><th colspan="3">Plan limits HX14</th></tr><tr><td>Seats HX15</td><td>Storage HX16</td><td>Bots HX17</td></tr></table>
<p>The con\ufb01guration of Zu\u0308rich is in the docu\u00admentation HX18.</p>
<blockquote>A quoted sentence HX19.</blockquote>
<pre>code line HX20</pre>
</body></html>"""
    markers = [(f"HX{n:02d}", "HTML fidelity") for n in range(1, 7)]
    markers += [(f"HX{n:02d}", "Details and lists") for n in range(7, 14)]
    markers += [(f"HX{n:02d}", "Tables and text") for n in range(14, 21)]
    return html, Expectation(markers=markers, absent=[f"HXABSENT{n:02d}" for n in range(1, 8)],
                             words=["configuration", "Zürich", "documentation"], title="HTML fidelity")


def _markdown() -> tuple[str, str, Expectation]:
    md = """---
title: Front matter title
---
# Markdown fidelity

A paragraph with **bold**, `code` and a [link](https://example.com) MX01.
A soft-wrapped second line of the same paragraph MX02.

<div>Raw HTML block in Markdown MX03.</div>

<details>
<summary>Raw summary MX04</summary>

Markdown inside details MX05.

</details>

<script>var x = "MXABSENT01";</script>
<!-- MXABSENT02 -->

## Steps

{start_tabs}

{tab|desktop-web}

{settings_tab|notifications}

1. First step MX06.

    {!fidelity-include.md!}

1. Second step MX07.

{end_tabs}

!!! tip ""

    An admonition body MX08.

:::note
A Docusaurus note MX09.
:::

{% if user %}Shown to signed-in readers MX10.{% endif %} {{ variable }}{# comment MXABSENT03 #} Text after template tags MX11.
{{< hint >}}Inside a Hugo shortcode MX12.{{< /hint >}}

--8<-- "missing-snippet.md"

## Tables

| Plan | Limit |
| --- | --- |
| Free MX13 | 5 bots MX14 |

![Alt text of an image MX15](image.png)

- Item MX16
  - Nested MX17
- Item MX18

3. Third MX19
4. Fourth MX20
"""
    include = "Included step text MX_INCLUDE.\n"
    markers = [("MX01", "Markdown fidelity"), ("MX02", "Markdown fidelity"), ("MX03", "Markdown fidelity"),
               ("MX04", "Markdown fidelity"), ("MX05", "Markdown fidelity"), ("MX06", "Steps"),
               ("MX_INCLUDE", "Steps"), ("MX07", "Steps"), ("MX08", "Steps"), ("MX09", "Steps"), ("MX10", "Steps"),
               ("MX11", "Steps"), ("MX12", "Steps")] + [(f"MX{n}", "Tables") for n in range(13, 21)]
    return md, include, Expectation(markers=markers, absent=["MXABSENT01", "MXABSENT02", "MXABSENT03"],
                                    title="Markdown fidelity")


def _rst() -> tuple[str, Expectation]:
    rst = """==============
RST fidelity
==============

.. _faq-first:

First question?
===============

Try setting the :setting:`SESSION_COOKIE_DOMAIN` setting RX01. See :attr:`~django.contrib.auth.models.User.is_active`
and :ref:`the documentation <model-admin-methods>` RX02.

.. note::

   A note body RX03.

.. code-block:: python

    print("code RX04")

Second question?
================

============== ===============
Engine RX05    Version RX06
============== ===============
PostgreSQL     14 RX07
============== ===============

Read about Python_ RX08 and :ref:`faq-first` RX09.

.. _Python: https://www.python.org/RXABSENT01

.. versionadded:: 5.0

    New behaviour RX10.

.. toctree::
   :maxdepth: 1

   RXABSENT02
"""
    markers = [("RX01", "First question?"), ("RX02", "First question?"), ("RX03", "First question?"),
               ("RX04", "First question?")]
    markers += [(f"RX{n:02d}", "Second question?") for n in range(5, 11)]
    return rst, Expectation(markers=markers, absent=["RXABSENT01", "RXABSENT02"], title="RST fidelity")


def _docx() -> tuple[bytes, Expectation]:
    import docx
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    document = docx.Document()
    document.core_properties.title = ""
    header = document.sections[0].header.paragraphs[0]
    header.text = "Running header DXABSENT01"
    document.sections[0].footer.paragraphs[0].text = "Running footer DXABSENT02"
    document.add_heading("DOCX fidelity", level=1)
    document.add_paragraph("An ordinary paragraph DX01.")
    body = document.element.body
    sectpr = body[-1]
    sdt = parse_xml(
        f'<w:sdt {nsdecls("w")}><w:sdtPr><w:alias w:val="Field"/></w:sdtPr><w:sdtContent>'
        '<w:p><w:r><w:t>Paragraph inside a content control DX02.</w:t></w:r></w:p></w:sdtContent></w:sdt>')
    sectpr.addprevious(sdt)
    revised = parse_xml(
        f'<w:p {nsdecls("w")}><w:r><w:t xml:space="preserve">Kept text DX03 </w:t></w:r>'
        '<w:ins w:id="1" w:author="a" w:date="2026-01-01T00:00:00Z"><w:r><w:t>with an insertion DX04.</w:t></w:r></w:ins>'
        '<w:del w:id="2" w:author="a" w:date="2026-01-01T00:00:00Z"><w:r><w:delText>Deleted DXABSENT03</w:delText>'
        '</w:r></w:del></w:p>')
    sectpr.addprevious(revised)
    from docx.opc.constants import RELATIONSHIP_TYPE

    link_id = document.part.relate_to("https://example.com/guide", RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    linked = parse_xml(
        f'<w:p {nsdecls("w", "r")}><w:r><w:t xml:space="preserve">Read the </w:t></w:r>'
        f'<w:hyperlink r:id="{link_id}"><w:r><w:t>linked guide DX05</w:t></w:r></w:hyperlink>'
        '<w:sdt><w:sdtContent><w:r><w:t xml:space="preserve"> and an inline control DX06.</w:t></w:r></w:sdtContent></w:sdt>'
        '</w:p>')
    sectpr.addprevious(linked)
    document.add_heading("Plan limits", level=2)
    document.add_paragraph("The table below sits under its own heading DX07.")
    table = document.add_table(rows=4, cols=3)
    table.cell(0, 0).merge(table.cell(0, 2)).text = "Plan limits DX08"
    for column, text in enumerate(["Seats DX09", "Storage DX10", "Bots DX11"]):
        table.cell(1, column).text = text
    table.cell(2, 0).merge(table.cell(3, 0)).text = "Merged down DX12"
    for (row, column), text in zip([(2, 1), (2, 2), (3, 1), (3, 2)], ["DX13", "DX14", "DX15", "DX16"]):
        table.cell(row, column).text = f"Value {text}"
    document.add_heading("After the table", level=2)
    document.add_paragraph("The con\ufb01guration in Zu\u0308rich, docu\u00admentation DX17.")
    document.add_paragraph("First bullet DX18", style="List Bullet")
    document.add_paragraph("Second bullet DX19", style="List Bullet")
    buffer = io.BytesIO()
    document.save(buffer)
    markers = [(f"DX{n:02d}", "DOCX fidelity") for n in range(1, 7)]
    markers += [(f"DX{n:02d}", "Plan limits") for n in range(7, 17)]
    markers += [(f"DX{n:02d}", "After the table") for n in range(17, 20)]
    return buffer.getvalue(), Expectation(markers=markers, absent=[f"DXABSENT{n:02d}" for n in range(1, 4)],
                                          words=["configuration", "Zürich", "documentation"], title="DOCX fidelity")


def pdf_bytes(pages: list[list], *, title: str | None = None, compress: bool = True) -> bytes:
    """A minimal PDF: each page's lines top to bottom (WinAnsi text only). A line is a string (Helvetica 11 pt)
    or (text, standard-14 font name, size in points), e.g. ("Billing", "Helvetica-Bold", 18)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    styled = [[line if isinstance(line, tuple) else (line, "Helvetica", 11) for line in lines] for lines in pages]
    names = list(dict.fromkeys(font for lines in styled for _, font, _ in lines)) or ["Helvetica"]
    fonts = {name: add(b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>"
                       % name.encode()) for name in names}
    resources = b" ".join(b"/F%d %d 0 R" % (i, fonts[name]) for i, name in enumerate(names, start=1))
    page_ids = []
    pages_id = len(objects) + 2 * len(pages) + 1
    for lines in styled:
        ops = ["BT", "72 770 Td"]
        for line, font, size in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"/F{names.index(font) + 1} {size:g} Tf {size * 1.3:g} TL ({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252")
        if compress:
            stream = zlib.compress(stream)
            content = add(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
        else:
            content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                            b"/Resources << /Font << %s >> >> >>" % (pages_id, content, resources)))
    add(b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % i for i in page_ids) + b"] /Count %d >>" % len(pages))
    assert len(objects) == pages_id
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    info = add(b"<< /Title (" + title.encode("latin-1") + b") >>") if title is not None else None
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info:
        trailer += b" /Info %d 0 R" % info
    out.write(b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _pdf() -> tuple[bytes, Expectation]:
    import pypdf

    pages = []
    markers: list[tuple[str, str | int]] = []
    words = iter(["Invoices are sent monthly", "Refunds take five days", "Admins manage seats",
                  "Exports run at night", "Passwords expire yearly", "Guests cannot invite",
                  "Backups are encrypted", "Channels can be archived", "Reports open in a new tab"])
    for page in range(1, 4):
        lines = ["ACME Handbook PXABSENT01"]
        for n in range(1, 4):
            marker = f"PX{page}{n}"
            lines.append(f"{next(words)} {marker}.")
            markers.append((marker, page))
        lines.append(f"Page {page} of 3 PXABSENT02")
        pages.append(lines)
    pages[1][2:2] = ["The configu-", "ration is described here PX2H."]
    markers.insert(4, ("PX2H", 2))
    plain = pdf_bytes(pages, title="Owner\x00 protected PDF")
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(plain)))
    writer.add_metadata({"/Title": "PDF\x00 fidelity"})
    writer.encrypt(user_password="", owner_password="owner-secret", permissions_flag=0b0100)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue(), Expectation(markers=markers, absent=["PXABSENT01", "PXABSENT02"],
                                          words=["configuration"], title="PDF fidelity")


def _text() -> tuple[str, Expectation]:
    text = ("Plain text fidelity\n===================\n\nA first paragraph TX01\nwrapped over two lines TX02.\n\n"
            "Second heading\n--------------\n\nText under the second heading TX03.\n")
    return text, Expectation(markers=[("TX01", "Plain text fidelity"), ("TX02", "Plain text fidelity"),
                                      ("TX03", "Second heading")], title="Plain text fidelity")


def build(folder: Path) -> dict[str, Expectation]:
    """Write the fixtures into ``folder``; returns file name -> what extraction must keep."""
    folder.mkdir(parents=True, exist_ok=True)
    expectations: dict[str, Expectation] = {}
    html, expected = _html()
    (folder / "fidelity.html").write_text(html, encoding="utf-8")
    expectations["fidelity.html"] = expected
    md, include, expected = _markdown()
    (folder / "fidelity.md").write_text(md, encoding="utf-8")
    (folder / "fidelity-include.md").write_text(include, encoding="utf-8")
    expectations["fidelity.md"] = expected
    rst, expected = _rst()
    (folder / "fidelity.rst").write_text(rst, encoding="utf-8")
    expectations["fidelity.rst"] = expected
    data, expected = _docx()
    (folder / "fidelity.docx").write_bytes(data)
    expectations["fidelity.docx"] = expected
    data, expected = _pdf()
    (folder / "fidelity.pdf").write_bytes(data)
    expectations["fidelity.pdf"] = expected
    text, expected = _text()
    (folder / "fidelity.txt").write_text(text, encoding="utf-8")
    expectations["fidelity.txt"] = expected
    return expectations


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fidelity-fixtures")
    for name, expectation in build(out).items():
        print(f"{out / name}: {len(expectation.markers)} markers, {len(expectation.absent)} that must not appear")
