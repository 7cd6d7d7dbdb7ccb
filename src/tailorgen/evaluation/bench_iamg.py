"""The I-AM-G benchmark: does personalization raise the true utility of an item for its user?

On a shop with a given seed, a fixed set of held-out users each gets one target item (one they
never interacted with). Every method makes one image per (user, item) from the same starting
noise, so the comparison is paired. The judge reads each image's attributes (and the original
item image's, so both sides are measured by the same instrument) and the oracle scores them for:

- the intended user, at the time of their last interaction: personalization gain;
- a mismatched user (the next user in the list): the control. Personalizing for someone else
  should help this user less than it helps the intended one.

Plus fidelity (the judge still reads the target's category), history similarity and text
alignment in the shared embedding space, novelty (not a near-copy of a catalog item), and the
latency of one personalized image per stage. Two measures describe each method's images as a
set rather than per user: diversity (mean pairwise cosine distance among several images for one
user, on the first ``diversity_users`` users) and image quality (KID and FID against catalog
images, in the image encoder's feature space; the original items give the floor).

On a dataset without ground truth (a real catalog: no oracle, and attributes the judge was not
trained to read) the same run reports the embedding-based metrics only, lists the others under
``not_computed`` with the reason, and tests full against each ablation on history similarity.

The run is one task ("personalization") of the common benchmark record
(:mod:`tailorgen.evaluation.runner`): every metric is computed per user by the tested functions
of :mod:`tailorgen.evaluation.metrics`, and the record is ``iamg_benchmark.json``.

Why one file of about 410 lines: the benchmark's steps (pick, generate, score, judge, quality,
latency, table) each a function of a screen, in the order they run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from tailorgen.data import Dataset
from tailorgen.encoders.image import ShopImageEncoder
from tailorgen.evaluation.image_quality import as_feature_module, fid, kid
from tailorgen.evaluation.judge import Judge
from tailorgen.evaluation.metrics import (
    attribute_preservation,
    clip_style_score,
    diversity,
    history_similarity_per_unit,
    novelty,
    personalization_gain,
)
from tailorgen.evaluation.runner import Comparison, Task, against, build_record, write_record
from tailorgen.generation.iamg import METHODS, STAGES, IAMGGenerator, pick_requests
from tailorgen.generation.pipeline import DEFAULT_SAMPLER, DEFAULT_STEPS
from tailorgen.world import Oracle, WorldConfig
from tailorgen.world.build import ensure_shop

BENCHMARK = "iamg"
TASK = "personalization"
COMPARED = ("original", *METHODS)  # "original": the catalog item as it is
METRIC_NAMES = (  # the task's metrics, in table order; labels are in evaluation.registry
    "gain_intended",
    "gain_mismatched",
    "fidelity",
    "history_similarity",
    "text_alignment",
    "novelty",
    "diversity",
)
INTENDED_VS_MISMATCHED = Comparison(
    "full", "full", "gain_intended", b_metric="gain_mismatched", label="full intended vs mismatched"
)
NEEDS_GROUND_TRUTH = {
    "gain_intended": "needs the oracle's utility of the user (only a simulated shop has one)",
    "gain_mismatched": "needs the oracle's utility of the user (only a simulated shop has one)",
    "fidelity": "needs the item's true category and a judge trained to read this catalog's attributes",
}
NEEDS_SHOP_ENCODER = "FID/KID use tailorgen's own image encoder as the feature network; this run's encoder is another"
EXAMPLES_FILE = "iamg_examples.png"
# Requests per call of generate_batch, and its UNet batch size: chunks of whole UNet batches give
# the same batches (so bit-identical images) as one call over all requests, with progress between.
GENERATION_BATCH = 32


@dataclass
class IAMGBenchConfig:
    seed: int = 0
    users: int = 100
    shop_items: int = 2000
    shop_users: int = 300
    min_history: int = 5
    steps: int = DEFAULT_STEPS
    sampler: str = DEFAULT_SAMPLER  # a key of generation.pipeline.SAMPLERS
    guidance: float = 2.0
    latency_requests: int = 5
    n_boot: int = 2000
    diversity_users: int = 12  # users who get diversity_n images from every method
    diversity_n: int = 3
    quality_reference: int = 400  # catalog images (not targets) that FID/KID compare against


def benchmark_shop(cfg: IAMGBenchConfig, work_dir: str | Path = "runs/work", progress: bool = True) -> Path:
    """The shop of ``cfg.seed`` and size under ``work_dir``: built once, reused after."""
    return ensure_shop(
        Path(work_dir) / f"bench-{cfg.seed}-{cfg.shop_items}-{cfg.shop_users}",
        WorldConfig(n_items=cfg.shop_items, n_users=cfg.shop_users, seed=cfg.seed),
        progress=progress,
    )


def pick_users(
    cfg: IAMGBenchConfig, histories: dict[str, list[str]], item_ids: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """Users (fixed by the seed), a target item each that they never saw, and a mismatched user each."""
    eligible = sum(len(h) >= cfg.min_history for h in histories.values())
    if eligible < 2:
        raise ValueError(f"the shop has {eligible} users with >= {cfg.min_history} interactions; need 2 or more")
    pairs = pick_requests(histories, item_ids, cfg.users, cfg.min_history, np.random.default_rng([cfg.seed, 4242]))
    users = [u for u, _ in pairs]
    return users, [i for _, i in pairs], users[1:] + users[:1]


def _grid(rows: list[list[Image.Image]], labels: list[str], out: Path, scale: int = 3) -> None:
    cell = rows[0][0].width * scale
    head = 14
    grid = Image.new("RGB", (len(labels) * cell, head + len(rows) * cell), "white")
    draw = ImageDraw.Draw(grid)
    for c, label in enumerate(labels):
        draw.text((c * cell + 2, 1), label, fill="black")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            grid.paste(im.resize((cell, cell), Image.NEAREST), (c * cell, head + r * cell))
    grid.save(out)


def run_iamg_benchmark(
    cfg: IAMGBenchConfig,
    work_dir: str | Path = "runs/work",
    out: str | Path | None = None,
    generator: str | Path | None = None,
    judge: str | Path | None = None,
    progress: bool = True,
    dataset: str | Path | None = None,
    scorer: Callable[..., ScoredUsers] | None = None,
) -> dict:
    """The comparison on the shop of ``cfg.seed`` (built or reused under ``work_dir``), or on ``dataset``.

    Returns the run's record (:mod:`tailorgen.evaluation.runner`); with ``out`` also writes it
    as OUT/iamg_benchmark.json, with a grid of example images. ``scorer(shop, cfg, users, targets,
    mismatched)`` scores the users (default: ``score_users`` here; ``tailorgen.scale`` maps it over
    partitions of the users on a cluster and joins the parts).
    """
    started = time.perf_counter()
    shop = benchmark_shop(cfg, work_dir, progress) if dataset is None else Path(dataset)
    ds = Dataset(shop)
    truth = ds.has_ground_truth
    sampling = {"guidance_scale": cfg.guidance, "num_inference_steps": cfg.steps, "sampler": cfg.sampler}
    gen = IAMGGenerator(ds, generator, progress=progress, **sampling)
    users, targets, mismatched = pick_users(cfg, gen.context.histories, list(gen.context.texts))
    judge_model = Judge(judge) if truth else None
    if scorer is None:
        scorer = partial(score_users, generator=gen, judge=judge_model, progress=progress)
    scored = scorer(shop, cfg, users, targets, mismatched)
    values, images = scored.values, scored.images
    quality = image_quality(ds, gen.context.image_encoder, images, targets, cfg, progress)
    latency = measure_latency(gen, list(zip(users, targets))[: cfg.latency_requests], cfg.seed, progress)

    not_computed = {} if truth else dict(NEEDS_GROUND_TRUTH)
    if quality is None:
        not_computed["image_quality"] = NEEDS_SHOP_ENCODER
    task = _task(values, truth, users, targets)
    record = build_record(
        benchmark=BENCHMARK,
        what="I-AM-G benchmark: personalization gain (oracle utility of judge-read attributes) and controls",
        tasks=[task],
        per_unit={TASK: values},
        config=dataclasses.asdict(cfg),
        seeds=[cfg.seed],
        checkpoints=gen.checkpoints() | ({"judge": judge_model.fingerprint} if truth else {}),
        started=started,
        dataset=str(shop),
        extras={"not_computed": not_computed, "image_quality": quality, "latency_seconds": latency}
        | ({"examples": EXAMPLES_FILE} if out is not None else {}),
        n_boot=cfg.n_boot,
        seed=cfg.seed,
    )
    if out is not None:
        write_record(record, out)
        shown = range(min(12, len(users)))
        _grid([[images[m][j] for m in COMPARED] for j in shown], list(COMPARED), Path(out) / EXAMPLES_FILE)
    return record


@dataclass
class ScoredUsers:
    """What the benchmark measures for some of its users, in their order: per method, each metric's
    per-user values, and the images (the examples grid and image quality are made from them)."""

    values: dict[str, dict[str, np.ndarray]]
    images: dict[str, list[Image.Image]]

    @classmethod
    def join(cls, parts: list[ScoredUsers]) -> ScoredUsers:
        """Consecutive slices of the users, joined in order (a metric some slices lack, diversity, is
        measured on the first users only, so its values join up as well)."""
        methods = list(parts[0].values)
        values = {
            m: {k: np.concatenate([p.values[m][k] for p in parts if k in p.values[m]]) for k in _metric_keys(parts, m)}
            for m in methods
        }
        images = {m: [im for p in parts for im in p.images[m]] for m in parts[0].images}
        return cls(values, images)


def _metric_keys(parts: list[ScoredUsers], method: str) -> list[str]:
    return list(dict.fromkeys(k for p in parts for k in p.values[method]))


def score_users(
    shop: str | Path,
    cfg: IAMGBenchConfig,
    users: list[str],
    targets: list[str],
    mismatched: list[str],
    generator: IAMGGenerator,
    judge: Judge | None,
    first: int = 0,
    progress: bool = False,
) -> ScoredUsers:
    """Generate every method's image for each (user, target) and measure it; ``first``: the position of
    ``users[0]`` among all the benchmark's users (diversity is measured on the first ``cfg.diversity_users``)."""
    ds = generator.context.dataset
    pairs = list(zip(users, targets))
    requests = generator.context.requests(pairs)
    images = {"original": [ds.load_image(i) for i in targets]}
    images |= {
        m: [g.images[0] for g in generate_in_batches(generator, pairs, requests, m, 1, cfg.seed, progress)]
        for m in METHODS
    }
    values = embedding_metrics(generator.context, images, requests, progress)
    if judge is not None:
        scored = oracle_metrics(ds, Oracle.load(shop), judge, images, users, mismatched, targets, progress)
        values = {m: scored[m] | d for m, d in values.items()}
    k = max(0, min(cfg.diversity_users - first, len(pairs)))
    for m, per_user in diversity_metrics(generator, pairs[:k], requests[:k], cfg, progress).items():
        values[m]["diversity"] = per_user
    return ScoredUsers(values, images)


