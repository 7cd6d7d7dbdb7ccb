"""The UniMP benchmark: the unified model against field baselines on four tasks, leave-one-out.

``tailorgen bench unimp --seed S`` (a shop of 1,200 users, so the intervals mean something) or
``--dataset DIR`` (any imported dataset). Per user the last interaction is the test, as
``unified.tasks.build_task_split`` holds it out; every method trains on the same training part.

- recommendation: rank the whole catalog, the user's history left out; HR/NDCG/MRR at 3, 5, 10.
  Test targets never seen in training (none on a shop where every item sells) get a task of their own.
- search: the user's last query, the whole catalog; HR/NDCG/MRR.
- rating: the test item's rating; RMSE (per-unit errors) and MAE (paired).
- explanation: the test item's review; BLEU-4, unigram precision (the reference's "BLEU"), ROUGE-1/2/L,
  and on a shop ``factual``: names an attribute that drives this user's utility (oracle, evaluation only).
- image_generation (a shop only: the judge and the oracle measure it): ``evaluation.unimp_images``.

Methods: ``unimp`` (multi-task), ``unimp-single`` (the same recipe on that task alone: the paper's
"specialized" model), optional variants (``text-only``: no images; ``semantic``: semantic ids),
and the baselines of ``unified.baselines``. Trained models are kept under ``WORK_DIR/models`` and
reused while their training config is unchanged.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailorgen.common import read_json
from tailorgen.common.hashing import hash_file
from tailorgen.data import Dataset
from tailorgen.evaluation import metrics as M
from tailorgen.evaluation.runner import Task, against, build_record, write_record
from tailorgen.evaluation.unimp_images import score_image_generation
from tailorgen.training import config_as_json, config_from, require, setting, trained_with
from tailorgen.unified import baselines as B
from tailorgen.unified.model import UnifiedConfig
from tailorgen.unified.serialize import IMAGE_TASKS, TASKS, Example
from tailorgen.unified.tasks import TaskSplit, build_task_split
from tailorgen.unified.train import UniMPTrainConfig, train_unimp
from tailorgen.unified.unimp import UniMP
from tailorgen.world.build import WorldConfig, ensure_shop

RANKING = tuple(f"{m}@{k}" for k in (10, 5, 3) for m in ("hr", "ndcg", "mrr"))
TEXT = ("bleu4", "unigram_precision", "rouge_1", "rouge_2", "rouge_l")
VARIANTS = {
    "text-only": {"images": False},
    "semantic": {"id_scheme": "semantic"},
    "uniform-mixing": {"task_mixing": 0.0},
}


@dataclass
class UniMPBenchConfig:
    seed: int = setting(0, "Seed of the shop (ignored with --dataset).")
    shop_items: int = setting(2000, "Items of the benchmark shop.")
    shop_users: int = setting(1200, "Users of the benchmark shop (each gives one test unit per task).")
    queries_per_user: float = setting(3.0, "Search queries a shop user makes on average.")
    tasks: tuple[str, ...] = setting(TASKS, "Tasks to measure.")
    recommenders: tuple[str, ...] = setting(("mostpop", "sasrec", "gru4rec"), "Recommendation baselines.")
    single_task: bool = setting(True, "Also train one model per task (unimp-single).")
    variants: tuple[str, ...] = setting((), f"UniMP variants to train and measure too: {', '.join(VARIANTS)}.")
    train: tuple[str, ...] = setting((), "key=value overrides of the unified model's training config.")
    image_users: int = setting(400, "Image generation: test users who get images (each: two requests).")
    image_n: int = setting(2, "Image generation: images per request (diversity needs 2 or more).")
    image_guidance: float = setting(3.0, "Image generation: classifier-free guidance scale.")
    image_iamg: bool = setting(
        True, "Image generation: also draw the same requests with I-AM-G's diffusion generator (the shipped one)."
    )

    def __post_init__(self):
        unknown = [r for r in self.recommenders if r not in B.RECOMMENDERS]
        require(not unknown, "recommenders", self.recommenders, ", ".join(B.RECOMMENDERS))
        require(all(v in VARIANTS for v in self.variants), "variants", self.variants, ", ".join(VARIANTS))
        require(all(t in TASKS for t in self.tasks) and self.tasks, "tasks", self.tasks, ", ".join(TASKS))
        require(self.image_n >= 1 and self.image_users >= 2, "image_n", (self.image_n, self.image_users), ">= 1, >= 2")


def bench_shop(cfg: UniMPBenchConfig, work_dir: Path, progress: bool) -> Path:
    world = WorldConfig(
        n_items=cfg.shop_items, n_users=cfg.shop_users, seed=cfg.seed, queries_per_user=cfg.queries_per_user
    )
    return ensure_shop(work_dir / f"shop-{cfg.seed}", world, progress=progress)


def model_configs(cfg: UniMPBenchConfig, tasks: Sequence[str]) -> dict[str, UniMPTrainConfig]:
    """Every unified model the run needs, by folder name. ``unimp`` (and each variant) is the multi-task
    model, trained on every task whatever the run measures; ``unimp-single-T`` trains on T alone."""
    base = config_from(UniMPTrainConfig, overrides=cfg.train)
    out = {"unimp": base}
    if cfg.single_task:
        out |= {f"unimp-single-{t}": dataclasses.replace(base, tasks=(t,)) for t in tasks}
    for v in cfg.variants:
        out[f"unimp-{v}"] = dataclasses.replace(base, **VARIANTS[v])
    return out


def trained(
    name: str, train_cfg: UniMPTrainConfig, dataset_dir: Path, models_dir: Path, progress: bool, device: str
) -> Path:
    """The model folder, trained now unless one trained with this exact config on this exact data is there."""
    folder = models_dir / name
    if not trained_with(folder, train_cfg, dataset_dir):
        train_unimp(train_cfg, dataset_dir, folder, progress=progress, device=device)
    return folder


def ranking_values(ranked: Sequence[Sequence[str]], targets: Sequence[str]) -> dict[str, np.ndarray]:
    fns = {"hr": M.hit_rate_at_k, "ndcg": M.ndcg_at_k, "mrr": M.mrr_at_k}
    return {name: fns[name.split("@")[0]](ranked, targets, int(name.split("@")[1]), reduce="none") for name in RANKING}


def text_values(preds: Sequence[str], refs: Sequence[str]) -> dict[str, np.ndarray]:
    out = {
        "bleu4": M.bleu(preds, refs, reduce="none"),
        "unigram_precision": M.unigram_precision(preds, refs, reduce="none"),
    }
    return out | M.rouge(preds, refs, reduce="none")


@dataclass
class Methods:
    """What answers each task: the unified models (by method name) and the fitted baselines."""

    unified: dict[str, UniMP]  # "unimp", "unimp-text-only", ...; "unimp-single" is per task
    single: dict[str, UniMP]  # task -> the single-task model


def unified_for(methods: Methods, task: str) -> dict[str, UniMP]:
    out = dict(methods.unified)
    if task in methods.single:
        out["unimp-single"] = methods.single[task]
    return out


def recommendation(split: TaskSplit, methods: Methods, cfg: UniMPBenchConfig, item_ids: list[str], seed: int) -> dict:
    tests = split.test["recommendation"]
    histories = [[e.item for e in ex.history] for ex in tests]
    ranked = {
        name: [[i for i, _ in r] for r in m.decoder.rank_items(tests, 10, histories)]
        for name, m in unified_for(methods, "recommendation").items()
    }
    train = {u: [e.item for e in h] for u, h in split.train_histories.items()}
    for name in cfg.recommenders:
        model = B.RECOMMENDERS[name]().fit(train, item_ids, seed=seed)
        ranked[name] = B.top_k(model.score(histories), item_ids, 10, exclude=histories)
    return ranked


def search(split: TaskSplit, methods: Methods, dataset: Dataset, item_ids: list[str]) -> dict:
    from tailorgen.encoders import item_text

    tests = split.test["search"]
    ranked = {
        name: [[i for i, _ in r] for r in m.decoder.rank_items(tests, 10)]
        for name, m in unified_for(methods, "search").items()
    }
    rows = {r["item_id"]: r for r in dataset.items.select(["item_id", "title", "description"]).to_pylist()}
    texts = [item_text(rows[i]) for i in item_ids]
    for name, cls in B.SEARCH.items():
        scores = cls().fit(item_ids, texts).score([ex.query for ex in tests])
        ranked[name] = B.top_k(scores, item_ids, 10)
    return ranked


def rating(split: TaskSplit, methods: Methods, seed: int) -> dict[str, np.ndarray]:
    tests = split.test["rating"]
    preds = {name: m.decoder.rate(tests)[0] for name, m in unified_for(methods, "rating").items()}
    events = [(u, e) for u, h in split.train_histories.items() for e in h if e.rating is not None]
    users, items = [ex.user for ex in tests], [ex.target for ex in tests]
    for name, cls in B.RATING.items():
        model = cls().fit([u for u, _ in events], [e.item for _, e in events], [e.rating for _, e in events], seed=seed)
        preds[name] = model.predict(users, items)
    return preds


def explanation(split: TaskSplit, methods: Methods, dataset: Dataset) -> dict[str, list[str]]:
    tests = split.test["explanation"]
    texts = {name: m.decoder.explain(tests) for name, m in unified_for(methods, "explanation").items()}
    item_texts = {r["item_id"]: r["title"] for r in dataset.items.select(["item_id", "title"]).to_pylist()}
    reviews = [(u, e.item, e.review) for u, h in split.train_histories.items() for e in h if e.review]
    attrs = (
        dataset.items.select(["item_id", "title", "tags", "category", "brand"])
        .to_pandas()
        .set_index("item_id")
        .to_dict("index")
    )
    pairs = [(ex.user, ex.target) for ex in tests]
    texts["nearest-review"] = B.NearestReview().fit(reviews, item_texts).explain(pairs)
    texts["template"] = B.AttributeTemplate(item_attributes=attrs).fit(reviews, item_texts).explain(pairs)
    return texts


def factual(dataset: Dataset, split: TaskSplit, texts: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Only where the dataset is a shop: the oracle says which attributes drive each test unit."""
    from tailorgen.evaluation.explanation_facts import factual_scores
    from tailorgen.world import Oracle

    oracle = Oracle.load(dataset.root)
    tests = split.test["explanation"]
    times = [float(split.history_times[ex.user][len(ex.history)]) for ex in tests]
    users, items = [ex.user for ex in tests], [ex.target for ex in tests]
    return {name: factual_scores(oracle, users, items, times, t) for name, t in texts.items()}


