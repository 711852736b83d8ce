"""PDF headings from fonts (rag/extraction/pdf.py): a PDF has no heading markup, so a passage was cited as
"page 2" and chosen from the whole page; the zulip-help PDFs' answers came from the wrong part of the page."""
from rag.extraction.core import extract
from rag.tests.fidelity_fixtures import pdf_bytes

BODY = ("Times-Roman", 11)


def _line(text, font="Times-Roman", size=11):
    return (text, font, size)


def test_larger_and_sans_bold_lines_start_sections_and_the_first_is_the_title():
    data = pdf_bytes([[
        _line("Billing guide", "Helvetica-Bold", 18),
        _line("Plans are billed every month for each active user of the organization."),
        _line("Cancel a plan", "Helvetica-Bold", 11),  # body size, but bold in another family than the body's
        _line("1. Click Cancel plan at the bottom of the billing page."),
        _line("flatpak run org.example.App", "Courier", 11),  # a code line: not a heading
        _line("Important words", "Times-Bold", 11),  # bold in the body's own family: emphasis, not a heading
        _line("Guest accounts are billed like members after the first five guests."),
        _line("How are guest accounts billed when they are", "Helvetica-Bold", 14),  # one heading, wrapped
        _line("invited by a member?", "Helvetica-Bold", 14),
        _line("Each guest beyond the free allowance counts as one licence."),
    ]])
    extracted = extract(file_name="billing.pdf", data=data)
    assert extracted.title == "Billing guide"
    sections = [(s.section, s.page) for s in extracted.sections]
    assert sections == [("Billing guide", 1), ("Cancel a plan", 1),
                        ("How are guest accounts billed when they are invited by a member?", 1)]
    cancel = extracted.sections[1].text
    assert "flatpak run org.example.App" in cancel and "Important words" in cancel
    assert "Billing guide" not in extracted.sections[0].text  # the heading is not glued to its paragraph


def test_a_pdf_in_one_font_and_size_has_no_headings():
    data = pdf_bytes([["Refund policy", "Refunds are paid within five days.", "Short line"]])
    extracted = extract(file_name="plain.pdf", data=data)
    assert [s.section for s in extracted.sections] == [""]
    assert extracted.sections[0].text.startswith("Refund policy")
