"""reStructuredText: parsed by docutils, its document tree rendered to readable text.

Sphinx's roles and directives are unknown to plain docutils; each one a source uses is registered
before parsing with a generic meaning, so none is left as markup:

- roles (``:setting:`X```, ``:attr:`~a.b.c```, ``:ref:`text <label>```): the text a reader sees,
  Sphinx's way: the explicit title, else the target, ``~`` keeping its last dotted part; ``:ref:`` to a
  label of the same file shows that section's title;
- code directives (``code-block``, ``sourcecode``): a code block; ``versionadded`` and friends:
  "Added in version X." and their body; invisible ones (``toctree``, ``index``, ``highlight``,
  ``literalinclude``, ``autoclass`` ...) nothing; any other: its body read as reStructuredText.

Tables become " | " rows (a cell spanning columns once), link targets (``.. _x: url``), comments and
substitution definitions disappear, references keep their text. File inclusion and raw output are
off (``file_insertion_enabled``, ``raw_enabled``): an upload cannot read the server's files.
"""
from __future__ import annotations

import io
import re

from rag.extraction import hygiene
from rag.extraction.builder import SectionBuilder

_ROLE_USE = re.compile(r"(?<![\w`\\]):((?:[\w-]+:)?[\w+-]+):`")
_DIRECTIVE_USE = re.compile(r"^\s*\.\.\s+((?:[\w-]+:)?[\w-]+)::", re.M)
_LABEL = re.compile(r"^\.\. _([^:`]+):\s*\n\s*\n?(.+)\n([=\-`:'\"~^_*+#<>.])\3{2,}\s*$", re.M)
_EXPLICIT = re.compile(r"^(.*?)\s*<([^<>]*)>$", re.S)
CODE_DIRECTIVES = {"code-block", "sourcecode", "code", "console", "doctest", "testcode", "testoutput"}
HIDDEN_DIRECTIVES = {"toctree", "index", "highlight", "literalinclude", "tabularcolumns", "currentmodule", "module",
                     "default-domain", "default-role", "setting", "templatetag", "templatefilter", "fieldlookup",
                     "django-admin", "django-admin-option", "envvar", "option", "program", "describe", "object",
                     "productionlist", "graphviz", "only-html", "raw", "include", "meta", "role", "sectionauthor",
                     "moduleauthor", "codeauthor", "spelling", "ifconfig"}
VERSION_DIRECTIVES = {"versionadded": "Added in version", "versionchanged": "Changed in version",
                      "deprecated": "Deprecated since version", "versionremoved": "Removed in version"}

_labels: dict[str, str] = {}


def _role_text(name: str, text: str) -> str:
    match = _EXPLICIT.match(text)
    if match and match.group(1).strip():
        return match.group(1).strip()
    target = (match.group(2) if match else text).strip().lstrip("!")
    if name.endswith("ref") and target.lower() in _labels:
        return _labels[target.lower()]
    if target.startswith("~"):
        return target[1:].rsplit(".", 1)[-1]
    if name == "doc":
        return target.rstrip("/").rsplit("/", 1)[-1].replace("-", " ").replace("_", " ")
    return target


def _generic_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    from docutils import nodes, utils

    shown = _role_text(name, utils.unescape(text))
    return [nodes.literal(rawtext, shown) if name not in ("ref", "doc", "term", "abbr") else nodes.Text(shown)], []


class _AnyOption(dict):
    """Every option is accepted (as a string): Sphinx directives have many we do not know."""

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key):
        from docutils.parsers.rst import directives

        return directives.unchanged


def _directive_class(name: str):
    from docutils import nodes
    from docutils.parsers.rst import Directive

    class Generic(Directive):
        has_content = True
        optional_arguments = 1
        final_argument_whitespace = True
        option_spec = _AnyOption()

        def run(self):
            if name in HIDDEN_DIRECTIVES or name.startswith("auto"):
                return []
            if name in CODE_DIRECTIVES:
                text = "\n".join(self.content)
                return [nodes.literal_block(text, text)] if text.strip() else []
            container = nodes.container()
            if name in VERSION_DIRECTIVES and self.arguments:
                version, _, rest = self.arguments[0].partition("\n")
                line = f"{VERSION_DIRECTIVES[name]} {version.strip()}."
                container += nodes.paragraph(line, line)
                if rest.strip():
                    self.state.nested_parse(self.content.__class__([rest]), self.content_offset, container)
            if self.content:
                self.state.nested_parse(self.content, self.content_offset, container)
            return [container]

    return Generic


def _register(source: str) -> None:
    from docutils.parsers.rst import directives, roles

    for name in set(_ROLE_USE.findall(source)):
        if name not in roles._roles and name not in roles._role_registry:
            roles.register_local_role(name, lambda *a, _n=name, **k: _generic_role(_n, *a[1:], **k))
    for name in set(_DIRECTIVE_USE.findall(source)):
        if name not in directives._directives and name not in directives._directive_registry:
            directives.register_directive(name, _directive_class(name))


def looks_like_rst(text: str) -> bool:
    """Whether a ``.txt`` file is reStructuredText (roles, directives, ``literals``, adorned headings)."""
    return bool(_ROLE_USE.search(text) or _DIRECTIVE_USE.search(text) or re.search(r"``\S", text)
                or re.search(r"^(.+)\n([=\-~^\"'`#*+])\2{2,}\s*$", text, re.M))


