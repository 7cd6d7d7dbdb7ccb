"""The I-AM-G template: ``"<item text>. It is about <item tags>. Maybe related to <user tags>."``.

It is deterministic and never fails, so it is also what every LLM backend falls back to.
"""

from __future__ import annotations

from collections.abc import Iterable

from tailorgen.interests.rewrite.base import Rewriter, RewriteResult


def clean_tags(tags: Iterable[str] | None) -> list[str]:
    """Stripped, non-empty, de-duplicated (case-insensitively), first occurrence kept."""
    out: list[str] = []
    seen: set[str] = set()
    for t in tags or []:
        t = str(t).strip()
        if t and t.lower() not in seen:
            seen.add(t.lower())
            out.append(t)
    return out


def as_sentence(text: str) -> str:
    """``text`` ending in sentence punctuation: a period is added only where none is (no '..')."""
    text = text.strip().rstrip(",;:").rstrip()
    if text and text[-1] not in ".!?":
        text += "."
    return text


class TemplateRewriter(Rewriter):
    """The I-AM-G template. A sentence whose tag list is empty is left out, as is an empty item text."""

    backend = "template"

    def rewrite(self, item_text: str, item_tags: list[str], user_tags: list[str]) -> RewriteResult:
        parts = []
        if item_text and item_text.strip():
            parts.append(as_sentence(item_text))
        if tags := clean_tags(item_tags):
            parts.append(f"It is about {', '.join(tags)}.")
        if tags := clean_tags(user_tags):
            parts.append(f"Maybe related to {', '.join(tags)}.")
        return RewriteResult(" ".join(parts), self.backend)

    @property
    def spec(self) -> str:
        return "template"
