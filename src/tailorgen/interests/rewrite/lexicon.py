"""The words validation reads attributes by: a broad lexicon of attribute words, spelling variants,
word forms, and a catalog's vocabulary in one normalized shape (:func:`normalize_vocabulary`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from tailorgen.interests.vocabulary import TagVocabulary
from tailorgen.world.attributes import CATEGORY_WORDS, COLOUR_WORDS, PATTERN_WORDS

# What a vocabulary may be given as: attribute -> {value: [synonyms]} (synonym-aware checks),
# attribute -> [allowed words] (each word its own value), or the interests stage's TagVocabulary.
VocabularyLike = Mapping[str, Sequence[str] | Mapping[str, Sequence[str]]] | TagVocabulary


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
VARIANTS = {
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

WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


def word_forms(word: str) -> set[str]:
    """The word, its variant fold and its singular guesses ("dresses" -> "dresse", "dress")."""
    word = VARIANTS.get(word, word)
    forms = {word}
    if word.endswith("es") and len(word) > 4:
        forms.add(word[:-2])
    if word.endswith("s") and len(word) > 3:
        forms.add(word[:-1])
    return {VARIANTS.get(f, f) for f in forms}


def word_set(phrases: Iterable[str], parts: bool = True) -> set[str]:
    """The forms of every word of every phrase; with ``parts``, hyphenated compounds also split."""
    out: set[str] = set()
    for phrase in phrases:
        for w in WORD.findall(str(phrase).lower()):
            out |= word_forms(w)
            if parts and "-" in w:
                for part in w.split("-"):
                    out |= word_forms(part)
    return out


def folded(text: str) -> str:
    """Lower-case words with spelling variants folded, space-joined: what phrases are matched in."""
    return " ".join(VARIANTS.get(w, w) for w in WORD.findall(text.lower()))


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
