"""What every LLM backend shares: the prompt, validation of the answer and the template fallback.

A rejected answer is replaced by the template text, and the reason is kept in
:attr:`RewriteResult.fallback_reason`, together with what the LLM said, for the run's JSON record.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from tailorgen.interests.rewrite.base import Rewriter, RewriteResult
from tailorgen.interests.rewrite.lexicon import REQUIRED_ATTRIBUTES, VocabularyLike, normalize_vocabulary
from tailorgen.interests.rewrite.prompt import chat_messages
from tailorgen.interests.rewrite.template import TemplateRewriter
from tailorgen.interests.rewrite.validation import OutputCheck, validate_output

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """The LLM could not be asked (network, HTTP status, malformed answer): the template is used."""


@dataclass(frozen=True)
class Completion:
    """An LLM's answer; ``truncated`` when the token limit, not the model, ended it."""

    text: str
    truncated: bool = False


class LLMRewriter(Rewriter):
    """Shared logic: prompt, validation and template fallback. Subclasses implement ``_complete``."""

    def __init__(
        self,
        *,
        vocabulary: VocabularyLike | None = None,
        min_chars: int = 20,
        max_chars: int = 400,
        required_attributes: Sequence[str] = REQUIRED_ATTRIBUTES,
    ):
        if min_chars < 0 or max_chars <= min_chars:
            raise ValueError(f"need 0 <= min_chars < max_chars, got min_chars={min_chars}, max_chars={max_chars}")
        self.vocabulary = None if vocabulary is None else normalize_vocabulary(vocabulary)
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.required_attributes = tuple(required_attributes)
        self._template = TemplateRewriter()

    @abstractmethod
    def _complete(self, messages: list[dict[str, str]]) -> Completion:
        """The LLM's answer to ``messages``; raise :class:`BackendError` when it cannot be had."""

    def validate(
        self, completion: Completion, item_text: str, item_tags: list[str], user_tags: list[str]
    ) -> OutputCheck:
        return validate_output(
            completion.text,
            item_text,
            item_tags,
            user_tags,
            vocabulary=self.vocabulary,
            min_chars=self.min_chars,
            max_chars=self.max_chars,
            truncated=completion.truncated,
            required_attributes=self.required_attributes,
        )

    def _fallback(self, item_text, item_tags, user_tags, reason: str, raw: str | None) -> RewriteResult:
        log.info("%s rewrite fell back to the template: %s", self.backend, reason)
        result = self._template.rewrite(item_text, item_tags, user_tags)
        result.fallback_reason = f"{self.backend}: {reason}"
        result.raw_output = raw
        return result

    def rewrite(self, item_text: str, item_tags: list[str], user_tags: list[str]) -> RewriteResult:
        try:
            completion = self._complete(chat_messages(item_text, item_tags, user_tags))
        except BackendError as e:
            return self._fallback(item_text, item_tags, user_tags, str(e), None)
        check = self.validate(completion, item_text, item_tags, user_tags)
        if not check.ok:
            return self._fallback(item_text, item_tags, user_tags, check.reason or "rejected", completion.text)
        return RewriteResult(check.text or "", self.backend, None, completion.text)
