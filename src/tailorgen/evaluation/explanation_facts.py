"""Factual explanations: does a text name an attribute that really drives the user's utility for the item?

An explanation (a review the model writes for a user and an item) is *factual* when it names, by any
of the shop's words for it, the value of one of the item's attributes that contribute most to this
user's true utility at that time. "Love the cherry-red colour." is factual for a user whose utility
for a red item comes mostly from its colour; "Fine for the price." never is.

The decomposition is the simulator's own: a user's utility is a sum over attributes of
``importance[a] * w_a(t)[value_a]`` (:mod:`tailorgen.world.users`), and each term is the oracle's
utility of that attribute alone. ``world.build._review`` cites, in a real review of a high rating,
the (at most two) largest terms above :data:`LIKED_CONTRIBUTION`; :func:`driving_attributes` picks
the same ones, so a real review that cites what the user liked is factual by construction (the
benchmark's ceiling), and one that says only "It is okay." is not.

Evaluation only: it reads the shop's ground truth through :class:`tailorgen.world.Oracle`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import numpy as np

from tailorgen.world.attributes import (
    CATEGORY_WORDS,
    COLOUR_WORDS,
    NO_SECONDARY,
    PATTERN_WORDS,
    PREFERENCE_ATTRIBUTES,
)
from tailorgen.world.oracle import Oracle

__all__ = [
    "LIKED_CONTRIBUTION",
    "attribute_contributions",
    "attribute_words",
    "driving_attributes",
    "factual_scores",
    "names_driving_attribute",
]

# The contribution above which world.build._review counts an attribute as liked (and a review of
# rating 4 or 5 may cite it): an attribute that adds less does not drive the user's utility.
LIKED_CONTRIBUTION = 0.5


def attribute_contributions(oracle: Oracle, user_id: str, item_id: str, t: float) -> list[tuple[str, str, float]]:
    """``(attribute, value, contribution)`` of each of the item's attributes to the user's utility at ``t``.

    The contribution of an attribute is the oracle's utility of that attribute alone
    (``importance[a] * w_a(t)[value]``); they sum to the item's utility without its price term.
    A solid item's secondary colour ("none") is left out, as the simulator's reviews leave it out.
    Largest first.
    """
    attrs = oracle.item_attributes(item_id)
    out = []
    for a in PREFERENCE_ATTRIBUTES:
        value = attrs[a]
        if a == "secondary_colour" and value == NO_SECONDARY:
            continue
        out.append((a, value, oracle.utility(user_id, {a: value}, t)))
    out.sort(key=lambda x: -x[2])
    return out


def driving_attributes(
    oracle: Oracle,
    user_id: str,
    item_id: str,
    t: float,
    top: int = 2,
    min_contribution: float = LIKED_CONTRIBUTION,
) -> list[tuple[str, str]]:
    """The item's attributes that drive this user's utility at ``t``: ``[(attribute, value), ...]``, best first.

    The ``top`` largest contributions (:func:`attribute_contributions`) above ``min_contribution``,
    what a real review of a high rating cites. Empty when nothing about the item adds that much
    (then no explanation is factual for it).
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    contrib = attribute_contributions(oracle, user_id, item_id, t)
    return [(a, v) for a, v, c in contrib if c > min_contribution][:top]


def attribute_words(attribute: str, value: str) -> tuple[str, ...]:
    """Every word the shop's texts use for ``value`` of ``attribute``: its name and its synonyms.

    Colours (main and secondary) by :data:`COLOUR_WORDS`, patterns by :data:`PATTERN_WORDS`,
    categories by :data:`CATEGORY_WORDS`, a brand by its name.
    """
    if attribute not in PREFERENCE_ATTRIBUTES:
        raise ValueError(f"unknown attribute '{attribute}'; known: {list(PREFERENCE_ATTRIBUTES)}")
    if value not in PREFERENCE_ATTRIBUTES[attribute] or value == NO_SECONDARY:
        raise ValueError(f"'{value}' is not a value of {attribute} that a text can name")
    synonyms = {
        "category": CATEGORY_WORDS,
        "colour": COLOUR_WORDS,
        "secondary_colour": COLOUR_WORDS,
        "pattern": PATTERN_WORDS,
    }.get(attribute, {})
    return tuple(dict.fromkeys((value, *synonyms.get(value, ()))))


@cache
def _pattern(attribute: str, value: str) -> re.Pattern:
    # Whole words, case-insensitive; a hyphen joins words ("cherry-red" is one word, and "shirt" is not
    # found in "t-shirt"), and any run of white space matches a space ("heather  grey").
    alternatives = sorted(attribute_words(attribute, value), key=len, reverse=True)
    body = "|".join(r"\s+".join(map(re.escape, w.split())) for w in alternatives)
    return re.compile(rf"(?<![\w-])(?:{body})(?![\w-])", re.IGNORECASE)


def names_driving_attribute(text: str, drivers: Sequence[tuple[str, str]]) -> bool:
    """Whether ``text`` names any of ``drivers`` (``(attribute, value)`` pairs) by any of its words.

    Matching is by whole word and case-insensitive (:func:`attribute_words`). A colour word counts
    for a driving colour whether the text says it of the main colour or of the accents.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    return any(_pattern(a, v).search(text) for a, v in drivers)


def factual_scores(
    oracle: Oracle,
    user_ids: Sequence[str],
    item_ids: Sequence[str],
    times: Sequence[float],
    texts: Sequence[str],
    top: int = 2,
) -> np.ndarray:
    """1.0 where ``texts[i]`` names a driving attribute of ``item_ids[i]`` for ``user_ids[i]`` at ``times[i]``; else 0.

    One value per unit (a benchmark's per-unit array; its mean is the metric ``factual``). ``times``
    are on the shop's clock (seconds, as in interactions.parquet).
    """
    n = len(texts)
    if n == 0:
        raise ValueError("texts is empty")
    if not len(user_ids) == len(item_ids) == len(times) == n:
        raise ValueError(
            f"{len(user_ids)} users, {len(item_ids)} items, {len(times)} times and {n} texts: need one of each per unit"
        )
    out = np.zeros(n, dtype=np.float64)
    for i, (u, item, t, text) in enumerate(zip(user_ids, item_ids, times, texts)):
        if not isinstance(text, str):
            raise ValueError(f"text {i} must be a string, got {type(text).__name__}")
        out[i] = names_driving_attribute(text, driving_attributes(oracle, u, item, float(t), top=top))
    return out
