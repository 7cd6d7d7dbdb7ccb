"""Evaluation metrics: recommendation, rating, text, embedding space and oracle personalization.

Conventions:

* Functions that score many units (users, outputs, pairs) take ``reduce="mean"`` (one float,
  the average) or ``reduce="none"`` (a 1-D array with one value per unit, ready for
  :func:`tailorgen.evaluation.stats.bootstrap_ci` or ``per_user_breakdown``).
* Library implementations are used where one fits (scikit-learn for RMSE/MAE and cosine
  geometry, torchmetrics for BLEU and ROUGE); each hand-written piece says why.
* Bad input raises ``ValueError`` naming the argument: empty input, NaN, mismatched lengths,
  zero-length embeddings.

Why one file of about 550 lines: it is a flat list of small, independent, tested functions that
share the conventions above and the input checks below; a reader looks one up, and splitting by
family would spread the shared checks over several files.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.metrics.pairwise import cosine_similarity, pairwise_distances_chunked
from torchmetrics.functional.text.rouge import rouge_score
from torchmetrics.text import BLEUScore

from tailorgen.evaluation.stats import as_finite_array

__all__ = [
    "attribute_preservation",
    "bleu",
    "clip_style_score",
    "COPY_THRESHOLD",
    "copy_rate",
    "diversity",
    "fidelity_similarity",
    "hit_rate_at_k",
    "history_similarity",
    "history_similarity_per_unit",
    "mae",
    "mrr_at_k",
    "ndcg_at_k",
    "nearest_catalog_similarity",
    "novelty",
    "personalization_gain",
    "precision_at_k",
    "recall_at_k",
    "rmse",
    "rouge",
    "sentence_bleu",
    "unigram_precision",
]

Reduce = Literal["mean", "none"]
BleuReduce = Literal["corpus", "mean", "none"]

# Cosine similarity at and above which an output counts as a near-copy of a catalog item. It
# depends on the embedding space; 0.95 is strict for tailorgen's image encoder. One constant, so
# copy rate and novelty (its complement) always agree.
COPY_THRESHOLD = 0.95


def _reduce(per_unit: np.ndarray, reduce: Reduce) -> float | np.ndarray:
    if reduce == "mean":
        return float(per_unit.mean())
    if reduce == "none":
        return per_unit
    raise ValueError(f"reduce must be 'mean' or 'none', got {reduce!r}")


# --------------------------------------------------------------------------------------------
# Recommendation
#
# Hand-written: the inputs are ranked lists of ids (what a recommender returns), and with the
# target's rank r in hand HR, NDCG and MRR are one line each. torchmetrics.retrieval and
# sklearn.metrics.ndcg_score take per-candidate score arrays instead; converting ranked ids into
# scores over the union of candidates adds more code (and tie-breaking questions) than the formulas.
# The tests check these functions against torchmetrics.functional.retrieval on the same rankings.
# --------------------------------------------------------------------------------------------


def _check_ranking_inputs(ranked_lists: Sequence[Sequence[Hashable]], targets: Sequence[Any], k: int) -> None:
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if len(ranked_lists) == 0:
        raise ValueError("ranked_lists is empty: need one ranked list per user")
    if len(ranked_lists) != len(targets):
        raise ValueError(f"{len(ranked_lists)} ranked lists but {len(targets)} targets: need one per user")


def _top_k(ranked: Sequence[Hashable], k: int, user: int) -> list[Hashable]:
    top = list(ranked[:k])
    if len(set(top)) != len(top):
        raise ValueError(f"ranked list of user {user} repeats an id in its top {k}: {top}")
    return top


def _target_ranks(ranked_lists: Sequence[Sequence[Hashable]], targets: Sequence[Hashable], k: int) -> np.ndarray:
    """1-based rank of each user's target within the top k of its list; 0 where it is not there."""
    _check_ranking_inputs(ranked_lists, targets, k)
    ranks = np.zeros(len(targets), dtype=np.int64)
    for u, (ranked, target) in enumerate(zip(ranked_lists, targets)):
        top = _top_k(ranked, k, u)
        if target in top:
            ranks[u] = top.index(target) + 1
    return ranks


