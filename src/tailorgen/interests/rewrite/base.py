"""The rewriter interface: :class:`Rewriter` and what a rewrite returns, :class:`RewriteResult`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class RewriteResult:
    """One rewritten text and how it came to be.

    ``backend`` names what produced ``text`` ("template", "local-llm", "http"): after a fallback
    it is "template", ``fallback_reason`` says why the LLM's answer was not used and
    ``raw_output`` keeps that answer (None when the LLM never answered).
    """

    text: str
    backend: str
    fallback_reason: str | None = None
    raw_output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Rewriter(ABC):
    """Rewrite an item's text given its tags and the user's top interest tags.

    ``user_tags`` are expected most frequent first (``InterestProfile.top(n)``): the rewriters use
    them as given and do not choose how many to keep, so the caller controls the I-AM-G top-k.
    """

    backend: str

    @abstractmethod
    def rewrite(self, item_text: str, item_tags: list[str], user_tags: list[str]) -> RewriteResult:
        """The personalized text for one item."""

    @property
    @abstractmethod
    def spec(self) -> str:
        """The :func:`make_rewriter` spec that rebuilds this rewriter, for run manifests."""
