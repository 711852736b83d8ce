"""The text contract of extraction (rag.extraction.base.Section), format by format, and text hygiene.

These call ``rag.extraction.extract`` in-process (no database): what a chunk shows an end user.
"""
import io

import pytest

from rag.extraction import extract, hygiene


def sections(name: str, text: str | bytes, **kwargs) -> list[tuple[str, str]]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return [(s.section, s.text) for s in extract(file_name=name, data=data, **kwargs).sections]


def test_markdown_lists_tables_and_paragraphs_follow_the_contract():
    md = ("# Guide\n\nA paragraph that is\nsoft wrapped, with **bold**, `code` and a [link](https://x.example).\n\n"
          "3. Third step\n4. Fourth step\n\n   Continuation of the fourth.\n\n   - nested bullet\n     - deeper\n\n"
          "| Plan | Seats |\n| --- | --- |\n| Free | 5 |\n\n> A quote.\n\n```\nkeep  this   code\n```\n\n"
          "## Next\n\n![Screenshot of settings](s.png)\n")
    assert sections("g.md", md) == [
        ("Guide", "A paragraph that is soft wrapped, with bold, code and a link.\n\n"
                  "3. Third step\n4. Fourth step\n   Continuation of the fourth.\n  - nested bullet\n    - deeper\n\n"
                  "Plan | Seats\nFree | 5\n\nA quote.\n\nkeep  this   code"),
        ("Next", "Screenshot of settings"),
    ]


def test_markdown_raw_html_is_read_like_html():
    md = ("# Page\n\n<div>Text in a raw div.</div>\n\n<details>\n<summary>Question?</summary>\n\nThe answer.\n\n"
          "</details>\n\nInline <span hidden>secret</span><kbd>Ctrl</kbd> + <kbd>K</kbd> opens search.\n\n"
          "<script>var leak = 1;</script>\n")
    ((section, text),) = sections("p.md", md)
    assert text == "Text in a raw div.\n\nQuestion?\n\nThe answer.\n\nInline Ctrl + K opens search."


def test_html_reads_text_outside_the_old_block_list_and_keeps_order():
    html = ("<html><head><title>T</title><style>p{}</style></head><body><h1>Title</h1><div>Direct div text"
            "<section>Nested section <span>span</span></section></div><p>Para<br>after break</p>"
            "<ol start='5'><li>Five</li><li>Six<p>More about six.</p></li></ol>"
            "<table><tr><td rowspan='2'>Merged</td><td>a</td></tr><tr><td>b</td></tr></table>"
            "<div style='display:none'>hidden</div><h2>Second</h2>Loose body text</body></html>")
    assert sections("p.html", html) == [
        ("Title", "Direct div text\n\nNested section span\n\nPara after break\n\n5. Five\n6. Six\n   More about six."
                  "\n\nMerged | a\nb"),
        ("Second", "Loose body text"),
    ]


def test_rst_roles_tables_targets_and_directives_become_text():
    rst = (".. _intro:\n\nIntro\n=====\n\nSet :setting:`SESSION_COOKIE_DOMAIN` and :attr:`~a.b.User.is_active`; "
           "see :ref:`the docs <x>` and :ref:`intro`. Read Python_.\n\n.. _Python: https://www.python.org/\n\n"
           "====== =======\nEngine Version\n====== =======\nSQLite 3.31\n====== =======\n\n"
           ".. code-block:: python\n    :linenos:\n\n    x = 1\n\n.. note:: Noted.\n\n.. toctree::\n\n   other\n")
    assert sections("f.rst", rst) == [
        ("Intro", "Set SESSION_COOKIE_DOMAIN and is_active; see the docs and Intro. Read Python.\n\n"
                  "Engine | Version\nSQLite | 3.31\n\nx = 1\n\nNoted.")]


def test_rst_in_a_txt_file_is_parsed_and_plain_text_stays_plain():
    assert sections("faq.txt", "Q?\n==\n\nUse :class:`~django.db.models.Model`.\n") == [("Q?", "Use Model.")]
    assert sections("notes.txt", "Opening hours\n\nWe open at nine\nand close at five.\n\n- Mondays\n- Fridays\n") \
        == [("", "Opening hours\n\nWe open at nine and close at five.\n\n- Mondays\n- Fridays")]


def test_docx_tables_stay_in_place_and_merged_cells_are_written_once():
    import docx

    document = docx.Document()
    document.add_heading("Limits", level=1)
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 2)).text = "Plan limits"
    for column, text in enumerate(["Seats", "Storage", "Bots"]):
        table.cell(1, column).text = text
    document.add_heading("Later", level=1)
    document.add_paragraph("After the table.")
    buffer = io.BytesIO()
    document.save(buffer)
    assert sections("t.docx", buffer.getvalue()) == [("Limits", "Plan limits\nSeats | Storage | Bots"),
                                                     ("Later", "After the table.")]


def test_hygiene_normalises_what_users_cannot_type():
    assert hygiene.clean("con\ufb01guration Zu\u0308rich docu\u00admentation a\x00b\u200bc\u00a0d") == \
        "configuration Zürich documentation abc d"
    assert hygiene.clean("  indented  keeps\tits  start\n\n\n\nnext") == "indented keeps its start\n\nnext"
    assert hygiene.join_lines("configu-\nration and well-\nKnown and soft\u00ad\nhyphen") == \
        "configuration and well-Known and softhyphen"
    assert hygiene.clean_line("Title\x00 with\nbreak") == "Title with break"
    # What an icon leaves behind goes; code keeps its parentheses.
    assert hygiene.clean("Click the pencil ( ) icon.\nOr the () one\nCall f() now") == \
        "Click the pencil icon.\nOr the one\nCall f() now"
    assert hygiene.clean("print( () )", code=True) == "print( () )"


def test_bidi_overrides_cannot_make_an_answer_read_otherwise_than_its_source():
    """An RLO (U+202E) in a document would show "Refunds take 41 days" as written backwards in the bot's answer;
    embedding, override and isolate controls go, the direction marks and RTL text stay."""
    text = "Refunds take \u202e14\u202c days. \u2067\u05e9\u05dc\u05d5\u05dd\u2069 \u200fok\u200e \u05e9\u05dc\u05d5\u05dd"
    assert hygiene.clean(text) == "Refunds take 14 days. \u05e9\u05dc\u05d5\u05dd \u200fok\u200e \u05e9\u05dc\u05d5\u05dd"
    html = "<h1>Refunds</h1><p>Refunds take \u202e14\u202c days.</p>".encode()
    (section,) = extract(file_name="refunds.html", data=html).sections
    assert section.text == "Refunds take 14 days."


@pytest.mark.parametrize("name,data,code", [
    ("empty.md", b"<!-- nothing -->\n", "document_empty"),
    ("bin.txt", b"\x00\x01\x02" * 10, "document_unreadable"),
    ("broken.docx", b"PK\x03\x04 not really", "document_unreadable"),
    ("broken.pdf", b"%PDF-1.4 garbage", "document_unreadable"),
])
def test_unreadable_files_get_coded_errors(name, data, code):
    from rag.extraction import UnreadableDocument

    with pytest.raises(UnreadableDocument) as error:
        extract(file_name=name, data=data)
    assert error.value.code == code
    if name == "broken.pdf":  # said in words first; the parser's own words come last, for support
        assert error.value.message.startswith("'broken.pdf' could not be read: it is damaged or not a PDF file")