def _task(
    name: str,
    methods: Sequence[str],
    metrics: Sequence[str],
    primary: str,
    tests: Sequence[Example],
    compare: Sequence[str],
) -> Task:
    return Task(
        name,
        tuple(methods),
        tuple(metrics),
        primary,
        tuple(against("unimp", methods, compare)),
        units={"user_id": [ex.user for ex in tests], "item_id": [ex.target for ex in tests]},
    )


def latency(unimp: UniMP, split: TaskSplit, n: int = 50) -> dict:
    """One user's top-10 (a batch of one), timed after a warm-up; and recommendations per second in batches."""
    tests = split.test["recommendation"][: n + 1]
    unimp.decoder.rank_items(tests[:1], 10)
    times = []
    for ex in tests[1:]:
        t0 = time.perf_counter()
        unimp.decoder.rank_items([ex], 10, [[e.item for e in ex.history]])
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    unimp.decoder.rank_items(tests, 10, [[e.item for e in ex.history] for ex in tests])
    return {
        "top10_one_user_ms": {
            "median": round(1000 * float(np.median(times)), 1),
            "p95": round(1000 * float(np.percentile(times, 95)), 1),
        },
        "users_per_second_batched": round(len(tests) / (time.perf_counter() - t0), 1),
    }


@dataclass
class Run:
    """One benchmark run's shared inputs, and what its scorers add: per-unit values, tasks, extras."""

    ds: Dataset
    split: TaskSplit
    methods: Methods
    cfg: UniMPBenchConfig
    item_ids: list[str]
    per_unit: dict = dataclasses.field(default_factory=dict)
    tasks: list[Task] = dataclasses.field(default_factory=list)
    extras: dict = dataclasses.field(default_factory=dict)
    images: dict = dataclasses.field(default_factory=dict)  # image generation: request kind -> method -> images

    def add(self, task: Task, values: dict) -> None:
        self.tasks.append(task)
        self.per_unit[task.name] = values


