"""Template directives of documentation generators: the one list of what is resolved or removed.

Help centres are exported with their generator's directives still in the text. A reader never sees
them, so neither does an answer. Markdown sources are rewritten before parsing
(:func:`preprocess_markdown`, fenced code left alone); the text of every other format goes through
:func:`strip_prose` block by block (code blocks left alone). Tested in rag/tests/test_directives.py;
documented in docs/retrieval.md ("Template directives").

| directive | generator | becomes |
| --- | --- | --- |
| ``{start_tabs}``, ``{end_tabs}`` | Zulip help centre | nothing |
| ``{tab|desktop-web}`` | Zulip | the tab's label as a line: ``Desktop/Web:`` |
| ``{settings_tab|notifications}`` | Zulip | ``Go to Personal settings > Notifications.`` |
| ``{relative|channel|all}`` | Zulip | ``Go to All channels.`` |
| ``{!file.md!}`` | Zulip include | that file's text when the upload, the folder or the company's documents have it, else nothing |
| ``--8<-- "file.md"`` (and the block form) | MkDocs / pymdownx snippets | as ``{!file.md!}`` |
| ``{% ... %}``, ``{# ... #}`` | Jinja, Django templates | nothing |
| ``{{< ... >}}``, ``{{% ... %}}`` | Hugo shortcodes | nothing (the text between a pair stays) |
| ``{{ ... }}`` | Jinja, Django, Hugo variables | nothing |
| ``:::note Title`` ... ``:::`` | Docusaurus, VuePress, MyST containers | the fence lines go; a title stays as a line |
| ``!!! tip "Title"`` / ``??? note`` + indented body | Python-Markdown / MkDocs admonitions | the body (dedented, read as Markdown); a custom title stays (Markdown: mdit-py-plugins' admon plugin) |
| ``{: .class}``, ``{:toc}`` | kramdown attribute lists | nothing |
| front matter (``---`` YAML / ``+++`` TOML at the start) | Jekyll, Hugo, Docusaurus | nothing; its ``title`` is the document's title when it has no heading |

Help centres converted to DOCX, PDF or HTML often keep their Markdown as literal text. In those formats
(not in Markdown, where it is parsed), :func:`strip_prose` also turns ``[text](url)`` into ``text``,
``![alt](src)`` into ``alt``, ``**bold**`` and ```code``` into their text, drops inline tags written
as text (``<kbd>K</kbd>`` -> ``K``) and admonition markers inside a line (``!!! tip ""``).
"""
from __future__ import annotations

import re
from typing import Mapping

