"""Hostile files for the extraction bounds: tests build small ones, bench/hostile_documents.py the issue's sizes.

Each is made here, in memory, from nothing downloaded: a DOCX ZIP bomb, a DOCX of millions of
paragraphs, a PDF whose pages all share one huge content stream, an HTML page of nested ``div``s.
"""
from __future__ import annotations

import io
import zipfile
import zlib

_CONTENT_TYPES = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                  b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                  b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                  b'<Default Extension="xml" ContentType="application/xml"/>'
                  b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                  b'wordprocessingml.document.main+xml"/></Types>')
_RELS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
         b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
         b'officeDocument" Target="word/document.xml"/></Relationships>')
_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
         b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
_TAIL = b"</w:body></w:document>"


def _docx(body_pieces, *, piece_count: int) -> bytes:
    """A minimal DOCX whose word/document.xml is _HEAD + ``piece_count`` × next(body_pieces) + _TAIL, streamed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(_HEAD)
            for _ in range(piece_count):
                member.write(next(body_pieces))
            member.write(_TAIL)
    return buffer.getvalue()


def docx_zip_bomb(inflated_bytes: int) -> bytes:
    """A DOCX whose document.xml inflates to about ``inflated_bytes`` (one paragraph of one long run)."""
    block = b"A" * (1 << 20)

    def pieces():
        yield b"<w:p><w:r><w:t>"
        while True:
            yield block

    generator = pieces()
    count = max(1, inflated_bytes // len(block))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(_HEAD)
            member.write(next(generator))
            for _ in range(count):
                member.write(next(generator))
            member.write(b"</w:t></w:r></w:p>" + _TAIL)
    return buffer.getvalue()


def docx_many_paragraphs(count: int) -> bytes:
    """A DOCX of ``count`` near-empty paragraphs (the 2.86-million-paragraph file of issue 11)."""
    batch = 1000
    piece = b"<w:p><w:r><w:t>x</w:t></w:r></w:p>" * batch

    def pieces():
        while True:
            yield piece

    return _docx(pieces(), piece_count=max(1, count // batch))


def pdf_shared_stream(pages: int, stream_bytes: int) -> bytes:
    """A PDF of ``pages`` pages that all draw one content stream of ``stream_bytes`` (decoded) bytes."""
    line = b"BT /F1 9 Tf 72 720 Td (shared stream text) Tj ET\n"
    raw = line * max(1, stream_bytes // len(line))
    compressed = zlib.compress(raw, 9)
    objects = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(compressed) + compressed + b"\nendstream"]
    pages_id = 3 + pages
    kids = []
    for _ in range(pages):
        objects.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents 2 0 R "
                       b"/Resources << /Font << /F1 1 0 R >> >> >>" % pages_id)
        kids.append(len(objects))
    objects.append(b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % pages)
    objects.append(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
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
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, len(objects), xref))
    return out.getvalue()


def html_nested_divs(total_bytes: int) -> bytes:
    """An HTML page of about ``total_bytes`` made of nested ``div``s around a little text."""
    depth = max(1, total_bytes // 11)
    return b"<html><body>" + b"<div>" * depth + b"Deep text." + b"</div>" * depth + b"</body></html>"


def html_nested_div_forest(total_bytes: int, depth: int = 1000) -> bytes:
    """About ``total_bytes`` of HTML made of many ``div`` trees ``depth`` levels deep, each around a sentence
    (deep enough to hurt a recursive reader, shallow enough for libxml2 to read all of it)."""
    tree = b"<div>" * depth + b"Deep sentence number %d." + b"</div>" * depth
    count = max(1, total_bytes // len(tree))
    return b"<html><body>" + b"".join(tree.replace(b"%d", str(n).encode()) for n in range(count)) + b"</body></html>"


def docx_text_paragraphs(count: int) -> bytes:
    """A DOCX of ``count`` paragraphs of ordinary text, a "Heading2" every 50 (a long manual)."""
    def pieces():
        number = 0
        while True:
            heading = (b'<w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Part %d</w:t></w:r></w:p>'
                       % (number // 50) if number % 50 == 0 else b"")
            yield heading + (b"<w:p><w:r><w:t>Paragraph %d holds an ordinary sentence of a long manual.</w:t>"
                             b"</w:r></w:p>" % number)
            number += 1

    return _docx(pieces(), piece_count=count)