def score_recommendation(run: Run) -> None:
    """The whole catalog, the history left out; targets never seen in training also as a task of their own."""
    tests = run.split.test["recommendation"]
    ranked = recommendation(run.split, run.methods, run.cfg, run.item_ids, run.cfg.seed)
    values = {m: ranking_values(r, [ex.target for ex in tests]) for m, r in ranked.items()}
    run.add(_task("recommendation", list(ranked), RANKING, "ndcg@10", tests, ("ndcg@10", "hr@10", "mrr@10")), values)
    unseen = [k for k, ex in enumerate(tests) if ex.target not in run.split.train_items]
    run.extras["unseen_test_targets"] = len(unseen)
    if unseen:
        sub = [tests[k] for k in unseen]
        values = {m: ranking_values([r[k] for k in unseen], [ex.target for ex in sub]) for m, r in ranked.items()}
        run.add(_task("recommendation_unseen", list(ranked), RANKING, "ndcg@10", sub, ("ndcg@10",)), values)
    run.extras["latency_ms"] = latency(run.methods.unified["unimp"], run.split)


def score_search(run: Run) -> None:
    tests = run.split.test["search"]
    ranked = search(run.split, run.methods, run.ds, run.item_ids)
    values = {m: ranking_values(r, [ex.target for ex in tests]) for m, r in ranked.items()}
    run.add(_task("search", list(ranked), RANKING, "ndcg@10", tests, ("ndcg@10", "hr@10")), values)