def _task(values: dict[str, dict[str, np.ndarray]], truth: bool, users: list[str], targets: list[str]) -> Task:
    """The personalization task: full against each other method on every metric both have, the
    headline metric first (the gain, or history similarity without ground truth)."""
    primary = "gain_intended" if truth else "history_similarity"
    measured = [primary, *(m for m in METRIC_NAMES if m != primary and m in values["full"])]
    comparisons = [c for c in against("full", COMPARED, measured) if c.metric in values[c.b]]
    if truth:
        comparisons.append(INTENDED_VS_MISMATCHED)
    return Task(
        TASK,
        methods=COMPARED,
        metrics=METRIC_NAMES,
        primary_metric=primary,
        comparisons=tuple(comparisons),
        units={"user_id": users, "item_id": targets},
    )


def generate_in_batches(
    gen: IAMGGenerator, pairs, requests, method: str, n: int, seed: int, progress: bool, desc: str = "generate"
) -> list:
    """``gen.generate_batch`` over all pairs, in chunks of whole UNet batches, with a progress bar."""
    chunk = GENERATION_BATCH // math.gcd(n, GENERATION_BATCH)  # pairs whose n images fill whole batches
    out = []
    with tqdm(total=len(pairs), desc=f"{desc} {method}", unit="user", disable=not progress) as bar:
        for s in range(0, len(pairs), chunk):
            out += gen.generate_batch(
                pairs[s : s + chunk],
                n=n,
                seed=seed,
                method=method,
                batch_size=GENERATION_BATCH,
                requests=requests[s : s + chunk],
            )
            bar.update(len(pairs[s : s + chunk]))
    return out