def read_rst(source: str, builder: SectionBuilder) -> str:
    """Feed a reStructuredText document to ``builder``; returns its title (first section title or "")."""
    from docutils.core import publish_doctree

    _labels.clear()
    for match in _LABEL.finditer(source):
        _labels[match.group(1).strip().lower()] = match.group(2).strip()
    _register(source)
    settings = {"report_level": 5, "halt_level": 5, "warning_stream": io.StringIO(), "file_insertion_enabled": False,
                "raw_enabled": False, "doctitle_xform": False, "sectsubtitle_xform": False, "_disable_config": True,
                "input_encoding": "unicode", "line_length_limit": 100_000, "embed_stylesheet": False}
    tree = publish_doctree(source, settings_overrides=settings)
    _Renderer(builder).body(tree, level=0)
    return builder.any_heading


class _Renderer:
    def __init__(self, builder: SectionBuilder) -> None:
        self.builder = builder

    def body(self, node, level: int) -> None:
        """Top level: sections start headings; other nodes become blocks."""
        from docutils import nodes

        for child in node.children:
            if isinstance(child, nodes.section):
                title = child.next_node(nodes.title)
                self.builder.heading(_text(title) if title is not None else "", level=level + 1)
                self.body(_Without(child, nodes.title), level + 1)
            else:
                for text, kind in self.blocks(child):
                    self.builder.block(text, code=kind == "code")

    def blocks(self, node) -> list[tuple[str, str]]:
        from docutils import nodes

        if isinstance(node, (nodes.target, nodes.comment, nodes.substitution_definition, nodes.system_message,
                             nodes.problematic, nodes.transition, nodes.pending, nodes.raw, nodes.meta)):
            return []
        if isinstance(node, (nodes.paragraph, nodes.rubric, nodes.title, nodes.caption, nodes.attribution)):
            return [(_text(node), "para")]
        if isinstance(node, (nodes.literal_block, nodes.doctest_block)):
            return [(node.astext().rstrip("\n"), "code")]
        if isinstance(node, (nodes.bullet_list, nodes.enumerated_list)):
            return [(self.list(node), "list")]
        if isinstance(node, nodes.table):
            return [(self.table(node), "table")]
        if isinstance(node, nodes.line_block):
            return [("\n".join(hygiene.join_lines(line.astext()) for line in node.findall(nodes.line)), "para")]
        if isinstance(node, nodes.definition_list):
            out = []
            for item in node.children:
                for child in item.children:
                    out.extend(self.blocks(child) if not isinstance(child, nodes.term) else [(_text(child), "para")])
            return out
        if isinstance(node, nodes.field_list):
            lines = []
            for field in node.children:
                name = _text(field.children[0])
                value = " ".join(t for t, _ in self.children_blocks(field.children[1]))
                lines.append(f"{name}: {value}".strip())
            return [("\n".join(lines), "para")]
        if isinstance(node, (nodes.term, nodes.classifier)):
            return [(_text(node), "para")]
        if isinstance(node, nodes.image):
            return [(node.get("alt", ""), "para")] if node.get("alt") else []
        if isinstance(node, nodes.Text):
            return [(hygiene.join_lines(node.astext()), "para")]
        if isinstance(node, (nodes.footnote, nodes.citation)):
            label = node.next_node(nodes.label)
            blocks = self.children_blocks(_Without(node, nodes.label))
            if blocks and label is not None:
                blocks[0] = (f"[{label.astext()}] {blocks[0][0]}", blocks[0][1])
            return blocks
        if isinstance(node, nodes.section):  # a section inside a directive: its title as a paragraph
            return self.children_blocks(node)
        return self.children_blocks(node)  # admonitions, block quotes, containers, topics, compound ...

    def children_blocks(self, node) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for child in node.children:
            out.extend(self.blocks(child))
        return [(t, k) for t, k in out if t.strip()]

    def list(self, node) -> str:
        from docutils import nodes

        ordered = isinstance(node, nodes.enumerated_list)
        number = int(node.get("start", 1) or 1)
        lines: list[str] = []
        for item in node.children:
            prefix = f"{number}. " if ordered else "- "
            number += 1
            blocks = self.children_blocks(item)
            if not blocks or blocks[0][1] != "para":
                lines.append(prefix.rstrip())
            for index, (text, kind) in enumerate(blocks):
                if index == 0 and kind == "para":
                    lines.append(prefix + text)
                    continue
                indent = "  " if kind == "list" else " " * len(prefix)
                lines.extend(indent + line for line in text.split("\n") if line.strip())
        return "\n".join(lines)

    def table(self, node) -> str:
        from docutils import nodes

        rows = []
        for row in node.findall(nodes.row):
            cells = [" ".join(t for t, _ in self.children_blocks(entry)).replace("\n", " ")
                     for entry in row.children if isinstance(entry, nodes.entry)]
            if any(c.strip() for c in cells):
                rows.append(" | ".join(" ".join(c.split()) for c in cells))
        return "\n".join(rows)


class _Without:
    """A node's children minus those of one class (a section without its title)."""

    def __init__(self, node, skip) -> None:
        self.children = [c for c in node.children if not isinstance(c, skip)]


def _text(node) -> str:
    """Inline text of a paragraph-like node on one line (footnote references dropped)."""
    from docutils import nodes

    parts: list[str] = []
    for child in node.findall(nodes.Text, include_self=False):
        parent = child.parent
        if isinstance(parent, (nodes.footnote_reference, nodes.citation_reference, nodes.problematic,
                               nodes.system_message)) or isinstance(parent.parent, nodes.system_message):
            continue
        parts.append(child.astext())
    return hygiene.join_lines("".join(parts))