# Zulip's tab labels (zerver/lib/markdown/tabbed_sections.py, TAB_SECTION_LABELS) for the slugs seen in
# help centres; other slugs are shown humanised ("via-left-sidebar" -> "Via left sidebar").
TAB_LABELS = {
    "desktop-web": "Desktop/Web", "desktop": "Desktop", "web": "Web", "mobile": "Mobile", "ios": "iOS",
    "android": "Android", "mac": "macOS", "macos": "macOS", "windows": "Windows", "linux": "Linux",
    "zulip-cloud": "Zulip Cloud", "self-hosting": "Self-hosting", "cloud": "Cloud", "python": "Python",
    "js": "JavaScript", "curl": "curl",
}
# Zulip's settings pages (zerver/lib/markdown/help_settings_links.py): slug -> (menu, page).
SETTINGS_TABS = {
    "profile": ("Personal settings", "Profile"),
    "account-and-privacy": ("Personal settings", "Account & privacy"),
    "preferences": ("Personal settings", "Preferences"),
    "notifications": ("Personal settings", "Notifications"),
    "your-bots": ("Personal settings", "Bots"),
    "topics": ("Personal settings", "Topics"),
    "alert-words": ("Personal settings", "Alert words"),
    "uploaded-files": ("Personal settings", "Uploaded files"),
    "muted-users": ("Personal settings", "Muted users"),
    "organization-profile": ("Organization settings", "Organization profile"),
    "organization-settings": ("Organization settings", "Organization settings"),
    "organization-permissions": ("Organization settings", "Organization permissions"),
    "default-user-settings": ("Organization settings", "Default user settings"),
    "emoji-settings": ("Organization settings", "Custom emoji"),
    "auth-methods": ("Organization settings", "Authentication methods"),
    "user-groups-admin": ("Organization settings", "User groups"),
    "users": ("Organization settings", "Users"),
    "deactivated-users-admin": ("Organization settings", "Deactivated users"),
    "all-bots": ("Organization settings", "Bots"),
    "bots": ("Organization settings", "Bots"),
    "user-list-admin": ("Organization settings", "Users"),
    "deactivated": ("Organization settings", "Users"),
    "invitations": ("Organization settings", "Users"),
    "data-exports-admin": ("Organization settings", "Data exports"),
    "bot-list-admin": ("Organization settings", "Bots"),
    "default-channels-list": ("Organization settings", "Default channels"),
    "linkifier-settings": ("Organization settings", "Linkifiers"),
    "playground-settings": ("Organization settings", "Code playgrounds"),
    "profile-field-settings": ("Organization settings", "Custom profile fields"),
    "invites-list-admin": ("Organization settings", "Invitations"),
}
# Zulip's relative links (zerver/lib/markdown/help_relative_links.py): (kind, slug) -> page name.
RELATIVE_PAGES = {
    ("channel", "all"): "All channels", ("stream", "all"): "All channels",
    ("channel", "subscribed"): "Subscribed channels", ("stream", "subscribed"): "Subscribed channels",
    ("message", "scheduled"): "Scheduled messages", ("message", "drafts"): "Drafts",
    ("message", "recent"): "Recent conversations", ("message", "combined"): "Combined feed",
    ("message", "starred"): "Starred messages", ("message", "direct"): "Direct message feed",
    ("message", "inbox"): "Inbox", ("message", "mentions"): "Mentions", ("message", "reactions"): "Reactions",
    ("gear", "stream-settings"): "Channel settings", ("gear", "channel-settings"): "Channel settings",
    ("gear", "settings"): "Personal settings", ("gear", "organization-settings"): "Organization settings",
    ("gear", "integrations"): "Integrations", ("gear", "stats"): "Usage statistics",
    ("gear", "plans"): "Plans and pricing", ("gear", "billing"): "Billing",
    ("gear", "group-settings"): "Group settings",
}