def embedding_metrics(ctx, images, requests, progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Per method and user: history similarity, text alignment (to the rewritten text) and novelty."""
    catalog = ctx.image_retriever.embeddings
    histories = [catalog.rows(r.history) for r in requests]
    rewritten_emb = ctx.text_encoder.encode([r.rewrite.text for r in requests])
    out = {}
    for m in tqdm(images, desc="embedding metrics", unit="method", disable=not progress):
        emb = ctx.image_encoder.encode(images[m])
        out[m] = {
            "history_similarity": history_similarity_per_unit(emb, histories),
            "text_alignment": clip_style_score(emb, rewritten_emb),
            # The original is a catalog item, so a copy by definition (not left to the encoder's rounding).
            "novelty": np.zeros(len(emb)) if m == "original" else novelty(emb, catalog.vectors, reduce="none"),
        }
    return out


def last_interaction_times(ds: Dataset) -> dict[str, int]:
    """Each user's latest interaction timestamp: "now" for the oracle's utility of that user."""
    inter = ds.interactions.select(["user_id", "timestamp"]).to_pydict()
    now: dict[str, int] = {}
    for u, t in zip(inter["user_id"], inter["timestamp"]):
        now[u] = max(now.get(u, 0), int(t))
    return now


def oracle_metrics(
    ds, oracle, judge, images, users, mismatched, targets, progress: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """Gain for the intended and the mismatched user, and fidelity, per method: judge reads, oracle scores."""
    now = last_interaction_times(ds)
    target_category = [{"category": oracle.item_attributes(i, visual_only=True)["category"]} for i in targets]
    reads = {m: judge.read(ims) for m, ims in tqdm(images.items(), desc="judge", unit="method", disable=not progress)}

    def utility(user_ids, attr_reads):
        return np.array([oracle.utility(u, a, now[u]) for u, a in zip(user_ids, attr_reads)])

    base_intended = utility(users, reads["original"])
    base_control = utility(mismatched, reads["original"])
    return {
        m: {
            "gain_intended": personalization_gain(utility(users, reads[m]), base_intended),
            "gain_mismatched": personalization_gain(utility(mismatched, reads[m]), base_control),
            "fidelity": attribute_preservation(reads[m], target_category, ("category",), reduce="none"),
        }
        for m in images
    }


def diversity_metrics(gen, pairs, requests, cfg: IAMGBenchConfig, progress: bool = False) -> dict[str, np.ndarray]:
    """Per user of ``pairs``, the mean pairwise cosine distance among ``diversity_n`` images of one method."""
    if not pairs or cfg.diversity_n < 2:
        return {}
    out = {}
    for method in METHODS:
        generations = generate_in_batches(
            gen, pairs, requests, method, cfg.diversity_n, cfg.seed, progress, desc="diversity"
        )
        out[method] = np.array([diversity(gen.context.image_encoder.encode(g.images)) for g in generations])
    return out


def image_quality(ds, image_encoder, images, targets, cfg: IAMGBenchConfig, progress: bool = False) -> dict | None:
    """KID (mean, std over subsets) of each method's images against held-aside catalog images, and FID.

    None when the image encoder is not tailorgen's own (it is the feature network). All methods
    have the same number of images, so their numbers compare. FID fits a covariance in feature
    space, which is singular with fewer images than feature dimensions: it is left out (None)
    then, and KID, unbiased at any size, carries the comparison.
    """
    if not isinstance(image_encoder, ShopImageEncoder):
        return None
    features = as_feature_module(image_encoder)
    shown = set(targets)
    pool = [i for i in ds.item_row if i not in shown]
    rng = np.random.default_rng([cfg.seed, 77])
    picked = rng.choice(len(pool), size=min(cfg.quality_reference, len(pool)), replace=False)
    reference = [im for j in sorted(picked) if (im := ds.load_image(pool[j])) is not None]
    out = {}
    for m, ims in tqdm(images.items(), desc="image quality", unit="method", disable=not progress):
        subset = min(50, len(ims), len(reference))
        if subset < 2:
            return None
        kid_mean, kid_std = kid(reference, ims, features, subset_size=subset, seed=cfg.seed)
        enough = min(len(ims), len(reference)) > features.num_features
        out[m] = {"kid": kid_mean, "kid_std": kid_std, "fid": fid(reference, ims, features) if enough else None}
    return {"reference_images": len(reference), "feature_dim": features.num_features, "methods": out}


def measure_latency(gen: IAMGGenerator, pairs: list[tuple[str, str]], seed: int, progress: bool = False) -> dict:
    """Seconds for one personalized image (batch of one, full method), per stage, averaged over requests."""
    gen.generate_batch(pairs[:1], n=1, seed=seed, method="full")  # warm-up: first calls allocate
    bar = tqdm(pairs, desc="latency", unit="request", disable=not progress)
    runs = [gen.generate_batch([p], n=1, seed=seed, method="full")[0].seconds for p in bar]
    mean = {s: float(np.mean([r[s] for r in runs])) for s in STAGES}
    total = sum(mean.values())
    return {"requests": len(runs), "total": total, "stages": mean, "share": {s: v / total for s, v in mean.items()}}


def format_table(record: dict) -> str:
    """The benchmark as a text table: mean [95% CI] per method and metric, then the paired tests."""
    task, results = record["tasks"][TASK], record["results"][TASK]
    extras = record.get("extras", {})
    width = 22
    users = len(task["units"]["user_id"])
    lines = [f"I-AM-G benchmark on {record['dataset']} ({users} users x 1 target item each)"]
    lines.append("method".ljust(10) + "".join(m.ljust(width) for m in task["metrics"]))
    for method in task["methods"]:
        cells = []
        for m in task["metrics"]:
            s = results[method].get(m)
            if s is None:
                cells.append("n/a".ljust(width))
                continue
            ci = f"[{s['ci_low']:.2f},{s['ci_high']:.2f}]" if s["ci_low"] is not None else ""
            cells.append(f"{s['mean']:.3f} {ci}".ljust(width))
        lines.append(method.ljust(10) + "".join(cells))
    lines.append("")
    for metric, why in extras.get("not_computed", {}).items():
        lines.append(f"n/a {metric}: {why}")
    primary = task["primary_metric"]
    lines.append(f"paired tests on {primary} (mean difference [95% CI], Wilcoxon p):")
    for key, t in record["paired"][TASK].get(primary, {}).items():
        ci = f"[{t['ci_low']:+.3f},{t['ci_high']:+.3f}]"
        lines.append(f"  {key.replace(' ', '_'):<30} {t['diff']:+.3f} {ci}  p={t['p']:.2g}")
    quality = extras.get("image_quality")
    if quality:
        lines.append(f"\nimage quality against {quality['reference_images']} catalog images (encoder features):")
        for m, q in quality["methods"].items():
            fid_text = f"{q['fid']:.2f}" if q["fid"] is not None else "n/a (fewer images than feature dimensions)"
            lines.append(f"  {m:<10} KID {q['kid']:.4f} (+/- {q['kid_std']:.4f})  FID {fid_text}")
    lat = extras["latency_seconds"]
    shares = ", ".join(f"{s} {100 * v:.0f}%" for s, v in lat["share"].items())
    lines.append(f"\nlatency of one personalized image: {lat['total']:.2f} s ({shares})")
    return "\n".join(lines)
