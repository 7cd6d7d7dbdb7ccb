"""The chat both LLM backends send: instructions, one worked example, then the request."""

from __future__ import annotations

from collections.abc import Sequence

from tailorgen.interests.rewrite.template import clean_tags

SYSTEM_PROMPT = (
    "You write short product descriptions for an online fashion shop. Given a product, its tags and a "
    "shopper's interests, write one or two sentences that keep the product's facts (what it is, its colour, "
    "pattern and brand) and say why it suits the shopper's interests. Never give the product a colour or "
    "pattern it does not have."
)


def prompt_block(item_text: str, item_tags: Sequence[str], user_tags: Sequence[str]) -> str:
    """One request as the model reads it: the product, its tags and the shopper's interests."""
    return (
        f"Product: {item_text.strip()}\n"
        f"Tags: {', '.join(clean_tags(item_tags)) or 'none'}\n"
        f"Shopper likes: {', '.join(clean_tags(user_tags)) or 'none'}"
    )


# One worked example: a 135M model follows a shown answer far better than a described one. Its
# colour and pattern are the kind a copying model leaks; validation rejects such leaks.
EXAMPLE_REQUEST = prompt_block(
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
        {"role": "user", "content": prompt_block(item_text, item_tags, user_tags)},
    ]
