"""The real help-centre knowledge bases come out as readable text (issues 10 and 11).

Every file of ../shared/data/kb/zulip-help/docs (Markdown with Zulip's macros, and the same articles
converted to DOCX, PDF and HTML with the macros and Markdown kept as literal text) and of
django-faq/docs (reStructuredText with Sphinx roles) is extracted with the other files of its folder
available to include directives, as ingestion does for one upload. No section may hold any markup of
RESIDUE, and sentences known from the sources must survive whole.
"""
import re

import pytest

from rag.extraction import extract

# What a reader would see as markup. Each pattern names what it catches; docs/retrieval.md lists them.
RESIDUE = {
    "Zulip macro": r"\{\s*(?:start_tabs|end_tabs|tab\||settings_tab\||relative\||!)",
    "Jinja/Django/Hugo tag": r"\{%|%\}|\{\{|\}\}|\{#|#\}",
    "container, admonition or snippet line": r"^\s*(?::::|!!!|\?\?\?|-{1,2}8<)",
    "admonition marker in a line": r"(?:!!!|\?\?\?)\s*(?:tip|warn|note|keyboard_tip)\b",
    "Markdown emphasis": r"(?<![@\w*])\*\*\S[^*\n]*\*\*",
    "Markdown link or image": r"!?\[[^\]\n]*\]\([^)\n]*\)",
    "HTML tag": r"</?(?:div|span|p|a|br|kbd|i|b|strong|em|details|summary|table|tr|td|th|img|ul|ol|li|h\d|code|pre)"
                r"\b[^>]*>",
    "RST role": r":[\w:+-]+:`",
    "RST directive or link target": r"^\s*\.\. ",
    "RST table border": r"^\s*=+(?: +=+)+\s*$|^\s*\+[-=+]+\+\s*$",
    "RST section adornment": r"^\s*([=\-~^\"'`#*+])\1{3,}\s*$",
    "double backquotes": r"``",
    "control character or soft hyphen": "[\x00-\x08\x0b-\x1f\u00ad\u200b]",
}
# Sections that show markup as an example of what to type (code blocks: their text is the content).
EXAMPLES = {("share-and-upload-files.html", "What you type")}

KNOWN = {
    "zulip-help": {
        "deactivate-your-account.md": ["Go to Personal settings > Account & privacy.",
                                       "1. Under Account, click Deactivate account.\n2. Approve by clicking Confirm."],
        "delete-a-message.docx": ["Only server administrators can restore deleted messages."],
        "desktop-notifications.html": ["Go to Personal settings > Notifications."],
        "zulip-cloud-billing.pdf": ["Zulip Cloud"],
        "mention-a-user-or-group.md": ["Using the @**topic** mention, you can mention everyone who has previously "
                                       "participated in the topic by sending a message or reacting with an emoji."],
    },
    "django-faq": {
        "admin.txt": ["Try setting the SESSION_COOKIE_DOMAIN setting to match your domain.",
                      "make sure your user account has is_active and is_staff set to True."],
        "install.txt": ["Django version | Python versions\n4.2 | 3.8, 3.9, 3.10, 3.11, 3.12 (added in 4.2.8)"],
    },
}
EMPTY = {("django-faq", "index.txt")}  # a title and a toctree: nothing a reader would read


@pytest.mark.parametrize("kb", ["zulip-help", "django-faq"])
def test_help_centre_documents_extract_without_markup_residue(shared_data, kb):
    folder = shared_data / "kb" / kb / "docs"
    files = sorted(p for p in folder.iterdir() if p.is_file())
    includes = {p.name: p.read_bytes() for p in files if p.suffix == ".md"}
    texts, problems = {}, []
    for path in files:
        if (kb, path.name) in EMPTY:
            continue
        extracted = extract(file_name=path.name, data=path.read_bytes(), includes=includes)
        texts[path.name] = "\n\n".join(s.text for s in extracted.sections)
        for section in extracted.sections:
            if (path.name, section.section) in EXAMPLES:
                continue
            for what, pattern in RESIDUE.items():
                for match in re.finditer(pattern, section.text + "\n" + section.section, re.M | re.I):
                    problems.append(f"{path.name} [{section.section}] {what}: ...{match.string[max(0, match.start() - 40):match.end() + 40]!r}")
    assert not problems, "\n".join(problems[:20])
    for name, sentences in KNOWN[kb].items():
        for sentence in sentences:
            assert sentence in texts[name], (name, sentence)
