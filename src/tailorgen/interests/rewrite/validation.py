"""Validation of LLM outputs: is a rewrite usable as an image prompt, and does it invent no attribute?

An LLM may drop the item's facts or invent new ones (a colour the item does not come in). The
generated image is conditioned on the rewritten text, so an invented attribute would be painted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tailorgen.interests.rewrite.lexicon import (
    ATTRIBUTE_LEXICON,
    GROUNDED_ATTRIBUTES,
    REQUIRED_ATTRIBUTES,
    WORD,
    VocabularyLike,
    folded,
    normalize_vocabulary,
    word_forms,
    word_set,
)
from tailorgen.interests.rewrite.prompt import SYSTEM_PROMPT

# Prompt scaffolding a small model sometimes echoes instead of answering.
_ECHO_MARKERS = ("product:", "tags:", "shopper likes:", "<|im_start|>", "<|im_end|>")
_LABEL_PREFIX = re.compile(r"^\s*(?:new\s+)?(?:product\s+)?(?:description|rewritten text|rewrite)\s*:\s*", re.I)
_ECHO_NGRAM = 6  # this many consecutive words shared with the instructions or the example is an echo
_REPEAT_NGRAM, _REPEAT_TIMES = 4, 3  # a 4-word run said 3 times is a degenerate loop


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


# The instructions only: reusing the example answer's phrasing is style, not an echo (and copying
# its facts fails the attribute checks).
_PROMPT_NGRAMS = set(_ngrams(WORD.findall(SYSTEM_PROMPT.lower()), _ECHO_NGRAM))


@dataclass(frozen=True)
class OutputCheck:
    """What :func:`validate_output` decided: the cleaned text, or None and the reason why not."""

    text: str | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def _clean(raw: str) -> str:
    """Strip whitespace, a leading "Description:" label and wrapping quotes."""
    text = raw.strip()
    for _ in range(2):  # either may wrap the other: '"Description: ..."' or 'Description: "..."'
        text = _LABEL_PREFIX.sub("", text).strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1].strip()
    return text


def _finish(text: str, truncated: bool) -> str | None:
    """Whole sentences only. A text cut off by the token limit loses its unfinished last sentence
    (None if it has no finished one); one that merely lacks a final period gets one."""
    if not text or text[-1] in ".!?":
        return text
    if not truncated:
        return text + "."
    last = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    return text[: last + 1] if last > 0 else None


def _item_value(item_tags: Sequence[str], values: Mapping[str, Sequence[str]]) -> str | None:
    """The item's value of one attribute: the one value among its tags (None if none or several)."""
    known = {v.lower(): v for v in values}
    found = {known[t.strip().lower()] for t in item_tags if t.strip().lower() in known}
    return found.pop() if len(found) == 1 else None


def _mentioned_values(text: str, values: Mapping[str, Sequence[str]]) -> set[str]:
    """The values some word or phrase of which ``text`` contains (plurals too). Longer phrases are
    matched first and consumed, so "t-shirt" is not also a "shirt"; a hyphen otherwise separates
    words, so "ink-coloured" names ink."""
    remaining = folded(text)
    phrases = sorted(((folded(w), v) for v, words in values.items() for w in words), key=lambda p: -len(p[0]))
    found = set()
    for phrase, value in phrases:
        if not phrase:
            continue
        pattern = rf"(?<![\w-]){re.escape(phrase)}(?:s|es)?(?![\w])|(?<![\w]){re.escape(phrase)}(?:s|es)?(?![\w-])"
        remaining, n = re.subn(pattern, "|", remaining)
        if n:
            found.add(value)
    return found


def _attribute_problem(
    text: str,
    vocabulary: dict[str, dict[str, list[str]]],
    item_text: str,
    item_tags: Sequence[str],
    user_tags: Sequence[str],
) -> str | None:
    """Why ``text`` names an attribute value it should not, or None.

    A word is an attribute word of attribute A when :data:`ATTRIBUTE_LEXICON` lists it under A or
    the vocabulary has it (as a one-word phrase) under A. Words of the request (item text and tags,
    user tags) are fine, and so are their synonyms (words of the same value). Otherwise a lexicon
    word missing from A's vocabulary is out of vocabulary, and an attribute word of a grounded
    attribute (colour, pattern) is ungrounded: the item does not have it and the user did not ask
    for it. Hyphenated words are judged whole first, then by part ("hot-pink" by "pink").
    """
    context = word_set([item_text, *item_tags, *user_tags])
    for values in vocabulary.values():
        for words in values.values():
            group = word_set(words, parts=False)
            if group & context:
                context |= group
    checked = [a for a in vocabulary if a in ATTRIBUTE_LEXICON or a in GROUNDED_ATTRIBUTES]
    allowed = {a: word_set(w for words in vocabulary[a].values() for w in words) for a in checked}
    single = {
        a: word_set((w for words in vocabulary[a].values() for w in words if " " not in w), parts=False)
        for a in checked
    }

    def is_attribute_word(forms: set[str]) -> bool:
        return any(forms & (ATTRIBUTE_LEXICON.get(a, frozenset()) | single[a]) for a in checked)

    def judge(word: str) -> str | None:
        forms = word_forms(word)
        if forms & context:
            return None
        for a in checked:
            lexicon = ATTRIBUTE_LEXICON.get(a, frozenset())
            if forms & lexicon and not forms & allowed[a]:
                return f"{a} {word!r} is not in the catalog's vocabulary"
            if a in GROUNDED_ATTRIBUTES and forms & (lexicon | single[a]):
                return f"{a} {word!r} is neither the item's nor one of the user's interests"
        return None

    for word in WORD.findall(text.lower()):
        if "-" in word and not is_attribute_word(word_forms(word)):
            problems = [judge(part) for part in word.split("-")]
        else:
            problems = [judge(word)]
        if problem := next((p for p in problems if p), None):
            return problem
    return None


