"""HTML: every visible word, in reading order, with block structure kept (lxml, one iterative walk).

Read: all text of the body, whatever element holds it (``div``, ``section``, ``span``, ``details`` and
``summary``, text between blocks), headings h1-h6 as sections, lists as "- " / "N. " lines (``start``
honoured, nesting indented two spaces a level), tables one row a line with cells joined by " | " (a
merged cell once), ``pre`` verbatim. Not read: ``script``, ``style``, ``template``, ``noscript``,
``svg``, ``head`` (but ``title``), embedded objects, form controls and buttons, ``nav``, comments, and
hidden elements (``hidden``, ``aria-hidden="true"``, ``display:none`` / ``visibility:hidden`` inline
styles). The walk keeps its own stack, so nesting depth costs no recursion.

Measured against inscriptis and trafilatura on the fidelity fixtures: docs/retrieval.md ("Extraction").
"""
from __future__ import annotations

import re

from rag.extraction import hygiene
from rag.extraction.base import DocumentOverLimit
from rag.extraction.builder import SectionBuilder

SKIP = {"script", "style", "template", "noscript", "svg", "math", "head", "iframe", "object", "embed", "canvas",
        "audio", "video", "map", "input", "select", "option", "optgroup", "datalist", "textarea", "button", "nav",
        "dialog"}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements that end the inline run before and after them (HTML's block-level and table/list elements).
BLOCKS = {"p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "figure",
          "figcaption", "details", "summary", "dl", "dt", "dd", "address", "center", "fieldset", "legend", "form",
          "hgroup", "search", "body", "html", "ul", "ol", "li", "menu", "table", "caption", "thead", "tbody",
          "tfoot", "tr", "td", "th", "pre", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "noframes", "option"}
_ADMONITION_MARKER = re.compile(r"^\s*(?:!!!|\?\?\?\+?)\s*[\w-]+(?:\s+\"[^\"]*\")?\s*$")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def _hidden(element) -> bool:
    attrib = element.attrib
    if not attrib:
        return False
    if "hidden" in attrib or attrib.get("aria-hidden", "").lower() == "true":
        return True
    if attrib.get("type", "").lower() == "hidden":
        return True
    style = attrib.get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


class _List:
    __slots__ = ("ordered", "number", "lines", "prefix", "item_lines")

    def __init__(self, ordered: bool, start: int) -> None:
        self.ordered, self.number, self.lines, self.prefix, self.item_lines = ordered, start, [], "", 0


class HtmlReader:
    """Feeds one HTML document's blocks and headings to a SectionBuilder."""

    def __init__(self, builder: SectionBuilder) -> None:
        self.builder = builder
        self.inline: list[str] = []
        self.lists: list[_List] = []
        self.tables: list[dict] = []
        self.pre_depth = 0
        self.heading: list[str] | None = None
        self.heading_level = 0
        self.admonition_body = False

    # --- output ---------------------------------------------------------------------------
    def _emit(self, text: str, *, code: bool = False) -> None:
        """A finished paragraph (or code block) goes into the innermost table cell, list item or section."""
        if not text.strip():
            return
        if self.tables and self.tables[-1]["cell"] is not None:
            self.tables[-1]["cell"].append(" ".join(text.split()))
        elif self.lists:
            current = self.lists[-1]
            indent = "  " * (len(self.lists) - 1)
            for line in text.split("\n"):
                if current.item_lines == 0:
                    current.lines.append(indent + current.prefix + line)
                else:
                    current.lines.append(indent + " " * len(current.prefix) + line if line.strip() else "")
                current.item_lines += 1
        else:
            self.builder.block(text, code=code)

    def flush(self) -> None:
        if self.inline:
            text = hygiene.join_lines("".join(self.inline))
            self.inline = []
            if not text:
                return
            # "!!! tip" written as a paragraph by a converter that does not know admonitions: their indented
            # body then comes as a <pre>, which is prose, not code.
            self.admonition_body = bool(_ADMONITION_MARKER.match(text))
            self._emit(text)

    # --- the walk ---------------------------------------------------------------------------
    def feed_element(self, root) -> None:
        stack: list[tuple[object, bool]] = [(root, False)]
        while stack:
            element, closing = stack.pop()
            if closing:
                self._end(element)
                if element.tail and element is not root:
                    self._text(element.tail)
                continue
            tag = element.tag if isinstance(element.tag, str) else None
            if tag is None or tag.lower() in SKIP or _hidden(element):
                if element.tail and element is not root:
                    self._text(element.tail)
                continue
            tag = tag.lower()
            self._start(element, tag)
            stack.append((element, True))
            if element.text:
                self._text(element.text)
            stack.extend((child, False) for child in reversed(element))

    def _text(self, text: str) -> None:
        if self.heading is not None:
            self.heading.append(text)
        else:
            self.inline.append(text)

    def _start(self, element, tag: str) -> None:
        if self.pre_depth:
            if tag == "br":
                self.inline.append("\n")
            if tag == "pre":
                self.pre_depth += 1
            return
        if tag in HEADINGS and self.heading is None and not self.tables and not self.lists:
            self.flush()
            self.heading, self.heading_level = [], HEADINGS[tag]
            return
        if tag not in BLOCKS:
            if tag == "img" and element.get("alt") and self.heading is None:
                self.inline.append(f" {element.get('alt')} ")
            elif tag == "br":  # a line break inside a paragraph: the paragraph stays one line
                self._text(" ")
            return
        if self.heading is not None:
            self.heading.append(" ")
            return
        self.flush()
        if tag not in ("p", "div", "body", "html", "pre"):
            self.admonition_body = False
        if tag == "pre":
            self.pre_depth = 1
        elif tag in ("ul", "ol", "menu"):
            try:
                start = int(element.get("start", "1"))
            except ValueError:
                start = 1
            self.lists.append(_List(tag == "ol", start))
        elif tag == "li" and self.lists:
            current = self.lists[-1]
            try:
                if element.get("value"):
                    current.number = int(element.get("value"))
            except ValueError:
                pass
            current.prefix = f"{current.number}. " if current.ordered else "- "
            current.number += 1
            current.item_lines = 0
        elif tag == "table":
            self.tables.append({"rows": [], "row": None, "cell": None})
        elif tag == "tr" and self.tables:
            self.tables[-1]["row"] = []
        elif tag in ("td", "th") and self.tables:
            table = self.tables[-1]
            if table["row"] is None:
                table["row"] = []
            table["cell"] = []

    def _end(self, element) -> None:
        tag = element.tag.lower()
        if self.pre_depth:
            if tag == "pre":
                self.pre_depth -= 1
                if not self.pre_depth:
                    text = "".join(self.inline).strip("\n")
                    self.inline = []
                    if self.admonition_body:
                        for paragraph in re.split(r"\n\s*\n", text):
                            self._emit(hygiene.join_lines(paragraph))
                    elif self.tables or self.lists:
                        self._emit(text)
                    else:
                        self.builder.block(text, code=True)
                    self.admonition_body = False
            return
        if self.heading is not None and tag in HEADINGS and HEADINGS[tag] == self.heading_level:
            text = hygiene.join_lines("".join(self.heading))
            self.heading = None
            self.builder.heading(text, level=self.heading_level)
            return
        if tag not in BLOCKS or self.heading is not None:
            return
        self.flush()
        if tag in ("ul", "ol", "menu") and self.lists:
            finished = self.lists.pop()
            lines = finished.lines
            if self.tables and self.tables[-1]["cell"] is not None:
                self.tables[-1]["cell"].append(" ".join(" ".join(lines).split()))
            elif self.lists:
                parent = self.lists[-1]
                parent.lines.extend(lines)
                parent.item_lines += len(lines)
            elif lines:
                self.builder.block("\n".join(lines))
        elif tag in ("td", "th") and self.tables:
            table = self.tables[-1]
            if table["cell"] is not None and table["row"] is not None:
                table["row"].append(" ".join(" ".join(table["cell"]).split()))
            table["cell"] = None
        elif tag == "tr" and self.tables:
            table = self.tables[-1]
            if table["row"] and any(table["row"]):
                table["rows"].append(" | ".join(c for c in table["row"]))
            table["row"] = None
        elif tag == "table" and self.tables:
            table = self.tables.pop()
            if table["row"]:  # a row without </tr>
                table["rows"].append(" | ".join(table["row"]))
            if not table["rows"]:
                return
            if self.tables or self.lists:  # a table inside a cell or a list item
                self._emit("\n".join(table["rows"]))
            else:
                self.builder.block("\n".join(table["rows"]))

    def close(self) -> None:
        self.flush()
        while self.lists:  # unclosed lists (fragments): emit what they hold
            self._end(_Fake("ul"))
        while self.tables:
            self._end(_Fake("table"))


class _Fake:
    def __init__(self, tag: str) -> None:
        self.tag = tag


def parse_html(markup: str):
    """The lxml tree of ``markup`` (a document or a fragment), None when it holds nothing.

    Raises:
        DocumentOverLimit(code="document_too_deeply_nested"): elements nested deeper than libxml2 reads
            (2,048 levels with ``huge_tree``); past it the rest of the page would be lost without a word.
    """
    import lxml.html
    from lxml.etree import ParserError

    # huge_tree: libxml2 reads 2,048 levels instead of 256; the walk keeps its own stack and the sandbox
    # bounds time and memory.
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, huge_tree=True)
    if not markup.strip():
        return None
    try:
        root = lxml.html.document_fromstring(markup, parser=parser)
    except ParserError:  # nothing but comments or whitespace
        return None
    if any("Excessive depth" in entry.message for entry in parser.error_log):
        raise DocumentOverLimit(code="document_too_deeply_nested",
                                message="The page nests its elements more than 2,048 levels deep; the text past "
                                        "that depth cannot be read, so it is refused rather than indexed in part.")
    return root


