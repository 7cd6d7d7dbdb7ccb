"""Evaluation: the judge, metrics, statistics and reports. Nothing upstream may import it.

The image-quality metrics (FID/KID through torchmetrics) live in
:mod:`tailorgen.evaluation.image_quality`, imported on demand because torchmetrics is slow to load.
"""

from tailorgen.evaluation.metrics import (
    attribute_preservation,
    bleu,
    clip_style_score,
    copy_rate,
    diversity,
    fidelity_similarity,
    history_similarity,
    hit_rate_at_k,
    mae,
    mrr_at_k,
    ndcg_at_k,
    nearest_catalog_similarity,
    personalization_gain,
    precision_at_k,
    recall_at_k,
    rmse,
    rouge,
)
from tailorgen.evaluation.stats import bootstrap_ci, paired_bootstrap_ci, paired_test, summarize_metric

__all__ = [
    "attribute_preservation",
    "bleu",
    "bootstrap_ci",
    "clip_style_score",
    "copy_rate",
    "diversity",
    "fidelity_similarity",
    "hit_rate_at_k",
    "history_similarity",
    "mae",
    "mrr_at_k",
    "ndcg_at_k",
    "nearest_catalog_similarity",
    "paired_bootstrap_ci",
    "paired_test",
    "personalization_gain",
    "precision_at_k",
    "recall_at_k",
    "rmse",
    "rouge",
    "summarize_metric",
]
