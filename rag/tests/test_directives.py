"""The one list of template directives (rag/extraction/directives.py), row by row."""
import pytest

from rag.extraction import extract


def text_of(name: str, source: str, includes=None) -> str:
    extracted = extract(file_name=name, data=source.encode("utf-8"), includes=includes)
    return "\n\n".join(s.text for s in extracted.sections)


@pytest.mark.parametrize("source,expected", [
    ("{start_tabs}\n\n{tab|desktop-web}\n\n1. Click it.\n\n{tab|mobile}\n\n1. Tap it.\n\n{end_tabs}\n",
     "Desktop/Web:\n\n1. Click it.\n\nMobile:\n\n1. Tap it."),
    ("{settings_tab|notifications}\n\n1. Toggle it.\n", "Go to Personal settings > Notifications.\n\n1. Toggle it."),
    ("{settings_tab|some-new-page}\n", "Go to the Some new page settings."),
    # Zulip's help_settings_links.py: "bots" is the organization's page, "your-bots" the personal one.
    ("{tab|via-organization-settings}\n\n{settings_tab|bots}\n", "Via organization settings:\n\nGo to Organization settings > Bots."),
    ("{settings_tab|your-bots}\n", "Go to Personal settings > Bots."),
    ("{settings_tab|data-exports-admin}\n", "Go to Organization settings > Data exports."),
    ("Click the download (<i class=\"fa fa-download\"></i>) icon, then call `f()`.\n",
     "Click the download icon, then call f()."),
    ("{relative|channel|all}\n", "Go to All channels."),
    ("Before.\n\n{!missing.md!}\n\nAfter.\n", "Before.\n\nAfter."),
    ("{% if user %}Shown.{% endif %} {{ name }}{# note #} Text.\n", "Shown. Text."),
    ("{{< hint info >}}Inside a shortcode.{{< /hint >}}\n{{% note %}}Also.{{% /note %}}\n",
     "Inside a shortcode. Also."),
    (':::tip[Good to know]\nA tip.\n:::\n\n:::note\nA note.\n:::\n', "Good to know\n\nA tip.\n\nA note."),
    ('!!! warn ""\n\n    Careful **now**.\n\n!!! note "Heads up"\n    Body.\n', "Careful now.\n\nHeads up\n\nBody."),
    ('Intro.\n\n--8<-- "missing.md"\n\n--8<--\nalso-missing.md\n--8<--\n\nEnd.\n', "Intro.\n\nEnd."),
    ("{: .note}\nKramdown.\n{:toc}\n", "Kramdown."),
    ("---\ntitle: From front matter\ntags: [a]\n---\nBody.\n", "Body."),
    ("```\n{% raw %}{{ kept in code }}{% endraw %}\n```\n", "{% raw %}{{ kept in code }}{% endraw %}"),
])
def test_markdown_directives_are_resolved_or_removed(source, expected):
    assert text_of("page.md", source) == expected


def test_includes_resolve_from_the_given_files_indented_where_they_stand():
    source = "1. First.\n\n    {!step.md!}\n\n1. Last.\n\n--8<-- \"snippet.md\"\n"
    includes = {"step.md": b"Included **step** text.\n", "snippet.md": "A snippet {!nested.md!}\n",
                "nested.md": b"nested."}
    assert text_of("page.md", source, includes) == "1. First.\n   Included step text.\n2. Last.\n\nA snippet nested."


def test_front_matter_title_is_the_title_when_there_is_no_heading():
    assert extract(file_name="x.md", data=b"---\ntitle: 'Plans'\n---\nBody.\n").title == "Plans"


def test_other_formats_lose_directives_and_literal_markdown():
    html = ("<h1>Page</h1><p>{start_tabs}</p><p>{tab|desktop-web}</p><p>{settings_tab|account-and-privacy}</p>"
            "<p>Open [the menu](/help/menu) and press <code>`Ctrl`</code> **now**.</p><p>!!! tip \"\"</p>"
            "<pre><code>A tip body that\nwraps.</code></pre><p>{!missing.md!}</p><p>{end_tabs}</p>"
            "<pre>{{ code stays }}</pre>")
    assert text_of("page.html", html) == ("Desktop/Web:\n\nGo to Personal settings > Account & privacy.\n\n"
                                          "Open the menu and press Ctrl now.\n\nA tip body that wraps.\n\n"
                                          "{{ code stays }}")


def test_reference_style_links_keep_their_text_and_lose_labels_and_definitions():
    """Zulip's export-your-organization.html carries an admonition body with Markdown reference links as text.

    Seen in an answer before this test existed: "documentation on [server export and import][export-and-import]".
    """
    html = ("<h1>Export</h1><p>!!! warn \"\"</p><pre><code>If you run your own server, see our\n"
            "documentation on [server export and import][export-and-import] or\n[server backups][].</code></pre>"
            "<p>[export-and-import]: https://zulip.readthedocs.io/en/latest/production/export-and-import.html</p>"
            "<p>Citations [1] and [a] stay.</p>")
    assert text_of("page.html", html) == ("If you run your own server, see our documentation on server export and "
                                          "import or server backups.\n\nCitations [1] and [a] stay.")
