"""The one list of metrics a benchmark may report: name, labels, which direction is better, digits.

Every table that shows a metric reads it from here: the benchmarks' text tables, the HTML report
(`tailorgen eval`) and the markdown tables of docs/benchmarks.md (``benchmarks/shop_tables.py``).
:func:`tailorgen.evaluation.runner.build_record` refuses a metric that is not registered, so a new
benchmark adds its metrics here once and every table then knows how to show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower", "neither"]
Aggregate = Literal["mean", "rms"]


@dataclass(frozen=True)
class MetricInfo:
    """How to show a metric. ``direction`` says which way is better; "neither" for controls.

    ``aggregate`` says how per-unit values become the metric: "mean" (most metrics), or "rms"
    (root mean square: the per-unit values are errors, and the metric is RMSE).
    """

    name: str
    label: str  # one line for reports: what it is and how it is measured
    column: str  # a short table header
    direction: Direction
    digits: int = 2  # decimals in published tables
    aggregate: Aggregate = "mean"


def _ranking(k: int) -> tuple[MetricInfo, ...]:
    return (
        MetricInfo(f"hr@{k}", f"hit rate@{k}: the held-out item is in the top {k}", f"HR@{k}", "higher", 3),
        MetricInfo(f"ndcg@{k}", f"NDCG@{k} of the held-out item", f"NDCG@{k}", "higher", 3),
        MetricInfo(f"mrr@{k}", f"mean reciprocal rank@{k} of the held-out item", f"MRR@{k}", "higher", 3),
    )


_ALL = (
    # Personalized generation (the I-AM-G benchmark): one output per (user, item).
    MetricInfo(
        "gain_intended",
        "personalization gain, intended user (oracle utility, judge-read attributes)",
        "gain, intended user",
        "higher",
    ),
    MetricInfo("gain_mismatched", "gain for a mismatched user (control)", "gain, mismatched user", "neither"),
    MetricInfo("fidelity", "fidelity: judge reads the target's category", "fidelity", "higher"),
    MetricInfo(
        "history_similarity",
        "history similarity (cosine to the user's history images)",
        "history similarity",
        "higher",
        3,
    ),
    MetricInfo(
        "text_alignment",
        "text alignment (100 x max(cos, 0) to the rewritten text)",
        "text alignment",
        "higher",
        1,
    ),
    MetricInfo("novelty", "novelty: not a near-copy of a catalog item", "novelty (not a near-copy)", "higher"),
    MetricInfo("diversity", "diversity: mean pairwise cosine distance among one user's images", "diversity", "higher"),
    # Recommendation and search (next: the unified model): one held-out item per user or query.
    *_ranking(3),
    *_ranking(5),
    *_ranking(10),
    # Rating prediction.
    MetricInfo("rmse", "root mean squared error of predicted ratings", "RMSE", "lower", 3, aggregate="rms"),
    MetricInfo("mae", "mean absolute error of predicted ratings", "MAE", "lower", 3),
    # Explanation (review) generation.
    MetricInfo(
        "bleu4",
        "BLEU-4 of the generated explanation against the review (smoothed sentence BLEU, mean over units)",
        "BLEU-4",
        "higher",
        3,
    ),
    MetricInfo(
        "unigram_precision",
        "BLEU-1 style unigram precision of the explanation against the review, as the UniMP reference code reports",
        "unigram precision",
        "higher",
        3,
    ),
    MetricInfo("rouge_1", "ROUGE-1 F1 against the review", "ROUGE-1", "higher", 3),
    MetricInfo("rouge_2", "ROUGE-2 F1 against the review", "ROUGE-2", "higher", 3),
    MetricInfo("rouge_l", "ROUGE-L F1 against the review", "ROUGE-L", "higher", 3),
    MetricInfo(
        "factual",
        "share of explanations that name an attribute that really drives this user's utility for the item "
        "(oracle, evaluation only)",
        "factual",
        "higher",
    ),
    # Image generation in the unified model (images as tokens).
    MetricInfo(
        "keyword_match",
        "share of images on which the judge reads the asked category, colour and pattern",
        "keyword match",
        "higher",
        3,
    ),
    # Generate, Not Recommend: per user, the items drawn (or recommended) for their next step.
    MetricInfo(
        "future_utility",
        "oracle utility, at the time of the user's held-out interaction, of the judge-read attributes",
        "future utility",
        "higher",
        3,
    ),
    MetricInfo(
        "validity", "share of items on which the judge reads a category with probability >= 0.5", "validity", "higher"
    ),  # fmt: skip
    MetricInfo(
        "future_similarity",
        "cosine of the item's image embedding to the user's held-out future items",
        "similarity to future",
        "higher",
        3,
    ),
    MetricInfo(
        "past_similarity",
        "cosine of the item's image embedding to the user's history items",
        "similarity to past",
        "neither",
        3,
    ),
    MetricInfo(
        "utility_open",
        "oracle utility (for the user, at the request's time) of the judge-read attributes the keywords leave open",
        "utility of open attributes",
        "higher",
        3,
    ),
)
METRICS: dict[str, MetricInfo] = {m.name: m for m in _ALL}


def metric_info(name: str) -> MetricInfo:
    """The registered description of ``name``; a ``KeyError`` naming the registry if there is none."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(
            f"metric '{name}' is not registered; add it to tailorgen.evaluation.registry.METRICS "
            f"(registered: {', '.join(METRICS)})"
        ) from None
