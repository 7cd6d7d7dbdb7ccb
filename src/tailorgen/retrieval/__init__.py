"""Retrieval: FAISS vector indexes keyed by item id, and decoupled text->text / image->image retrievers.

Upstream of this stage are the encoders, which produce the embeddings; downstream, fusion and
generation consume the neighbours. Nothing here knows about datasets or models.
"""

from tailorgen.retrieval.index import KINDS, VectorIndex
from tailorgen.retrieval.retrievers import (
    EmbeddingRetriever,
    EmbeddingTable,
    ImageRetriever,
    Neighbour,
    TextRetriever,
)
from tailorgen.retrieval.sharded import ShardedIndex, load_index, merge_top_k

__all__ = [
    "KINDS",
    "EmbeddingRetriever",
    "EmbeddingTable",
    "ImageRetriever",
    "Neighbour",
    "ShardedIndex",
    "TextRetriever",
    "VectorIndex",
    "load_index",
    "merge_top_k",
]