def hit_rate_at_k(
    ranked_lists: Sequence[Sequence[Hashable]], targets: Sequence[Hashable], k: int, reduce: Reduce = "mean"
) -> float | np.ndarray:
    """Hit rate@k (HR@k, "recall@k" with one target): share of users whose target is in their top k.

    ``ranked_lists[u]`` is user u's ranked list of item ids (best first), ``targets[u]`` the one
    held-out item. Per user 1 or 0; the mean is in [0, 1], higher is better.
    """
    return _reduce((_target_ranks(ranked_lists, targets, k) > 0).astype(np.float64), reduce)


def ndcg_at_k(
    ranked_lists: Sequence[Sequence[Hashable]], targets: Sequence[Hashable], k: int, reduce: Reduce = "mean"
) -> float | np.ndarray:
    """NDCG@k with one relevant item per user: ``1 / log2(rank + 1)`` if the target is at 1-based
    ``rank <= k``, else 0.

    With a single relevant item the ideal DCG is 1 (target at rank 1), so the DCG is already
    normalized. In [0, 1], higher is better; rewards hits near the top more than HR@k does.
    """
    ranks = _target_ranks(ranked_lists, targets, k)
    gains = np.zeros(ranks.shape, dtype=np.float64)
    hit = ranks > 0
    gains[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
    return _reduce(gains, reduce)


def mrr_at_k(
    ranked_lists: Sequence[Sequence[Hashable]], targets: Sequence[Hashable], k: int, reduce: Reduce = "mean"
) -> float | np.ndarray:
    """Mean reciprocal rank@k: ``1 / rank`` of the target if it is in the top k, else 0. In [0, 1]."""
    ranks = _target_ranks(ranked_lists, targets, k)
    rr = np.zeros(ranks.shape, dtype=np.float64)
    rr[ranks > 0] = 1.0 / ranks[ranks > 0]
    return _reduce(rr, reduce)


def _hits_at_k(
    ranked_lists: Sequence[Sequence[Hashable]], target_sets: Sequence[Collection[Hashable]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    _check_ranking_inputs(ranked_lists, target_sets, k)
    hits = np.zeros(len(target_sets), dtype=np.float64)
    sizes = np.zeros(len(target_sets), dtype=np.float64)
    for u, (ranked, targets) in enumerate(zip(ranked_lists, target_sets)):
        if isinstance(targets, str | bytes) or not isinstance(targets, Collection):
            raise ValueError(f"targets of user {u} must be a collection of ids (list or set), got {targets!r}")
        relevant = set(targets)
        if not relevant:
            raise ValueError(f"user {u} has no target items; drop users without held-out items before scoring")
        hits[u] = sum(1 for item in _top_k(ranked, k, u) if item in relevant)
        sizes[u] = len(relevant)
    return hits, sizes


def recall_at_k(
    ranked_lists: Sequence[Sequence[Hashable]],
    target_sets: Sequence[Collection[Hashable]],
    k: int,
    reduce: Reduce = "mean",
) -> float | np.ndarray:
    """Recall@k with several targets per user: ``|top k ∩ targets| / |targets|``. In [0, 1].

    (When a user has more than k targets the per-user maximum is ``k / |targets|``; this is the
    standard definition, not the capped variant.)
    """
    hits, sizes = _hits_at_k(ranked_lists, target_sets, k)
    return _reduce(hits / sizes, reduce)


def precision_at_k(
    ranked_lists: Sequence[Sequence[Hashable]],
    target_sets: Sequence[Collection[Hashable]],
    k: int,
    reduce: Reduce = "mean",
) -> float | np.ndarray:
    """Precision@k with several targets per user: ``|top k ∩ targets| / k``. In [0, 1].

    The denominator is k even when a list is shorter than k (missing slots count as misses).
    """
    hits, _ = _hits_at_k(ranked_lists, target_sets, k)
    return _reduce(hits / k, reduce)


# --------------------------------------------------------------------------------------------
# Rating prediction (scikit-learn)
# --------------------------------------------------------------------------------------------


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = as_finite_array(y_true, "y_true")
    p = as_finite_array(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    return t, p


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error of predicted ratings, in rating units; >= 0, lower is better."""
    return float(root_mean_squared_error(*_pair(y_true, y_pred)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error of predicted ratings, in rating units; >= 0, lower is better."""
    return float(mean_absolute_error(*_pair(y_true, y_pred)))


# --------------------------------------------------------------------------------------------
# Text (torchmetrics)
# --------------------------------------------------------------------------------------------


def _references(preds: Sequence[str], references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    if isinstance(preds, str):
        raise ValueError("preds must be a list of strings; for one sentence use sentence_bleu")
    if len(preds) == 0:
        raise ValueError("preds is empty")
    if len(preds) != len(references):
        raise ValueError(f"{len(preds)} predictions but {len(references)} reference entries")
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    for i, r in enumerate(refs):
        if not r:
            raise ValueError(f"prediction {i} has no reference")
    return refs


def _bleu_of(preds: list[str], refs: list[list[str]], n_gram: int, smooth: bool) -> float:
    """BLEU-n with counts pooled over ``preds`` (one prediction: sentence BLEU); see :func:`bleu`."""
    metric = BLEUScore(n_gram=n_gram, smooth=smooth)
    metric.update(preds, refs)
    num = metric.numerator.double()
    den = metric.denominator.double()
    if num[0] == 0 or metric.preds_len == 0:
        return 0.0
    if bool((num > 0).all()) or not smooth:
        return float(metric.compute())
    precisions = (num + 1.0) / (den + 1.0)
    precisions[0] = num[0] / den[0]
    log_mean = torch.log(precisions).mean()  # uniform weights 1/n
    c, r = float(metric.preds_len), float(metric.target_len)
    brevity = 1.0 if c > r else float(np.exp(1.0 - r / c))
    return brevity * float(torch.exp(log_mean))


def bleu(
    preds: Sequence[str],
    references: Sequence[str | Sequence[str]],
    n_gram: int = 4,
    smooth: bool = True,
    reduce: BleuReduce = "corpus",
) -> float | np.ndarray:
    """BLEU-n (default BLEU-4) of whitespace-tokenized predictions; in [0, 1], higher is better.

    ``references[i]`` is one reference string or a list of references for ``preds[i]``.
    ``reduce="corpus"`` (the default) is corpus BLEU: n-gram counts pooled over all predictions
    (Papineni et al. 2002). ``reduce="none"`` gives sentence BLEU of each prediction, one value per
    unit (what a benchmark record stores), and ``reduce="mean"`` their mean, which is what a record
    summarizes those values to; it is not the corpus BLEU. Uniform weights, brevity penalty
    ``exp(1 - r/c)`` when the output is shorter than the references. ``smooth=True`` is Lin &
    Och (2004) add-one smoothing of the n > 1 precisions, so short texts without a 4-gram match
    still get a score; a text with no unigram match scores 0.

    Tokens are whitespace-separated and case-sensitive (torchmetrics' tokenizer). Counting and the
    unsmoothed / all-orders-matched score are torchmetrics' ``BLEUScore``. One step is ours:
    torchmetrics returns 0 whenever any order has zero matches, *before* applying its smoothing,
    which makes smoothed sentence BLEU-4 zero for most short explanations. In that case we apply
    the same Lin & Och formula to torchmetrics' counts.
    """
    if reduce not in ("corpus", "mean", "none"):
        raise ValueError(f"reduce must be 'corpus', 'mean' or 'none', got {reduce!r}")
    refs = _references(preds, references)
    if reduce == "corpus":
        return _bleu_of(list(preds), refs, n_gram, smooth)
    per_unit = np.array([_bleu_of([p], [r], n_gram, smooth) for p, r in zip(preds, refs)], dtype=np.float64)
    return _reduce(per_unit, reduce)


def sentence_bleu(pred: str, references: str | Sequence[str], n_gram: int = 4, smooth: bool = True) -> float:
    """BLEU of one prediction against its reference(s); see :func:`bleu`. In [0, 1]."""
    if not isinstance(pred, str):
        raise ValueError(f"pred must be a string, got {type(pred).__name__}")
    return _bleu_of([pred], _references([pred], [references]), n_gram, smooth)


def unigram_precision(
    preds: Sequence[str], references: Sequence[str | Sequence[str]], reduce: Reduce = "mean"
) -> float | np.ndarray:
    """Clipped unigram precision of each prediction (BLEU-1's precision, no brevity penalty); in [0, 1].

    The share of a prediction's tokens that the reference has, each token counted at most as often
    as the reference has it (with several references, as often as the one that has it most);
    Papineni et al.'s modified unigram precision, the "BLEU-1" explanation-generation papers report.
    Tokens as in :func:`bleu` (whitespace-separated, case-sensitive; the counts are torchmetrics'
    ``BLEUScore`` with ``n_gram=1``). An empty prediction scores 0. ``reduce="none"`` gives one value
    per prediction; ``"mean"`` their mean (not the corpus-pooled precision).
    """
    refs = _references(preds, references)
    per_unit = np.zeros(len(refs), dtype=np.float64)
    for i, (p, r) in enumerate(zip(preds, refs)):
        metric = BLEUScore(n_gram=1)
        metric.update([p], [r])
        tokens = float(metric.denominator[0])
        per_unit[i] = float(metric.numerator[0]) / tokens if tokens > 0 else 0.0
    return _reduce(per_unit, reduce)


_ROUGE_KEYS = {"rouge_1": "rouge1", "rouge_2": "rouge2", "rouge_l": "rougeL"}


def rouge(
    preds: Sequence[str], references: Sequence[str | Sequence[str]], reduce: Reduce = "mean"
) -> dict[str, float | np.ndarray]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 of predictions against references: ``{"rouge_1", "rouge_2", "rouge_l"}``.

    ROUGE-N F1 is the harmonic mean of n-gram precision and recall (clipped counts), ROUGE-L
    F1 the same with the longest common subsequence. Each in [0, 1], higher is better.
    Text is lower-cased and split on non-alphanumeric characters, no stemming (torchmetrics'
    ``rouge_score`` as in Google's rouge-score; stemming would need nltk, which is not a
    dependency). With several references per prediction, the best-scoring one counts.
    ``reduce="mean"`` averages per-pair scores (as torchmetrics does); ``"none"`` gives arrays.
    """
    refs = _references(preds, references)
    keys = tuple(_ROUGE_KEYS.values())
    per_pair = {name: np.empty(len(refs)) for name in _ROUGE_KEYS}
    for i, (p, r) in enumerate(zip(preds, refs)):
        scores = rouge_score([p], [r], rouge_keys=keys, accumulate="best")
        for name, key in _ROUGE_KEYS.items():
            per_pair[name][i] = float(scores[f"{key}_fmeasure"])
    return {name: _reduce(v, reduce) for name, v in per_pair.items()}


# --------------------------------------------------------------------------------------------
# Embedding space (inputs: rows in a shared text/image embedding space, L2-normalized by the
# encoders; cosine is computed by scikit-learn, which normalizes again, so any non-zero rows work)
# --------------------------------------------------------------------------------------------


def _embeddings(x: Any, name: str, ndim: tuple[int, ...] = (1, 2)) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):  # keep float32 catalogs float32 (memory); else float64
        arr = arr.astype(np.float64)
    if arr.ndim not in ndim:
        want = " or ".join(("(D,)", "(N, D)")[d - 1] for d in ndim)
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    norms = np.linalg.norm(arr.reshape(-1, arr.shape[-1]), axis=1)
    if (norms == 0).any():
        raise ValueError(f"{name}: row {int(np.flatnonzero(norms == 0)[0])} is all zeros; cosine is undefined")
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{na} has dimension {a.shape[-1]} but {nb} has {b.shape[-1]}: not the same embedding space")


def _rowwise_cosine(a: Any, b: Any, na: str, nb: str) -> tuple[np.ndarray, bool]:
    x, y = _embeddings(a, na), _embeddings(b, nb)
    _same_dim(x, y, na, nb)
    if x.shape != y.shape:
        raise ValueError(f"{na} has shape {x.shape} but {nb} has {y.shape}: need one {nb} row per {na} row")
    single = x.ndim == 1
    x2, y2 = np.atleast_2d(x), np.atleast_2d(y)
    # Row-wise pairs: normalize and take the diagonal without forming the N x N matrix.
    x2 = x2 / np.linalg.norm(x2, axis=1, keepdims=True)
    y2 = y2 / np.linalg.norm(y2, axis=1, keepdims=True)
    cos = np.einsum("ij,ij->i", x2, y2)
    return np.clip(cos, -1.0, 1.0).astype(np.float64), single


def history_similarity(output_emb: Any, history_embs: Any) -> float | np.ndarray:
    """Mean cosine similarity of an output to the items in the user's history, in [-1, 1].

    How much an output looks like what the user interacted with (personalization proxy: higher
    means closer to the user's taste, but 1.0 everywhere would mean copying the history).
    ``output_emb`` (D,) gives a float; (M, D), M outputs for the same user, gives M values.
    ``history_embs`` is (H, D).
    """
    out = _embeddings(output_emb, "output_emb")
    hist = _embeddings(history_embs, "history_embs", ndim=(2,))
    _same_dim(out, hist, "output_emb", "history_embs")
    sims = cosine_similarity(np.atleast_2d(out), hist).mean(axis=1)
    return float(sims[0]) if out.ndim == 1 else sims


def history_similarity_per_unit(output_embs: Any, history_embs: Sequence[Any]) -> np.ndarray:
    """:func:`history_similarity` of each unit's output to that unit's own history: one value per unit.

    ``output_embs`` is (N, D), one output per unit (user, request); ``history_embs[i]`` is the
    (H_i, D) history of unit i (histories differ in length). In [-1, 1] each.
    """
    out = _embeddings(output_embs, "output_embs", ndim=(2,))
    if len(history_embs) != out.shape[0]:
        raise ValueError(f"{out.shape[0]} outputs but {len(history_embs)} histories: need one history per output")
    return np.array([history_similarity(o, h) for o, h in zip(out, history_embs)], dtype=np.float64)


def fidelity_similarity(output_emb: Any, target_emb: Any) -> float | np.ndarray:
    """Cosine similarity of an output to the item it should depict (the target), in [-1, 1].

    (D,) and (D,) give a float; (N, D) and (N, D) give N row-wise values.
    """
    cos, single = _rowwise_cosine(output_emb, target_emb, "output_emb", "target_emb")
    return float(cos[0]) if single else cos


def diversity(output_embs: Any) -> float:
    """Mean pairwise cosine distance ``1 - cos`` among one user's outputs, over all unordered pairs.

    In [0, 2]: 0 when all outputs are the same direction, about 1 for unrelated outputs.
    Needs at least two outputs.
    """
    x = _embeddings(output_embs, "output_embs", ndim=(2,))
    m = x.shape[0]
    if m < 2:
        raise ValueError(f"diversity needs at least 2 outputs, got {m}")
    sims = cosine_similarity(x)
    iu = np.triu_indices(m, k=1)
    return float(np.mean(1.0 - np.clip(sims[iu], -1.0, 1.0)))


def nearest_catalog_similarity(
    output_embs: Any, catalog_embs: Any, return_index: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """For each output, the cosine similarity to its nearest catalog item, in [-1, 1].

    A novelty measure: near 1 means the output is (almost) an existing item; lower means new.
    ``output_embs`` (M, D) or (D,), ``catalog_embs`` (N, D). With ``return_index`` also the row
    of the nearest catalog item. Computed in memory-bounded chunks (sklearn's
    ``pairwise_distances_chunked``), so large catalogs do not need an M x N matrix at once.
    """
    out = np.atleast_2d(_embeddings(output_embs, "output_embs"))
    cat = _embeddings(catalog_embs, "catalog_embs", ndim=(2,))
    _same_dim(out, cat, "output_embs", "catalog_embs")

    def nearest(dist: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        idx = dist.argmin(axis=1)
        return 1.0 - dist[np.arange(dist.shape[0]), idx], idx

    sims, idxs = [], []
    for s, i in pairwise_distances_chunked(out, cat, reduce_func=nearest, metric="cosine"):
        sims.append(s)
        idxs.append(i)
    sim = np.clip(np.concatenate(sims), -1.0, 1.0).astype(np.float64)
    return (sim, np.concatenate(idxs)) if return_index else sim


def copy_rate(
    output_embs: Any, catalog_embs: Any, threshold: float = COPY_THRESHOLD, reduce: Reduce = "mean"
) -> float | np.ndarray:
    """Share of outputs whose nearest catalog item has cosine similarity >= ``threshold``; in [0, 1].

    The fraction of "generated" items that are near-copies of existing ones (lower is more
    novel). ``reduce="none"`` gives 1 (a near-copy) or 0 per output.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    copies = (nearest_catalog_similarity(output_embs, catalog_embs) >= threshold).astype(np.float64)
    return _reduce(copies, reduce)


def novelty(
    output_embs: Any, catalog_embs: Any, threshold: float = COPY_THRESHOLD, reduce: Reduce = "mean"
) -> float | np.ndarray:
    """Share of outputs that are not near-copies of a catalog item: ``1 - copy_rate``; in [0, 1].

    ``reduce="none"`` gives 1 (new) or 0 (a near-copy) per output; higher is more novel.
    """
    return _reduce(1.0 - copy_rate(output_embs, catalog_embs, threshold, reduce="none"), reduce)


def clip_style_score(image_emb: Any, text_emb: Any) -> float | np.ndarray:
    """CLIPScore: ``100 * max(cos(image, text), 0)``, in [0, 100]; image-text agreement.

    The definition torchmetrics' ``CLIPScore`` uses (Hessel et al. 2021 with w = 100), computed
    from embeddings of any encoder pair that shares a space (tailorgen's image encoder is trained
    into the text encoder's space). Hand-written because torchmetrics' ``CLIPScore`` needs a
    Hugging Face CLIP model + processor (a hub name or a factory returning both) and embeds the
    images and texts itself, so it cannot score our encoder pair or precomputed embeddings; the
    formula is one line.
    (D,) and (D,) give a float; (N, D) and (N, D) give N row-wise values.
    """
    cos, single = _rowwise_cosine(image_emb, text_emb, "image_emb", "text_emb")
    score = 100.0 * np.maximum(cos, 0.0)
    return float(score[0]) if single else score


# --------------------------------------------------------------------------------------------
# Personalization measured with the oracle and the judge
# --------------------------------------------------------------------------------------------


def personalization_gain(utility_output: Any, utility_original: Any) -> np.ndarray:
    """Per-unit gain in true user utility: ``utility_output - utility_original``.

    ``utility_output[i]`` is the oracle's utility of the personalized output for user i (after the
    judge read its attributes), ``utility_original[i]`` the utility of the unpersonalized item for
    the same user. Positive means personalization helped that user. Summarize with
    ``stats.summarize_metric`` or ``stats.paired_test(utility_output, utility_original)``.
    """
    out = as_finite_array(utility_output, "utility_output")
    orig = as_finite_array(utility_original, "utility_original")
    if out.shape != orig.shape:
        raise ValueError(f"utility_output has {out.size} values but utility_original has {orig.size}")
    return out - orig


def attribute_preservation(
    judge_reads_output: Sequence[Mapping[str, Any]],
    target_attributes: Sequence[Mapping[str, Any]],
    attributes: Sequence[str] = ("category",),
    reduce: Reduce = "mean",
) -> float | np.ndarray:
    """Share of outputs whose judge-read attributes equal the target item's, in [0, 1].

    An output counts as preserved when, for every attribute in ``attributes``, the judge's read
    of the output equals the target's value (e.g. personalizing a dress's colour must keep it a
    dress). ``reduce="none"`` gives a 0/1 value per output.
    """
    if isinstance(attributes, str):
        attributes = (attributes,)
    if not attributes:
        raise ValueError("attributes is empty: name at least one attribute to compare")
    if len(judge_reads_output) == 0:
        raise ValueError("judge_reads_output is empty")
    if len(judge_reads_output) != len(target_attributes):
        raise ValueError(f"{len(judge_reads_output)} judge reads but {len(target_attributes)} targets")
    kept = np.zeros(len(judge_reads_output), dtype=np.float64)
    for i, (read, target) in enumerate(zip(judge_reads_output, target_attributes)):
        for a in attributes:
            if a not in read:
                raise ValueError(f"judge read {i} has no attribute '{a}' (it has {sorted(read)})")
            if a not in target:
                raise ValueError(f"target {i} has no attribute '{a}' (it has {sorted(target)})")
        kept[i] = all(read[a] == target[a] for a in attributes)
    return _reduce(kept, reduce)
