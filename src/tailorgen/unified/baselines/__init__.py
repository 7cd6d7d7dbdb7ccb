"""Baselines the UniMP benchmark compares against, one small interface per task.

Each registry maps the method name used in the benchmark record to its class; every class of a
registry passes the same shared checks (tests/unified/test_baselines.py).

- next-item recommendation (``Recommender``): ``RECOMMENDERS``
- text search (``SearchBaseline``): ``SEARCH``
- rating prediction (``RatingBaseline``): ``RATING``
- explanation / review generation (``ExplanationBaseline``): ``EXPLANATION``
"""

from __future__ import annotations

from tailorgen.unified.baselines.explain import AttributeTemplate, ExplanationBaseline, NearestReview
from tailorgen.unified.baselines.rating import BiasedMean, MatrixFactorization, RatingBaseline
from tailorgen.unified.baselines.recommend import (
    GRU4RecRecommender,
    MostPopular,
    Recommender,
    SASRecRecommender,
    top_k,
)
from tailorgen.unified.baselines.search import BM25Search, DenseSearch, SearchBaseline

RECOMMENDERS: dict[str, type] = {
    "mostpop": MostPopular,
    "sasrec": SASRecRecommender,
    "gru4rec": GRU4RecRecommender,
}
SEARCH: dict[str, type] = {"bm25": BM25Search, "dense": DenseSearch}
RATING: dict[str, type] = {"mean": BiasedMean, "mf": MatrixFactorization}
EXPLANATION: dict[str, type] = {"nearest-review": NearestReview, "template": AttributeTemplate}

__all__ = [
    "EXPLANATION",
    "RATING",
    "RECOMMENDERS",
    "SEARCH",
    "AttributeTemplate",
    "BM25Search",
    "BiasedMean",
    "DenseSearch",
    "ExplanationBaseline",
    "GRU4RecRecommender",
    "MatrixFactorization",
    "MostPopular",
    "NearestReview",
    "RatingBaseline",
    "Recommender",
    "SASRecRecommender",
    "SearchBaseline",
    "top_k",
]
