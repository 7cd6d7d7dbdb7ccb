"""Evaluation: the judge, metrics, statistics, the benchmark record and reports. Nothing upstream may import it.

Every benchmark writes one record layout (:mod:`tailorgen.evaluation.runner`) with metrics from one
registry (:mod:`tailorgen.evaluation.registry`); ``tailorgen eval`` renders any such record.

The image-quality metrics (FID/KID through torchmetrics) live in
:mod:`tailorgen.evaluation.image_quality`, imported on demand because torchmetrics is slow to load.
"""

from tailorgen.evaluation.metrics import (
    COPY_THRESHOLD,
    attribute_preservation,
    bleu,
    clip_style_score,
    copy_rate,
    diversity,
    fidelity_similarity,
    history_similarity,
    history_similarity_per_unit,
    hit_rate_at_k,
    mae,
    mrr_at_k,
    ndcg_at_k,
    nearest_catalog_similarity,
    novelty,
    personalization_gain,
    precision_at_k,
    recall_at_k,
    rmse,
    rouge,
)
from tailorgen.evaluation.registry import METRICS, MetricInfo, metric_info
from tailorgen.evaluation.runner import Comparison, Task, build_record, read_record, write_record
from tailorgen.evaluation.stats import bootstrap_ci, paired_bootstrap_ci, paired_test, summarize_metric

__all__ = [
    "COPY_THRESHOLD",
    "METRICS",
    "Comparison",
    "MetricInfo",
    "Task",
    "attribute_preservation",
    "bleu",
    "bootstrap_ci",
    "build_record",
    "clip_style_score",
    "copy_rate",
    "diversity",
    "fidelity_similarity",
    "hit_rate_at_k",
    "history_similarity",
    "history_similarity_per_unit",
    "mae",
    "metric_info",
    "mrr_at_k",
    "ndcg_at_k",
    "nearest_catalog_similarity",
    "novelty",
    "paired_bootstrap_ci",
    "paired_test",
    "personalization_gain",
    "precision_at_k",
    "read_record",
    "recall_at_k",
    "rmse",
    "rouge",
    "summarize_metric",
    "write_record",
]