def score_rating(run: Run) -> None:
    tests = run.split.test["rating"]
    truth = np.array([ex.rating for ex in tests], np.float64)
    preds = rating(run.split, run.methods, run.cfg.seed)
    values = {m: {"rmse": p - truth, "mae": np.abs(p - truth)} for m, p in preds.items()}
    run.add(_task("rating", list(preds), ("rmse", "mae"), "rmse", tests, ("mae",)), values)


def score_explanation(run: Run) -> None:
    tests = run.split.test["explanation"]
    texts = explanation(run.split, run.methods, run.ds)
    values = {m: text_values(t, [ex.review for ex in tests]) for m, t in texts.items()}
    metrics, compared = TEXT, ("bleu4", "rouge_l")
    if run.ds.has_ground_truth:  # a shop: the oracle says which attributes drive the user (evaluation only)
        for m, v in factual(run.ds, run.split, texts).items():
            values[m]["factual"] = v
        metrics, compared = (*TEXT, "factual"), (*compared, "factual")
    run.add(_task("explanation", list(texts), metrics, "rouge_l", tests, compared), values)
    run.extras["explanation_examples"] = {
        m: [{"user": ex.user, "item": ex.target, "review": ex.review, "text": t[k]} for k, ex in enumerate(tests[:8])]
        for m, t in texts.items()
    }


SCORERS = {
    "recommendation": score_recommendation,
    "search": score_search,
    "rating": score_rating,
    "explanation": score_explanation,
    "image_generation": score_image_generation,
}


def load_methods(ds: Dataset, folders: dict[str, Path], device: str, progress: bool) -> Methods:
    loaded = {name: UniMP(ds, f, device=device, progress=progress) for name, f in folders.items()}
    return Methods(
        unified={n: m for n, m in loaded.items() if not n.startswith("unimp-single-")},
        single={n.removeprefix("unimp-single-"): m for n, m in loaded.items() if n.startswith("unimp-single-")},
    )