def read_html(markup: str, builder: SectionBuilder) -> str:
    """Feed ``markup`` to ``builder``; returns the title (first ``h1``, else ``<title>``, else "")."""
    root = parse_html(markup)
    if root is None:
        return ""
    title_element = root.find(".//title")
    page_title = hygiene.clean_line(title_element.text_content()) if title_element is not None else ""
    body = root.find("body")
    reader = HtmlReader(builder)
    reader.feed_element(body if body is not None else root)
    reader.close()
    return builder.first_heading or page_title


def read_html_fragment(markup: str, builder: SectionBuilder) -> None:
    """Feed a fragment (Markdown's raw HTML block) to ``builder``: same rules, no title."""
    root = parse_html(markup)
    if root is None:
        return
    body = root.find("body")
    reader = HtmlReader(builder)
    reader.feed_element(body if body is not None else root)
    reader.close()


def inline_text(markup: str) -> str:
    """The visible text of an inline HTML snippet (Markdown's inline HTML), on one line."""
    root = parse_html(f"<p>{markup}</p>")
    if root is None:
        return ""
    parts: list[str] = []
    stack = [(root, False)]
    while stack:
        element, closing = stack.pop()
        if closing:
            if element.tail and element is not root:
                parts.append(element.tail)
            continue
        tag = element.tag.lower() if isinstance(element.tag, str) else None
        if tag is None or tag in SKIP or _hidden(element):
            if element.tail and element is not root:
                parts.append(element.tail)
            continue
        if tag == "img" and element.get("alt"):
            parts.append(f" {element.get('alt')} ")
        if tag == "br":
            parts.append(" ")
        stack.append((element, True))
        if element.text:
            parts.append(element.text)
        stack.extend((child, False) for child in reversed(element))
    return hygiene.join_lines("".join(parts))