def _form_problem(text: str, min_chars: int, max_chars: int) -> str | None:
    """Why the cleaned ``text`` is no usable prompt (empty, an echo, too short or long, a loop), or None."""
    if not text:
        return "empty output"
    low = text.lower()
    words = WORD.findall(low)
    if any(m in low for m in _ECHO_MARKERS) or set(_ngrams(words, _ECHO_NGRAM)) & _PROMPT_NGRAMS:
        return "output echoes the prompt"
    if len(text) < min_chars:
        return f"output too short ({len(text)} < {min_chars} characters)"
    if len(text) > max_chars:
        return f"output too long ({len(text)} > {max_chars} characters)"
    counts = Counter(_ngrams(words, _REPEAT_NGRAM))
    if counts and max(counts.values()) >= _REPEAT_TIMES:
        return "output repeats itself"
    return None


def _fact_problem(
    text: str,
    vocabulary: dict[str, dict[str, list[str]]],
    item_text: str,
    item_tags: Sequence[str],
    user_tags: Sequence[str],
    required_attributes: Sequence[str],
) -> str | None:
    """Why ``text`` misstates the item (an attribute it should not name, another category, a dropped
    fact), or None."""
    if problem := _attribute_problem(text, vocabulary, item_text, item_tags, user_tags):
        return problem
    categories = vocabulary.get("category")
    if categories and (own := _item_value(item_tags, categories)) is not None:
        named = _mentioned_values(text, categories)
        if named and own not in named:
            return f"output calls the item a {', '.join(sorted(named))}, but it is a {own}"
    for attribute in required_attributes:
        values = vocabulary.get(attribute)
        if (
            values
            and (own := _item_value(item_tags, values)) is not None
            and own not in _mentioned_values(text, values)
        ):
            return f"output does not keep the item's {attribute} ({own})"
    return None


def validate_output(
    raw: str | None,
    item_text: str,
    item_tags: Sequence[str],
    user_tags: Sequence[str],
    *,
    vocabulary: VocabularyLike | None = None,
    min_chars: int = 20,
    max_chars: int = 400,
    truncated: bool = False,
    required_attributes: Sequence[str] = REQUIRED_ATTRIBUTES,
) -> OutputCheck:
    """Accept an LLM's rewrite only if it is usable as an image prompt and invents no attribute.

    The output is stripped of whitespace, a leading "Description:" label and wrapping quotes;
    when ``truncated`` (the token limit stopped it) an unfinished last sentence is dropped. It is
    rejected, in this order, when it is:

    - empty, or cut off before finishing a sentence;
    - an echo of the prompt (its labels, or 6 words in a row from the instructions);
    - shorter than ``min_chars`` or longer than ``max_chars``;
    - stuck in a loop (a 4-word run said 3 times);
    - naming an attribute value it should not (see ``_attribute_problem``): a value outside the
      catalog's vocabulary, or a colour or pattern that neither the item nor the user's interests have;
    - calling the item another category: the item's category is found among ``item_tags`` and
      the output names another category but not the item's own;
    - dropping a fact: for each of ``required_attributes`` whose item value is among
      ``item_tags``, the output names neither that value nor a synonym of it.

    The attribute checks need ``vocabulary`` (any form :func:`normalize_vocabulary` takes); only
    its attributes in :data:`ATTRIBUTE_LEXICON` or :data:`GROUNDED_ATTRIBUTES` are checked, and
    only a "category" attribute enables the category check. Give values with their synonyms
    ({value: [synonyms]}) where known: a synonym of a requested value is then accepted.
    """
    if raw is None or not raw.strip():
        return OutputCheck(None, "empty output")
    text = _finish(_clean(raw), truncated)
    if text is None:
        return OutputCheck(None, "cut off by the token limit before finishing a sentence")
    problem = _form_problem(text, min_chars, max_chars)
    if problem is None and vocabulary is not None:
        vocab = normalize_vocabulary(vocabulary)
        problem = _fact_problem(text, vocab, item_text, item_tags, user_tags, required_attributes)
    return OutputCheck(text, None) if problem is None else OutputCheck(None, problem)
