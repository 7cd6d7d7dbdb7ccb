"""The tag vocabulary: canonical tags, the words that express each, and the attribute each belongs to."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tailorgen.data import Dataset
from tailorgen.world.knowledge import DatasetKnowledge, shop_attribute_words


@dataclass
class TagVocabulary:
    """``synonyms``: canonical tag -> phrases that express it (lower case, the tag itself included).
    ``attribute_of``: canonical tag -> the attribute it is a value of ("colour", "category", ...)."""

    synonyms: dict[str, list[str]]
    attribute_of: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for tag, words in self.synonyms.items():
            words = [w.lower() for w in words]
            if tag.lower() not in words:
                words.insert(0, tag.lower())
            self.synonyms[tag] = words
        for tag in self.synonyms:
            self.attribute_of.setdefault(tag, "tag")

    @property
    def tags(self) -> list[str]:
        return list(self.synonyms)

    def of_attribute(self, attribute: str) -> list[str]:
        return [t for t, a in self.attribute_of.items() if a == attribute]

    @classmethod
    def from_words(cls, words: dict[str, dict[str, list[str]]]) -> TagVocabulary:
        """attribute -> canonical tag -> the words that express it (``DatasetKnowledge.attribute_words``)."""
        synonyms = {tag: list(w) for table in words.values() for tag, w in table.items()}
        attribute_of = {tag: attribute for attribute, table in words.items() for tag in table}
        return cls(synonyms, attribute_of)

    @classmethod
    def from_shop(cls) -> TagVocabulary:
        """The simulated shop's attributes with every synonym its texts use."""
        return cls.from_words(shop_attribute_words())

    @classmethod
    def for_dataset(cls, dataset: Dataset, knowledge: DatasetKnowledge) -> TagVocabulary:
        """The dataset's own attribute words where it has them (a shop), else the tags its items carry."""
        words = knowledge.attribute_words()
        return cls.from_words(words) if words is not None else cls.from_dataset(dataset)

    @classmethod
    def from_dataset(cls, dataset: Dataset, min_count: int = 2, max_tags: int = 2000) -> TagVocabulary:
        """For real catalogs: the tags items carry (and their categories), each its own only synonym."""
        counts: Counter = Counter()
        for tags in dataset.items.column("tags").to_pylist():
            counts.update(t.strip().lower() for t in tags or [] if t and t.strip())
        attribute_of = {}
        for cat in dataset.items.column("category").to_pylist():
            if cat:
                counts[cat.lower()] += 1
                attribute_of[cat.lower()] = "category"
        kept = [t for t, n in counts.most_common(max_tags) if n >= min_count]
        return cls({t: [t] for t in kept}, {t: attribute_of.get(t, "tag") for t in kept})
