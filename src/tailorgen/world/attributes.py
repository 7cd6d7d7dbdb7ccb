"""The attribute vocabulary of the simulated shop, with the words the texts may use for each value.

Canonical names (the first column) are the tag vocabulary; synonyms give the texts variety
so that a model has to learn meaning, not string matching.
"""

from __future__ import annotations

from dataclasses import dataclass

# In Fashion-MNIST label order, so a silhouette's label is its category index.
CATEGORIES: tuple[str, ...] = (
    "t-shirt",
    "trousers",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("t-shirt", "tee", "top"),
    "trousers": ("trousers", "pants", "slacks"),
    "pullover": ("pullover", "sweater", "jumper"),
    "dress": ("dress", "frock", "sundress"),
    "coat": ("coat", "overcoat", "jacket"),
    "sandal": ("sandals", "slides", "sandal"),
    "shirt": ("shirt", "button-down", "blouse"),
    "sneaker": ("sneakers", "trainers", "running shoes"),
    "bag": ("bag", "handbag", "tote"),
    "ankle boot": ("ankle boots", "booties", "boots"),
}

# Base price per category in the shop's currency.
CATEGORY_PRICE: dict[str, float] = {
    "t-shirt": 18,
    "trousers": 45,
    "pullover": 50,
    "dress": 60,
    "coat": 120,
    "sandal": 35,
    "shirt": 40,
    "sneaker": 80,
    "bag": 70,
    "ankle boot": 95,
}

# RGB values chosen to stay distinguishable at 32x32 under shading.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 30, 35),
    "orange": (245, 130, 20),
    "yellow": (240, 215, 40),
    "green": (40, 160, 60),
    "teal": (0, 140, 140),
    "blue": (40, 100, 230),
    "navy": (20, 30, 100),
    "purple": (130, 50, 170),
    "pink": (245, 120, 185),
    "brown": (125, 75, 35),
    "black": (25, 25, 25),
    "grey": (140, 140, 140),
}

COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet", "cherry-red"),
    "orange": ("orange", "tangerine", "burnt orange"),
    "yellow": ("yellow", "mustard", "lemon"),
    "green": ("green", "emerald", "forest green"),
    "teal": ("teal", "turquoise", "petrol"),
    "blue": ("blue", "cobalt", "royal blue"),
    "navy": ("navy", "midnight", "ink"),
    "purple": ("purple", "violet", "plum"),
    "pink": ("pink", "rose", "blush"),
    "brown": ("brown", "chocolate", "tan"),
    "black": ("black", "jet-black", "charcoal"),
    "grey": ("grey", "slate", "heather grey"),
}

PATTERNS: tuple[str, ...] = ("solid", "stripes", "dots", "checks", "zigzag", "gradient")

# Adjectives that say the pattern; the first is also how a review or query names it.
PATTERN_WORDS: dict[str, tuple[str, ...]] = {
    "solid": ("plain", "solid", "single-colour"),
    "stripes": ("striped", "pinstripe", "banded"),
    "dots": ("polka-dot", "dotted", "spotted"),
    "checks": ("checked", "plaid", "gingham"),
    "zigzag": ("zigzag", "chevron", "wavy-line"),
    "gradient": ("ombre", "gradient", "colour-fade"),
}

# "none" is the secondary colour of a solid item: nothing in the image shows a second colour.
NO_SECONDARY = "none"
SECONDARY_COLOURS: tuple[str, ...] = (*COLOURS, NO_SECONDARY)

STYLES: tuple[str, ...] = ("casual", "formal", "sporty", "vintage", "minimal", "bold")


@dataclass(frozen=True)
class Brand:
    name: str
    categories: tuple[str, ...]  # what the brand mostly makes
    palette: tuple[str, ...]  # colours it favours
    patterns: tuple[str, ...]  # patterns it favours
    price_level: float  # multiplier on the category base price
    style: str


BRANDS: tuple[Brand, ...] = (
    Brand("Aurelle", ("dress", "shirt", "bag"), ("pink", "purple", "red"), ("dots", "solid"), 1.6, "formal"),
    Brand(
        "Northwind", ("coat", "pullover", "ankle boot"), ("navy", "grey", "brown"), ("checks", "solid"), 1.3, "vintage"
    ),
    Brand(
        "Kobaltz", ("sneaker", "t-shirt", "trousers"), ("blue", "black", "teal"), ("stripes", "zigzag"), 1.0, "sporty"
    ),
    Brand("Maison Verre", ("dress", "coat", "bag"), ("black", "grey", "navy"), ("solid", "gradient"), 2.2, "minimal"),
    Brand(
        "Tidewear", ("t-shirt", "sandal", "shirt"), ("teal", "yellow", "orange"), ("stripes", "gradient"), 0.7, "casual"
    ),
    Brand("Brisa", ("sandal", "dress", "t-shirt"), ("yellow", "pink", "green"), ("dots", "zigzag"), 0.8, "casual"),
    Brand(
        "Orbitex", ("sneaker", "pullover", "trousers"), ("orange", "green", "black"), ("zigzag", "checks"), 1.1, "bold"
    ),
    Brand(
        "Lumen & Lace", ("shirt", "dress", "pullover"), ("purple", "red", "brown"), ("checks", "dots"), 1.4, "vintage"
    ),
)
BRAND_NAMES: tuple[str, ...] = tuple(b.name for b in BRANDS)

# The attributes a person (or the judge) can read off an image.
VISUAL_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "colour": tuple(COLOURS),
    "pattern": PATTERNS,
    "secondary_colour": SECONDARY_COLOURS,
}

# Every attribute a user's taste has weights over.
PREFERENCE_ATTRIBUTES: dict[str, tuple[str, ...]] = {**VISUAL_ATTRIBUTES, "brand": BRAND_NAMES}


def tag_vocabulary() -> list[str]:
    """Every canonical tag an item may carry: attribute values, brands and styles."""
    return [*CATEGORIES, *COLOURS, *PATTERNS, *BRAND_NAMES, *STYLES]


def prompt_vocabulary() -> dict[str, dict[str, list[str]]]:
    """Text prompts per visual attribute value, for zero-shot tagging in a shared text-image space.

    Several phrasings per value are averaged (prompt ensembling, as CLIP does), phrased the
    way the shop's own texts speak.
    """
    vocab: dict[str, dict[str, list[str]]] = {
        "category": {
            c: [f"a {w}" for w in CATEGORY_WORDS[c]] + [f"{w} by a brand" for w in CATEGORY_WORDS[c]]
            for c in CATEGORIES
        },
        "colour": {
            c: [p.format(w=w) for w in COLOUR_WORDS[c] for p in ("Comes in {w}.", "{w} colour", "a {w} item")]
            for c in COLOURS
        },
        "pattern": {
            p: [t.format(w=w) for w in PATTERN_WORDS[p] for t in ("Features a {w} finish.", "{w} pattern")]
            for p in PATTERNS
        },
        "secondary_colour": {
            c: [t.format(w=w) for w in COLOUR_WORDS[c] for t in ("with {w} details", "{w} accents")] for c in COLOURS
        },
    }
    vocab["secondary_colour"][NO_SECONDARY] = ["plain, a single colour", "solid colour, no pattern"]
    return vocab
