"""Rewriters from the short specs the CLI and configs use."""

from __future__ import annotations

from typing import Any

from tailorgen.interests.rewrite.base import Rewriter
from tailorgen.interests.rewrite.http_client import HTTPRewriter
from tailorgen.interests.rewrite.lexicon import VocabularyLike
from tailorgen.interests.rewrite.local_llm import LocalLLMRewriter
from tailorgen.interests.rewrite.template import TemplateRewriter


def make_rewriter(
    spec: str = "template",
    *,
    vocabulary: VocabularyLike | None = None,
    **options: Any,
) -> Rewriter:
    """A rewriter from a short spec, as the CLI and configs name them.

    ``"template"``; ``"local-llm"`` (embedded SmolLM2) or ``"local-llm:PATH"`` (a .gguf file or a
    transformers folder); ``"http:URL"`` or ``"http:URL#MODEL"`` (an OpenAI-compatible server; a bare URL works too).
    ``vocabulary`` and ``options`` go to the LLM backends' constructors; the
    template needs no validation and takes none.
    """
    if spec == "template":
        if options:
            raise TypeError(f"the template rewriter takes no options, got {sorted(options)}")
        return TemplateRewriter()
    if spec == "local-llm" or spec.startswith("local-llm:"):
        path = spec.removeprefix("local-llm").removeprefix(":") or None
        return LocalLLMRewriter(path, vocabulary=vocabulary, **options)
    if spec.startswith(("http:", "https:")) and "://" in spec:
        # "http:URL" as documented; a bare "http://..." or "https://..." URL is accepted too.
        rest = spec if spec.startswith(("http://", "https://")) else spec.removeprefix("http:")
        url, _, model = rest.partition("#")
        if model:
            options.setdefault("model", model)
        return HTTPRewriter(url, vocabulary=vocabulary, **options)
    raise ValueError(
        f"unknown rewriter spec {spec!r}: use 'template', 'local-llm', 'local-llm:PATH' or 'http:URL[#MODEL]'"
    )
