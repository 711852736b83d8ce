"""Collects a document's blocks into sections, following the text contract (base.Section).

Every format's reader hands its blocks here, already in the contract's shape (a paragraph on one line,
a list as "- " / "N. " lines, a table as " | " rows); this is where hygiene is applied, template
directives are stripped from prose, headings start sections and the character budget is charged.
"""
from __future__ import annotations

from rag.extraction import directives, hygiene
from rag.extraction.base import CharBudget, Section


class SectionBuilder:
    """Blocks in reading order -> ``list[Section]``.

    Args:
        budget: charged with every block's characters (raises ``DocumentOverLimit`` past its limit).
        strip_directives: remove template directives (directives.strip_prose) from prose blocks; off for
            Markdown, whose directives are resolved in the source before parsing.
        includes: file name -> plain text, for include directives met in prose.
    """

    def __init__(self, budget: CharBudget, *, strip_directives: bool = True,
                 includes: dict[str, str] | None = None) -> None:
        self.budget = budget
        self.strip_directives = strip_directives
        self.includes = includes or {}
        self.sections: list[Section] = []
        self.heading_text = ""
        self.page: int | None = None
        self.first_heading = ""  # the first level-1 heading (a title candidate)
        self.any_heading = ""  # the first heading of any level
        self._blocks: list[str] = []

    def heading(self, text: str, *, level: int = 1) -> None:
        """Start a new section under ``text`` (an empty heading is ignored)."""
        text = hygiene.clean_line(directives.strip_prose(text) if self.strip_directives else text)
        if not text:
            return
        self.flush()
        self.budget.take(len(text))
        self.heading_text = text[:500]
        if not self.first_heading and level <= 1:
            self.first_heading = text
        self.any_heading = self.any_heading or text

    def new_page(self, page: int) -> None:
        """PDF: later blocks belong to ``page`` (a new section)."""
        self.flush()
        self.page = page

    def block(self, text: str, *, code: bool = False) -> None:
        """Add one block (paragraph, list, table, code) to the current section."""
        if not code and self.strip_directives:
            text = directives.strip_prose(text, includes=self.includes)
        text = hygiene.clean(text, code=code)
        if not text.strip():
            return
        self.budget.take(len(text) + 2)
        self._blocks.append(text)

    def flush(self) -> None:
        if self._blocks:
            self.sections.append(Section(text="\n\n".join(self._blocks), section=self.heading_text, page=self.page))
            self._blocks = []

    def finish(self) -> list[Section]:
        self.flush()
        return self.sections
