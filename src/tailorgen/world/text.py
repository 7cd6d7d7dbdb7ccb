"""Item texts, reviews and search queries from varied templates with synonyms.

In a share of items (WorldConfig.p_text_omits_colour / p_text_omits_pattern) the title,
description and tags never mention the primary colour, or the pattern and second colour,
so only the image carries that attribute and both modalities matter.
"""

from __future__ import annotations

import numpy as np

from tailorgen.world.attributes import CATEGORY_WORDS, COLOUR_WORDS, NO_SECONDARY, PATTERN_WORDS

TITLE_TEMPLATES = (
    "{brand} {colour} {pattern} {cat}",
    "{colour} {pattern} {cat} by {brand}",
    "{brand} {cat}, {pattern}, in {colour}",
    "The {pattern} {cat} from {brand} in {colour}",
    "{brand} {style} {colour} {cat}",
)
MATERIAL = ("cotton", "linen", "wool blend", "recycled polyester", "organic cotton", "denim", "soft jersey", "leather")
FIT = ("a relaxed fit", "a slim cut", "a regular fit", "an oversized shape", "a tailored silhouette")
OCCASION = (
    "everyday wear",
    "the office",
    "weekends away",
    "evenings out",
    "the gym",
    "travel",
    "warm days",
    "cold days",
)
DESC_SENTENCES = (
    "Made from {material} with {fit}.",
    "A {style} piece for {occasion}.",
    "Designed by {brand} for {occasion}.",
    "Comes in {colour_phrase}.",
    "Features a {pattern_phrase} finish.",
    "Easy care: machine washable {material}.",
)
REVIEW_LIKE = (
    "Love the {thing}.",
    "Exactly the {thing} I wanted.",
    "Really happy with the {thing}.",
    "Great {thing}, would buy again.",
)
REVIEW_DISLIKE = ("Not a fan of the {thing}.", "Sadly the {thing} did not work for me.", "Disappointed by the {thing}.")
REVIEW_NEUTRAL = ("It is okay.", "Fine for the price.", "Does the job.")


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def pattern_phrase(pattern: str, secondary: str, rng: np.random.Generator) -> str:
    word = _pick(rng, PATTERN_WORDS[pattern])
    if secondary == NO_SECONDARY:
        return word
    return f"{word} {_pick(rng, COLOUR_WORDS[secondary])}"


def item_text(
    attrs: dict, style: str, omit_colour: bool, omit_pattern: bool, rng: np.random.Generator
) -> tuple[str, str, list[str]]:
    """(title, description, tags) for an item. Omitted attributes appear in none of the three."""
    colour = "" if omit_colour else _pick(rng, COLOUR_WORDS[attrs["colour"]])
    pattern = "" if omit_pattern else _pick(rng, PATTERN_WORDS[attrs["pattern"]])
    cat = _pick(rng, CATEGORY_WORDS[attrs["category"]])
    title = _pick(rng, TITLE_TEMPLATES).format(
        brand=attrs["brand"], colour=colour, pattern=pattern, cat=cat, style=style
    )
    title = " ".join(title.replace(", ,", ",").replace(" ,", ",").split()).replace(", in ", " in ").strip(" ,")
    title = title.replace("in  ", "in ").removesuffix(" in")

    fields = {
        "material": _pick(rng, MATERIAL),
        "fit": _pick(rng, FIT),
        "occasion": _pick(rng, OCCASION),
        "style": style,
        "brand": attrs["brand"],
        "colour_phrase": _pick(rng, COLOUR_WORDS[attrs["colour"]]),
        "pattern_phrase": pattern_phrase(attrs["pattern"], attrs["secondary_colour"], rng),
    }
    pool = [s for s in DESC_SENTENCES if not (omit_colour and "{colour_phrase}" in s)]
    pool = [s for s in pool if not (omit_pattern and "{pattern_phrase}" in s)]
    n = int(rng.integers(2, 4))
    chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False))]
    # Items whose text keeps an attribute say it at least once in the description too.
    for key, sentence in (("colour_phrase", DESC_SENTENCES[3]), ("pattern_phrase", DESC_SENTENCES[4])):
        omitted = omit_colour if key == "colour_phrase" else omit_pattern
        if not omitted and sentence not in chosen and rng.random() < 0.5:
            chosen.append(sentence)
    description = " ".join(s.format(**fields) for s in chosen)

    tags = [attrs["category"], attrs["brand"], style]
    if not omit_colour:
        tags.append(attrs["colour"])
    if not omit_pattern:
        tags.append(attrs["pattern"])
    return title, description, tags


def attribute_phrase(attribute: str, value: str, rng: np.random.Generator) -> str:
    if attribute == "colour":
        return f"{_pick(rng, COLOUR_WORDS[value])} colour"
    if attribute == "pattern":
        return "plain look" if value == "solid" else f"{_pick(rng, PATTERN_WORDS[value])} pattern"
    if attribute == "secondary_colour":
        return f"{_pick(rng, COLOUR_WORDS[value])} accents"
    if attribute == "category":
        return f"{_pick(rng, CATEGORY_WORDS[value])} itself"
    if attribute == "brand":
        return f"{value} quality"
    raise ValueError(attribute)


def review_text(rating: int, liked: list[tuple[str, str]], disliked: list[tuple[str, str]], rng) -> str:
    """A short review that cites what the user liked (high ratings) or disliked (low ones)."""
    if rating >= 4 and liked:
        parts = [_pick(rng, REVIEW_LIKE).format(thing=attribute_phrase(a, v, rng)) for a, v in liked[:2]]
    elif rating <= 2 and disliked:
        parts = [_pick(rng, REVIEW_DISLIKE).format(thing=attribute_phrase(a, v, rng)) for a, v in disliked[:2]]
    else:
        parts = [_pick(rng, REVIEW_NEUTRAL)]
    return " ".join(parts)


def query_text(attrs: dict, rng: np.random.Generator) -> str:
    """What a shopper types to find an item: its category plus one or two other attributes."""
    words = []
    if rng.random() < 0.8:
        words.append(_pick(rng, COLOUR_WORDS[attrs["colour"]]))
    if attrs["pattern"] != "solid" and rng.random() < 0.6:
        words.append(_pick(rng, PATTERN_WORDS[attrs["pattern"]]))
    words.append(_pick(rng, CATEGORY_WORDS[attrs["category"]]))
    if rng.random() < 0.3:
        words.insert(0, attrs["brand"])
    if rng.random() < 0.15:
        words.insert(0, _pick(rng, ("cheap", "affordable", "premium", "nice")))
    return " ".join(words)