def run_unimp_benchmark(
    cfg: UniMPBenchConfig,
    work_dir: str | Path = "runs/work",
    out: str | Path | None = None,
    dataset: str | Path | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> dict:
    """Train (or reuse) the unified models, fit the baselines, score every task; write OUT/unimp_benchmark.json."""
    started = time.perf_counter()
    work_dir = Path(work_dir)
    root = Path(dataset) if dataset else bench_shop(cfg, work_dir, progress)
    ds = Dataset(root)
    split = build_task_split(ds, cfg.tasks, "last")
    tasks = [t for t in cfg.tasks if split.test.get(t)]
    skipped = {t: "needs the judge and the oracle (a simulated shop)" for t in tasks if t in IMAGE_TASKS}
    tasks = [t for t in tasks if t not in IMAGE_TASKS or ds.has_ground_truth]
    configs = model_configs(cfg, tasks)
    models_dir = work_dir / "models" / (f"shop-{cfg.seed}" if dataset is None else root.name)
    folders = {name: trained(name, c, root, models_dir, progress, device) for name, c in configs.items()}
    run = Run(ds, split, load_methods(ds, folders, device, progress), cfg, ds.items.column("item_id").to_pylist())
    for task in tasks:
        SCORERS[task](run)
    run.extras |= {
        "test_units": {t: len(split.test[t]) for t in tasks},
        "images": {n: UnifiedConfig.load(f).with_images for n, f in folders.items()},
        "training_seconds": {n: read_json(f / "training_report.json").get("train_seconds") for n, f in folders.items()},
        "training_devices": {n: read_json(f / "training_report.json").get("device") for n, f in folders.items()},
    }
    if not ds.has_ground_truth and skipped:
        run.extras["not_computed"] = skipped
    if out is not None and run.images:
        run.extras["examples"] = IMAGE_GRID
    weights = {n: f / "lm" / "model.safetensors" for n, f in folders.items()}
    record = build_record(
        benchmark="unimp",
        what="UniMP (unified model) against field baselines: recommendation, search, rating, explanation",
        tasks=run.tasks,
        per_unit=run.per_unit,
        config=config_as_json(cfg) | {"train_configs": {n: config_as_json(c) for n, c in configs.items()}},
        seeds=[cfg.seed],
        checkpoints={n: hash_file(w) for n, w in weights.items() if w.exists()},
        started=started,
        dataset=str(root),
        extras=run.extras,
    )
    if out is not None:
        write_record(record, out)
        if run.images:
            image_grid(run.images, [e["keywords"] for e in run.extras["image_examples"]]).save(Path(out) / IMAGE_GRID)
    return record


IMAGE_GRID = "unimp_images.png"


def image_grid(images: dict, keywords: list[str], users: int = 8, scale: int = 3):
    """Rows: the first users' keyword requests (labelled); columns: the real target, then each method's images."""
    from PIL import Image, ImageDraw

    methods = list(images["asked"])
    w, h = images["asked"][methods[0]][0][0].size
    w, h = w * scale, h * scale
    per = {m: len(images["asked"][m][0]) for m in methods}
    rows = min(users, len(images["asked"][methods[0]]))
    left, top, gap = 150, 18, 8
    grid = Image.new("RGB", (left + sum(w * per[m] + gap for m in methods), top + h * rows), "white")
    draw = ImageDraw.Draw(grid)
    x = left
    for m in methods:
        draw.text((x, 3), m, fill="black")
        for r in range(rows):
            for j, im in enumerate(images["asked"][m][r]):
                grid.paste(im.resize((w, h), Image.NEAREST), (x + j * w, top + r * h))
        x += w * per[m] + gap
    for r in range(rows):
        draw.text((4, top + r * h + h // 2 - 6), keywords[r][:24], fill="black")
    return grid


def format_table(record: dict) -> str:
    """Per task: each method's metrics (mean [95% interval]), then unimp's paired differences."""
    from tailorgen.evaluation.registry import metric_info

    lines = [f"{record['what']}  ({record['dataset']}, {record['seconds']:.0f} s)"]
    for task, spec in record["tasks"].items():
        metrics = [m for m in spec["metrics"] if any(m in r for r in record["results"][task].values())]
        lines += [
            "",
            f"{task} ({len(spec['units'].get('user_id', []))} units)",
            "method".ljust(16) + "".join(metric_info(m).column.rjust(24) for m in metrics),
        ]
        for method, by_metric in record["results"][task].items():
            cells = []
            for m in metrics:
                s, d = by_metric.get(m), metric_info(m).digits
                cells.append("n/a" if s is None else f"{s['mean']:.{d}f} [{s['ci_low']:.{d}f}, {s['ci_high']:.{d}f}]")
            lines.append(method.ljust(16) + "".join(c.rjust(24) for c in cells))
        for metric, comparisons in record["paired"].get(task, {}).items():
            for key, c in comparisons.items():
                lines.append(
                    f"  {metric}: {key}: {c['diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], p = {c['p']:.2g}"
                )
    lat = record.get("extras", {}).get("latency_ms") or {}
    if lat:
        lines += [
            "",
            f"latency: one user's top-10 {lat['top10_one_user_ms']['median']} ms (median), "
            f"{lat['users_per_second_batched']} users/s batched",
        ]
    return "\n".join(lines)