_INCLUDE = re.compile(r"\{!\s*([^{}!]+?)\s*!\}")
_SNIPPET_LINE = re.compile(r"""^(\s*)-{1,2}8<-{1,2}\s+["']?([^"'\s]+)["']?\s*$""")
_SNIPPET_FENCE = re.compile(r"^\s*-{1,2}8<-{1,2}\s*$")
_TAB_MARKERS = re.compile(r"\{\s*(?:start_tabs|end_tabs)\s*\}")
_TAB = re.compile(r"\{\s*tab\|([\w-]+)\s*\}")
_SETTINGS_TAB = re.compile(r"\{\s*settings_tab\|([\w-]+)\s*\}")
_RELATIVE = re.compile(r"\{\s*relative\|([\w-]+)\|([\w-]+)\s*\}")
# Hugo shortcodes first (they also start with "{{"), then Jinja/Django statements, comments, expressions.
_TEMPLATE_TAGS = re.compile(r"\{\{[<%].{0,2000}?[>%]\}\}|\{%.{0,2000}?%\}|\{#.{0,2000}?#\}|\{\{.{0,2000}?\}\}", re.S)
_CONTAINER = re.compile(r"^\s*:{3,}\s*([\w-]*)\s*(?:\[(.*)\]|(.*))$")
_KRAMDOWN = re.compile(r"^\s*\{:[^}]*\}\s*$")
_ADMONITION_LINE = re.compile(r"""^\s*(?:!!!|\?\?\?\+?)\s+[\w-]+(?:\s+["'](.*)["'])?\s*$""")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_FRONT_MATTER = re.compile(r"\A(?:---|\+\+\+)[ \t]*\n(.*?)\n(?:---|\+\+\+|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_TITLE = re.compile(r"""^title\s*[:=]\s*["']?(.*?)["']?\s*$""", re.M)

MAX_INCLUDE_DEPTH = 3
ADMONITION_TYPES = ("note", "tip", "warn", "warning", "danger", "info", "important", "caution", "attention", "hint",
                    "error", "abstract", "summary", "example", "quote", "success", "question", "failure", "bug",
                    "seealso", "keyboard_tip", "todo", "check", "faq")
_INLINE_ADMONITION = re.compile(r"(?:!!!|\?\?\?\+?)\s*(?:" + "|".join(ADMONITION_TYPES) + r")\b(?:\s+\"[^\"\n]*\")?\s*", re.I)
_MD_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
# Reference-style links, full and collapsed ("[text][label]", "[text][]", CommonMark 0.31 section 6.3), and the
# link reference definitions they point at ("[label]: url", section 4.7): text a reader never sees as written.
_MD_REF_LINK = re.compile(r"\[([^\[\]\n]+)\]\[([^\[\]\n]*)\]")
_MD_REF_DEFINITION = re.compile(r"^ {0,3}\[[^\[\]\n]+\]:[ \t]*<?\S+>?(?:[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^)\n]*\)))?[ \t]*$\n?",
                                re.M)
_MD_STRONG = re.compile(r"(?<![\w*@])\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*(?![\w*])")
_MD_UNDERSCORE_STRONG = re.compile(r"(?<!\w)__(?=\S)([^_\n]*\s[^_\n]*?)(?<=\S)__(?!\w)")
_MD_CODE = re.compile(r"`([^`\n]+)`")
_TEXT_TAGS = re.compile(r"</?(?:kbd|b|i|em|strong|code|span|a|u|sup|sub|small|mark|abbr|var|samp|p|div|font)\b[^<>]*>"
                        r"|<br\s*/?>", re.I)


def _humanise(slug: str) -> str:
    return slug.replace("_", "-").replace("-", " ").strip().capitalize()


def tab_label(slug: str) -> str:
    """The label a reader sees on Zulip's tab ``slug``."""
    return TAB_LABELS.get(slug, _humanise(slug))


def settings_sentence(slug: str) -> str:
    """What Zulip's ``{settings_tab|slug}`` tells the reader, as one sentence."""
    if slug in SETTINGS_TABS:
        menu, page = SETTINGS_TABS[slug]
        return f"Go to {menu} > {page}."
    return f"Go to the {_humanise(slug)} settings."


def relative_sentence(kind: str, slug: str) -> str:
    """What Zulip's ``{relative|kind|slug}`` tells the reader, as one sentence."""
    return f"Go to {RELATIVE_PAGES.get((kind, slug), _humanise(slug))}."


def include_names(source: str) -> set[str]:
    """File names that ``source`` includes (``{!x.md!}``, ``--8<-- "x.md"`` and the block form), as written."""
    names = {m.group(1).strip() for m in _INCLUDE.finditer(source)}
    in_block = False
    for line in source.splitlines():
        if _SNIPPET_FENCE.match(line):
            in_block = not in_block
            continue
        match = _SNIPPET_LINE.match(line)
        if match:
            names.add(match.group(2))
        elif in_block and line.strip() and not line.strip().startswith(";"):
            names.add(line.strip())
    return {n.rsplit("/", 1)[-1] for n in names if n}


def _include_key(name: str) -> str:
    return name.strip().rsplit("/", 1)[-1]


def _zulip_macros(line: str) -> str:
    line = _TAB_MARKERS.sub("", line)
    line = _TAB.sub(lambda m: f"{tab_label(m.group(1))}:", line)
    line = _SETTINGS_TAB.sub(lambda m: settings_sentence(m.group(1)), line)
    return _RELATIVE.sub(lambda m: relative_sentence(m.group(1), m.group(2)), line)


def front_matter(source: str) -> tuple[str, str]:
    """``(source without its front matter, the front matter's title or "")``."""
    match = _FRONT_MATTER.match(source)
    if not match:
        return source, ""
    title = _FRONT_TITLE.search(match.group(1))
    return source[match.end():], (title.group(1).strip() if title else "")


def preprocess_markdown(source: str, *, includes: Mapping[str, str] | None = None, depth: int = 0) -> str:
    """A Markdown source with the directives of the table above resolved or removed (outside fenced code).

    Args:
        includes: file name (no folder) -> that file's Markdown, for ``{!x!}`` and ``--8<--``; a name not
            in it is dropped. Included text is preprocessed too, ``MAX_INCLUDE_DEPTH`` levels deep, and
            indented like the line that included it (so an include inside a list item stays in it).
    """
    includes = includes or {}
    out: list[str] = []
    fence: str | None = None
    snippet_block = False
    prose: list[str] = []

    def flush_prose() -> None:
        if prose:
            out.append(_TEMPLATE_TAGS.sub("", "\n".join(prose)))
            prose.clear()

    def included(name: str, indent: str) -> list[str]:
        text = includes.get(_include_key(name))
        if text is None or depth >= MAX_INCLUDE_DEPTH:
            return []
        body = preprocess_markdown(front_matter(text)[0], includes=includes, depth=depth + 1)
        return [indent + line if line.strip() else "" for line in body.split("\n")]

    for line in source.split("\n"):
        fence_match = _FENCE.match(line)
        if fence is not None:
            out.append(line)
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
            continue
        if fence_match:
            flush_prose()
            fence = fence_match.group(1)
            out.append(line)
            continue
        if _SNIPPET_FENCE.match(line):
            snippet_block = not snippet_block
            continue
        if snippet_block:
            if line.strip() and not line.strip().startswith(";"):
                prose.extend(included(line.strip(), ""))
            continue
        snippet = _SNIPPET_LINE.match(line)
        if snippet:
            prose.extend(included(snippet.group(2), snippet.group(1)))
            continue
        if _KRAMDOWN.match(line):
            continue
        container = _CONTAINER.match(line)
        if container:
            title = (container.group(2) or container.group(3) or "").strip()
            if title:
                prose.extend([title, ""])
            continue
        include = _INCLUDE.fullmatch(line.strip())
        if include:
            prose.extend(included(include.group(1), line[:len(line) - len(line.lstrip())]))
            continue
        prose.append(_INCLUDE.sub(lambda m: " ".join(x.strip() for x in included(m.group(1), "") if x.strip()),
                                  _zulip_macros(line)))
    flush_prose()
    return "\n".join(out)


def strip_literal_markup(text: str) -> str:
    """Markdown and inline HTML written as literal text (see the module's last paragraph) -> its text."""
    if not any(c in text for c in "[*`<_!?"):
        return text
    text = _INLINE_ADMONITION.sub("", text)
    text = _MD_IMAGE.sub(lambda m: m.group(1), text)
    text = _MD_LINK.sub(lambda m: m.group(1), text)
    text = _MD_REF_LINK.sub(lambda m: m.group(1), text)
    text = _MD_REF_DEFINITION.sub("", text)
    text = _MD_STRONG.sub(lambda m: m.group(1), text)
    text = _MD_UNDERSCORE_STRONG.sub(lambda m: m.group(1), text)
    text = _MD_CODE.sub(lambda m: m.group(1), text)
    return _TEXT_TAGS.sub(lambda m: " " if m.group(0).lower().startswith("<br") else "", text)


def strip_prose(text: str, *, includes: Mapping[str, str] | None = None) -> str:
    """Rendered text of any format with the directives of the table above removed or resolved.

    Includes (``{!x!}``) are replaced by the plain text in ``includes`` (file name -> text) or dropped;
    admonition and container fence lines are dropped (their titles kept).
    """
    text = strip_literal_markup(text)
    if "{" not in text and ":::" not in text and "8<" not in text:
        return text
    lines = []
    for line in text.split("\n"):
        if _SNIPPET_FENCE.match(line) or _KRAMDOWN.match(line):
            continue
        snippet = _SNIPPET_LINE.match(line)
        if snippet:
            lines.append((includes or {}).get(_include_key(snippet.group(2)), ""))
            continue
        admonition = _ADMONITION_LINE.match(line)
        if admonition:
            if admonition.group(1):
                lines.append(admonition.group(1))
            continue
        container = _CONTAINER.match(line)
        if container:
            title = (container.group(2) or container.group(3) or "").strip()
            if title:
                lines.append(title)
            continue
        line = _zulip_macros(line)
        line = _INCLUDE.sub(lambda m: (includes or {}).get(_include_key(m.group(1)), ""), line)
        lines.append(line)
    return _TEMPLATE_TAGS.sub("", "\n".join(lines))
