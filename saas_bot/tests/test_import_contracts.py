"""The import contracts of pyproject.toml hold (import-linter; docs/architecture.md, "Layers").

The layers tenants < billing < rag < bots < faces above the shared core, python-telegram-bot imported by the
Telegram seam only, no product module importing the test doubles, langchain-openai imported by the chat-model
and embeddings modules only, the embedding runtimes by the embeddings modules only. Run by hand:
``.venv/bin/lint-imports``.
"""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _lint(*args: str) -> subprocess.CompletedProcess:
    call = ", ".join(["no_cache=True", "no_logo=True", *args])
    return subprocess.run(
        [sys.executable, "-c", f"import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports({call}))"],
        cwd=REPO, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    result = _lint()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "5 kept, 0 broken" in result.stdout, result.stdout[-2000:]


def test_the_model_contracts_see_the_imports_they_allow(tmp_path):
    """Without their allowances the chat-model and embedding-runtime contracts break on the real imports
    (function-local ones included): they check something."""
    config = tmp_path / "contracts.ini"
    config.write_text("""[importlinter]
root_packages =
    rag
include_external_packages = True

[importlinter:contract:chat]
name = chat model
type = forbidden
source_modules =
    rag
forbidden_modules =
    langchain_openai
allow_indirect_imports = True

[importlinter:contract:runtimes]
name = embedding runtimes
type = forbidden
source_modules =
    rag
forbidden_modules =
    onnxruntime
allow_indirect_imports = True
""")
    result = _lint(f"config_filename={str(config)!r}")
    assert result.returncode != 0, result.stdout[-2000:]
    assert "0 kept, 2 broken" in result.stdout, result.stdout[-2000:]
    assert "rag.answering -> langchain_openai" in result.stdout
    assert "rag.onnx_minilm -> onnxruntime" in result.stdout
