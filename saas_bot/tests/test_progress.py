"""One progress display: a single bar on a terminal, plain lines (no escape codes) in a pipe."""
import io

from saas_bot.progress import StageProgress


def test_plain_lines_in_a_pipe_one_per_stage_start_and_end():
    stream = io.StringIO()
    with StageProgress(stream=stream, interval=3600) as progress:
        for done in range(0, 11):
            progress.update("Reading files", done, 10, "file")
        for done in (1, 2, 3):
            progress.update("Embedding chunks", done * 64, 192, "chunk")
    text = stream.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert text.splitlines() == ["Reading files: 0/10 files", "Reading files: 10/10 files",
                                 "Embedding chunks: 64/192 chunks", "Embedding chunks: 192/192 chunks"]


def test_a_stage_cut_short_reports_where_it_stopped():
    stream = io.StringIO()
    progress = StageProgress(stream=stream, interval=3600)
    progress.update("Extracting", 1, 5, "document")
    progress.update("Extracting", 3, 5, "document")
    progress.close()
    assert stream.getvalue().splitlines() == ["Extracting: 1/5 documents", "Extracting: 3/5 documents"]


def test_on_a_terminal_one_bar_is_relabelled_per_stage():
    stream = io.StringIO()
    progress = StageProgress(stream=stream, tty=True)
    progress.update("Reading files", 2, 2, "file")
    bar = progress._bar
    progress.update("Embedding chunks", 5, 10, "chunk")
    assert progress._bar is bar and bar.desc.startswith("Embedding chunks") and bar.n == 5 and bar.total == 10
    progress.close()
    assert "Embedding chunks" in stream.getvalue()


def test_quiet_writes_nothing():
    stream = io.StringIO()
    with StageProgress(stream=stream, enabled=False) as progress:
        progress.update("Reading files", 1, 1, "file")
    assert stream.getvalue() == ""
