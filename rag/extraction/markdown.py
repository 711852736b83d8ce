"""Markdown: rendered to readable text from markdown-it-py's tokens (CommonMark + tables).

Template directives are resolved in the source first (rag.extraction.directives). Python-Markdown /
MkDocs admonitions (``!!! tip``) are parsed by mdit-py-plugins' admon plugin, front matter by its
front_matter plugin. Raw HTML blocks go through the HTML reader, inline HTML through its inline
text, so text in a ``<div>`` or ``<details>`` of a ``.md`` file is read like in an ``.html`` file.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping

from rag.extraction import directives, hygiene
from rag.extraction.builder import SectionBuilder
from rag.extraction.html import inline_text, read_html_fragment


@lru_cache(maxsize=1)
def _parser():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.admon import admon_plugin
    from mdit_py_plugins.front_matter import front_matter_plugin

    return MarkdownIt("commonmark", {"html": True}).enable("table").use(front_matter_plugin).use(admon_plugin)


def _inline(node) -> str:
    """A paragraph's (or heading's, or cell's) text on one line, without markup."""
    children = node.children
    if any(child.type == "html_inline" for child in _walk(children)):
        # Inline HTML can hide or wrap text (<span hidden>, <kbd>): render to HTML and read it as HTML.
        return inline_text(_parser().renderer.render(node.to_tokens(), _parser().options, {}))
    parts: list[str] = []
    _inline_parts(children, parts)
    return hygiene.join_lines("".join(parts))


def _walk(nodes):
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


def _inline_parts(nodes, parts: list[str]) -> None:
    for node in nodes:
        kind = node.type
        if kind == "text" or kind == "code_inline":
            parts.append(node.content)
        elif kind == "softbreak":
            parts.append("\n")
        elif kind == "hardbreak":
            parts.append(" ")
        elif kind == "image":
            alt = node.content or "".join(c.content for c in node.children)
            if alt:
                parts.append(alt)
        else:  # link, em, strong, s, and the inline wrapper: their text only
            _inline_parts(node.children, parts)


def _blocks(node) -> list[tuple[str, str]]:
    """Block children of ``node`` as (text, kind) in the text contract's shapes; kind is "para", "code",
    "list" or "table"."""
    out: list[tuple[str, str]] = []
    for child in node.children:
        kind = child.type
        if kind in ("paragraph", "heading", "admonition_title"):
            out.append((_inline(child.children[0]) if child.children else "", "para"))
        elif kind in ("fence", "code_block"):
            out.append((child.content.rstrip("\n"), "code"))
        elif kind in ("bullet_list", "ordered_list"):
            out.append((_list(child), "list"))
        elif kind == "table":
            out.append((_table(child), "table"))
        elif kind == "html_block":
            out.append((_html_block_text(child.content), "para"))
        elif kind == "admonition":
            title = _admonition_title(child)
            out.append((title, "para"))
            out.extend(_blocks(_Children([c for c in child.children if c.type != "admonition_title"])))
        elif kind == "blockquote":
            out.extend(_blocks(child))
        # hr, front_matter: nothing
    return [(text, kind) for text, kind in out if text.strip()]


def _admonition_title(node) -> str:
    for child in node.children:
        if child.type == "admonition_title":
            title = _inline(child.children[0]) if child.children else ""
            # mdit-py-plugins writes the type as the title when none is given ("!!! note" -> "Note").
            return "" if title.lower() == (node.meta.get("tag") or "").lower() else title
    return ""


class _Children:
    def __init__(self, children) -> None:
        self.children = children


def _list(node) -> str:
    """A list as lines: "- " / "N. " (``start`` honoured), nested lists two spaces further in, an item's
    other blocks indented to its text."""
    ordered = node.type == "ordered_list"
    number = int(node.attrs.get("start", 1) or 1) if ordered else 0
    lines: list[str] = []
    for item in node.children:
        prefix = f"{number}. " if ordered else "- "
        number += 1
        blocks = _blocks(item)
        if not blocks or blocks[0][1] != "para":
            lines.append(prefix.rstrip())
        for index, (text, kind) in enumerate(blocks):
            if index == 0 and kind == "para":
                lines.append(prefix + text)
                continue
            indent = "  " if kind == "list" else " " * len(prefix)
            lines.extend(indent + line if line.strip() else "" for line in text.split("\n"))
    return "\n".join(line for line in lines if line.strip())


def _table(node) -> str:
    rows: list[str] = []
    for row in _walk_rows(node):
        cells = [_inline(cell.children[0]) if cell.children else "" for cell in row.children]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _walk_rows(node):
    for section in node.children:  # thead, tbody
        for row in section.children:
            if row.type == "tr":
                yield row


def _html_block_text(markup: str) -> str:
    """A raw HTML block inside a list or quote: its blocks as text (headings included as text)."""
    from rag.extraction.base import CharBudget

    inner = SectionBuilder(CharBudget(limit=10 ** 12))
    read_html_fragment(markup, inner)
    parts = []
    for section in inner.finish():
        if section.section:
            parts.append(section.section)
        parts.append(section.text)
    return "\n\n".join(parts)


def read_markdown(source: str, builder: SectionBuilder, *, includes: Mapping[str, str] | None = None) -> str:
    """Feed a Markdown document to ``builder``; returns its title (first ``#`` heading, else the front
    matter's ``title``, else "")."""
    from markdown_it.tree import SyntaxTreeNode

    body, front_title = directives.front_matter(source)
    body = directives.preprocess_markdown(body, includes=includes)
    tree = SyntaxTreeNode(_parser().parse(body))
    for node in tree.children:
        if node.type == "heading":
            level = int(node.tag[1]) if node.tag[1:].isdigit() else 1
            builder.heading(_inline(node.children[0]) if node.children else "", level=level)
        elif node.type == "html_block":
            read_html_fragment(node.content, builder)
        else:
            for text, kind in _blocks(_Children([node])):
                builder.block(text, code=kind == "code")
    return builder.first_heading or front_title
