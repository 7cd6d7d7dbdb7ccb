"""One serializer for training and inference: a user's interleaved history, then a task prompt.

Every history item is a chunk, as in the UniMP reference::

    <image> category dress price 32.99 brand Tidewear title Tidewear vintage blush sundress
    <answer> <item_17> <rate_5> Love the blush colour. <|endofchunk|>

(the id, the rating and the review are the chunk's answer: what the loss reads, so the model
learns to name an item from its content, and to rate and review it: the reference's "context
reconstruction"). After the history comes one task:

    recommendation  What is the next item recommended to the user? <answer> <item_k> <|endofchunk|>
    search          Query: red striped dress. What is the related item ID to the query based on the
                    history? <answer> <item_k> <|endofchunk|>
    rating          <image> {target text} How will the user rate this item? <answer> <rate_4> <|endofchunk|>
    explanation     <image> {target text} Explain what the user thinks of this item. <answer> {review}
                    <|endofchunk|>
    image_generation  Keywords: red stripes dress. Draw the item for the user. <answer>
                    <img_412> <img_7> ... (the item image's VQ codes, raster order) <|endofchunk|>
    next_item       What will the user choose next? Draw it and name it. <answer> <img_412> ...
                    category dress price 32.99 brand Tidewear title ... <|endofchunk|>   (unified.gnr)

Image generation is guided by the user (the history) and the keywords; either may be empty (the
trainer drops them at random, for classifier-free guidance).

The reference's train and test prompts differ (a BOS token, where ``<answer>`` stands, 5 vs 4
history items); here inference is the training sequence cut right after the task's ``<answer>``,
so the two cannot drift apart. Each field of an item's text is cut to ``max_field_words`` words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tailorgen.unified.item_ids import ItemIdentifiers
from tailorgen.unified.vocab import ANSWER, END_OF_CHUNK, IMAGE, image_code_token, rating_token, round_rating

TASKS = ("recommendation", "search", "rating", "explanation", "image_generation")
# Generate, Not Recommend's task (unified.gnr): the next item itself, drawn and named. It trains from a
# UniMP model, not with the tasks above, so TASKS (the multi-task recipe) leaves it out.
GNR_TASKS = ("next_item",)
IMAGE_TASKS = ("image_generation", "next_item")  # answered in image codes: need a VQ tokenizer and item images
PROMPTS = {
    "recommendation": "What is the next item recommended to the user?",
    "search": "What is the related item ID to the query based on the history?",
    "rating": "How will the user rate this item?",
    "explanation": "Explain what the user thinks of this item.",
    "image_generation": "Draw the item for the user.",
    "next_item": "What will the user choose next? Draw it and name it.",
}


@dataclass(frozen=True)
class Event:
    """One item of a user's history, with what the user said about it (either may be missing)."""

    item: str
    rating: float | None = None
    review: str | None = None


@dataclass(frozen=True)
class Example:
    """A history and one task. ``target`` is the item to name (recommendation, search), the item
    rated or explained, or the item whose image is drawn; ``query`` is a search's query or an image's
    keywords; answer fields that a task does not use stay None."""

    user: str
    task: str
    history: tuple[Event, ...]
    target: str
    query: str | None = None
    rating: float | None = None
    review: str | None = None

    def __post_init__(self):
        if self.task not in TASKS + GNR_TASKS:
            raise ValueError(f"task must be one of {TASKS + GNR_TASKS}, not {self.task!r}")


@dataclass(frozen=True)
class Piece:
    """A run of text; ``answer`` pieces are what the loss reads. ``images`` lists the items whose
    image fills this piece's ``<image>`` slots, in order."""

    text: str
    answer: bool = False
    images: tuple[str, ...] = ()


def field_text(value, max_words: int) -> str:
    words = str(value).split()
    return " ".join(words[:max_words])


def catalog_text(item: Mapping, max_field_words: int = 20) -> str:
    """An item as the reference writes it: category, price, brand, title (each field cut)."""
    parts = []
    for label, key in (("category", "category"), ("price", "price"), ("brand", "brand"), ("title", "title")):
        value = item.get(key)
        if value is None or value != value or str(value).strip() == "":  # missing or NaN
            continue
        if key == "price":
            value = f"{float(value):.2f}"
        parts.append(f"{label} {field_text(value, max_field_words)}")
    return " ".join(parts)


class Serializer:
    """Turns an :class:`Example` into pieces; ``texts[item]`` is each item's catalog text."""

    def __init__(
        self,
        texts: Mapping[str, str],
        ids: ItemIdentifiers,
        max_history: int = 5,
        with_images: bool = True,
        max_review_words: int = 30,
        image_codes: Mapping[str, Sequence[int]] | None = None,
    ):
        """``image_codes[item]``: the item image's VQ codes in raster order (image generation's answers)."""
        self.texts, self.ids = texts, ids
        self.max_history, self.with_images, self.max_review_words = max_history, with_images, max_review_words
        self.image_codes = image_codes

    def item_name(self, item: str) -> str:
        return " ".join(self.ids.name(item))

    def _item(self, item: str) -> Piece:
        if self.with_images:
            return Piece(f"{IMAGE} {self.texts[item]}", images=(item,))
        return Piece(self.texts[item])

    def chunk(self, event: Event) -> list[Piece]:
        answer = [self.item_name(event.item)]
        if event.rating is not None:
            answer.append(rating_token(round_rating(event.rating)))
        if event.review:
            answer.append(field_text(event.review, self.max_review_words))
        return [self._item(event.item), Piece(ANSWER), Piece(" ".join([*answer, END_OF_CHUNK]), answer=True)]

    def prompt(self, ex: Example) -> list[Piece]:
        """The task's question, up to and including ``<answer>``."""
        if ex.task in ("recommendation", "next_item"):
            return [Piece(f"{PROMPTS[ex.task]} {ANSWER}")]
        if ex.task == "search":
            return [Piece(f"Query: {field_text(ex.query, 20)}. {PROMPTS['search']} {ANSWER}")]
        if ex.task == "image_generation":
            return [Piece(f"Keywords: {field_text(ex.query or '', 20)}. {PROMPTS[ex.task]} {ANSWER}")]
        item = self._item(ex.target)
        return [item, Piece(f"{PROMPTS[ex.task]} {ANSWER}")]

    def answer(self, ex: Example) -> Piece:
        if ex.task in ("recommendation", "search"):
            text = self.item_name(ex.target)
        elif ex.task == "rating":
            text = rating_token(round_rating(ex.rating))
        elif ex.task in IMAGE_TASKS:
            if self.image_codes is None or ex.target not in self.image_codes:
                raise ValueError(f"{ex.task}: no image codes for item {ex.target!r}")
            text = " ".join(image_code_token(c) for c in self.image_codes[ex.target])
            if ex.task == "next_item":  # then its name: the item's catalog text
                text += f" {self.texts[ex.target]}"
        else:
            text = field_text(ex.review, self.max_review_words)
        return Piece(f"{text} {END_OF_CHUNK}", answer=True)

    def pieces(self, ex: Example, with_answer: bool = True) -> list[Piece]:
        """The whole sequence (training), or everything up to the task's ``<answer>`` (inference)."""
        out: list[Piece] = []
        for event in ex.history[-self.max_history :] if self.max_history else ():
            out += self.chunk(event)
        out += self.prompt(ex)
        if with_answer:
            out.append(self.answer(ex))
        return out


def render(pieces: Sequence[Piece]) -> str:
    """The sequence as one string (for reading and the docs; the model reads token ids)."""
    return " ".join(p.text for p in pieces)
