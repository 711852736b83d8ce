"""The import contracts of pyproject.toml hold (import-linter; docs/architecture.md, "Layers").

The layers tenants < billing < rag < bots < faces above the shared core, python-telegram-bot imported by the
Telegram seam only, and no product module importing the test doubles. Run by hand: ``.venv/bin/lint-imports``.
"""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                               "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout, result.stdout[-2000:]
