"""bench/_common.py writes a benchmark's section of docs/benchmarks.md and nothing else.

A re-run of bench/first_question.py once dropped every line outside the markers (a hand-written reading
and a whole section after the last marker); these tests would have caught it.
"""
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def common():
    sys.path.insert(0, str(BENCH))
    try:
        import _common
    finally:
        sys.path.remove(str(BENCH))
    return _common


DOC = """# Benchmarks

Intro.

<!-- bench:a:start -->
old a
<!-- bench:a:end -->

A reading written by hand.

<!-- bench:b:start -->
old b
<!-- bench:b:end -->

## A section without markers

Its text.
"""


def test_a_section_is_replaced_in_place_and_every_other_line_is_kept(common):
    out = common._section_put(DOC, "a", "new a\n\n")
    assert out == DOC.replace("old a", "new a")


def test_a_new_section_is_appended_at_the_end(common):
    out = common._section_put(DOC, "c", "c body")
    assert out.startswith(DOC.rstrip()) and out.endswith("<!-- bench:c:start -->\nc body\n<!-- bench:c:end -->\n")
    assert common._section_put(out, "c", "c again").count("bench:c:start") == 1


def test_update_docs_keeps_the_rest_of_the_file(common, tmp_path, monkeypatch):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(DOC + "\n<!-- bench:scifact:start -->\ns\n<!-- bench:scifact:end -->\n")
    monkeypatch.setattr(common, "DOCS", docs)
    monkeypatch.setattr(common, "OUT_DIR", tmp_path / "out")
    common.update_docs("b", "new b")
    text = docs.read_text()
    assert "new b" in text and "old b" not in text
    assert "A reading written by hand." in text and "## A section without markers\n\nIts text." in text
