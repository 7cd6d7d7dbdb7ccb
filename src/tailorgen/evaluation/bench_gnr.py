"""The Generate, Not Recommend benchmark: generated next items against recommended ones, in the user's future.

``tailorgen bench gnr --seed S | --dataset DIR``. The models (all cached under ``WORK_DIR/models``
while their config and data hold): the multi-task UniMP model (the one ``bench unimp`` trains), the
preference reward (candidates through that model's VQ tokenizer), and GNR (SFT, then RL against the
reward; the judge and the oracle watch RL through a monitor on users the reward never saw, and are
never read by it).

Each leave-one-out test user is asked from their training history (everything before their
held-out validation and test interactions: their future, which no model saw); the oracle scores at
the time of the test interaction. Methods, each given as images (the catalog items' own images for
the recommenders) that the judge reads:

- ``gnr`` and ``gnr-sft`` (before RL): ``n`` drawn next items; ``mismatched``: gnr's items for another user;
- ``gnr-reranked``: gnr's ``best_of`` drawn items, of which the ``n`` the preference reward rates highest
  (best-of-N by the training signal, at ``best_of / n`` times the cost);
- ``unimp-top1``, ``unimp-top4``, ``sasrec-top1``: recommended catalog items (the history left out);
- ``best-catalog``: the catalog item the oracle rates highest for the user then (the ceiling of recommending).

Metrics per user (mean over the user's items): ``future_utility`` (the oracle's utility of the
judge-read attributes), ``validity`` (the judge reads a category with probability >= 0.5),
``future_similarity`` and ``past_similarity`` (cosine of the image embedding to the future items' and to
the history's), ``novelty`` and ``diversity``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailorgen.common import read_json
from tailorgen.data import Dataset
from tailorgen.evaluation.metrics import diversity, novelty
from tailorgen.evaluation.runner import Comparison, Task, against, build_record, write_record
from tailorgen.training import config_as_json, config_from, require, setting, trained_with
from tailorgen.unified import baselines as B
from tailorgen.unified.gnr import GNR, GNRTrainConfig, train_gnr
from tailorgen.unified.reward import RewardTrainConfig, train_reward
from tailorgen.unified.serialize import Example
from tailorgen.unified.tasks import build_task_split
from tailorgen.unified.train import UniMPTrainConfig

METHODS = ("gnr", "gnr-sft", "gnr-reranked", "unimp-top1", "unimp-top4", "sasrec-top1", "best-catalog", "mismatched")
METRICS = ("future_utility", "validity", "future_similarity", "past_similarity", "novelty", "diversity")
CURVES = "gnr_rl_curves.png"


@dataclass
class GNRBenchConfig:
    seed: int = setting(0, "Seed of the shop (ignored with --dataset) and of the generations.")
    shop_items: int = setting(2000, "Items of the benchmark shop.")
    shop_users: int = setting(1200, "Users of the benchmark shop.")
    users: int = setting(300, "Test users measured (the first of the leave-one-out test users).")
    n: int = setting(4, "Items GNR draws per user.")
    best_of: int = setting(8, "gnr-reranked: items drawn per user, of which the reward's best n are kept.")
    monitor_users: int = setting(32, "Users the reward never saw whom the judge and the oracle watch during RL.")
    unimp_train: tuple[str, ...] = setting((), "key=value overrides of the UniMP model's training config.")
    reward_train: tuple[str, ...] = setting((), "key=value overrides of the reward's training config.")
    gnr_train: tuple[str, ...] = setting((), "key=value overrides of GNR's training config.")

    def __post_init__(self):
        require(self.users >= 2 and self.n >= 1, "users", (self.users, self.n), "users >= 2 and n >= 1")
        require(self.best_of >= self.n, "best_of", self.best_of, f"at least n ({self.n})")


def cached(folder: Path, cfg, dataset_dir: Path, train) -> Path:
    """``folder``, trained now by ``train(folder)`` unless it holds a model of this config on this data."""
    if not trained_with(folder, cfg, dataset_dir):
        train(folder)
    return folder


def trained_models(cfg: GNRBenchConfig, root: Path, models: Path, progress: bool, device: str, monitor) -> dict:
    from tailorgen.evaluation.bench_unimp import trained

    unimp = trained("unimp", config_from(UniMPTrainConfig, overrides=cfg.unimp_train), root, models, progress, device)
    reward_cfg = config_from(RewardTrainConfig, overrides=cfg.reward_train, vq=str(unimp / "vq"))
    reward = cached(models / "reward", reward_cfg, root,
                    lambda f: train_reward(reward_cfg, root, f, progress=progress, device=device))  # fmt: skip
    gnr_cfg = config_from(GNRTrainConfig, overrides=cfg.gnr_train, unimp=str(unimp), reward=str(reward))
    gnr = models / "gnr"
    cached(gnr / "rl", gnr_cfg, root, lambda f: train_gnr(gnr_cfg, root, gnr, progress, device, monitor=monitor))
    return {"unimp": unimp, "reward": reward, "gnr": gnr}


@dataclass
class Users:
    """The measured users: training history (the prompt), future items, the time of the test interaction."""

    ids: list[str]
    past: list[list[str]]
    future: list[list[str]]
    times: list[float]


def test_users(ds: Dataset, limit: int) -> tuple[Users, dict]:
    split = build_task_split(ds, ("recommendation",), "last")
    ids = [ex.user for ex in split.test["recommendation"]][:limit]
    past = [[e.item for e in split.train_histories[u]] for u in ids]
    future = [[e.item for e in split.histories[u][len(split.train_histories[u]) :]] for u in ids]
    times = [float(split.history_times[u][-1]) for u in ids]
    return Users(ids, past, future, times), split.train_histories


class Instruments:
    """The judge, the oracle and the image encoder: what reads and scores every method's images."""

    def __init__(self, ds: Dataset):
        from tailorgen.encoders import default_encoder
        from tailorgen.evaluation.judge import Judge
        from tailorgen.world import Oracle

        self.ds, self.judge, self.oracle, self.encoder = ds, Judge(), Oracle.load(ds.root), default_encoder("image")
        self.item_ids = ds.items.column("item_id").to_pylist()
        self.catalog = self.encoder.encode([ds.load_image(i) for i in self.item_ids])
        self.row = {i: k for k, i in enumerate(self.item_ids)}

    def read(self, images: list) -> tuple[list[dict], np.ndarray]:
        """The judge's reading of each image, and whether it reads a category with probability >= 0.5."""
        probs = self.judge.probabilities(images)
        return self.judge.read(images), (probs["category"].max(1) >= 0.5).astype(float)

    def monitor(self, times: dict[str, float]):
        """RL's monitor: the judge's validity and the oracle's utility of the held-out users' images."""

        def watch(step: int, users: list[str], images: list) -> dict[str, float]:
            reads, valid = self.read(images)
            utility = [self.oracle.utility(u, r, times[u]) for u, r in zip(users, reads, strict=True)]
            return {
                "judge_validity": round(float(valid.mean()), 4),
                "oracle_utility": round(float(np.mean(utility)), 4),
            }

        return watch

    def score(self, users: Users, images: list[list]) -> dict[str, np.ndarray]:
        """Per user, the mean over their images of each metric."""
        out = {m: [] for m in METRICS}
        for u, past, future, t, ims in zip(users.ids, users.past, users.future, users.times, images, strict=True):
            reads, valid = self.read(ims)
            emb = self.encoder.encode(ims)
            out["future_utility"].append(float(np.mean(self.oracle.utilities(u, reads, t))))
            out["validity"].append(float(valid.mean()))
            out["future_similarity"].append(float((emb @ self.catalog[[self.row[i] for i in future]].T).mean()))
            out["past_similarity"].append(float((emb @ self.catalog[[self.row[i] for i in past]].T).mean()))
            out["novelty"].append(float(novelty(emb, self.catalog)))
            out["diversity"].append(diversity(emb) if len(ims) > 1 else np.nan)
        values = {m: np.asarray(v, np.float64) for m, v in out.items()}
        if np.isnan(values["diversity"]).any():  # one item a user (a top-1): no diversity to speak of
            del values["diversity"]
        return values

    def best_item(self, user: str, past: list[str], t: float) -> str:
        """The catalog item (not already bought) whose true visual attributes the oracle rates highest."""
        pool = [i for i in self.item_ids if i not in set(past)]
        rows = [self.oracle.item_attributes(i, visual_only=True) for i in pool]
        return pool[int(np.argmax(self.oracle.utilities(user, rows, t)))]


def method_images(cfg: GNRBenchConfig, ds: Dataset, users: Users, train_histories: dict, models: dict,
                  tools: Instruments, device: str) -> tuple[dict[str, list[list]], dict]:  # fmt: skip
    """Every method's images per user, and the latency of one generated item."""
    from tailorgen.unified import UniMP

    out: dict[str, list[list]] = {}
    for name, folder in (("gnr-sft", models["gnr"] / "sft"), ("gnr", models["gnr"] / "rl")):  # gnr: the last
        gnr = GNR(ds, folder, device=device, histories=train_histories)
        out[name] = [g["images"] for g in gnr.generate(users.ids, cfg.n, cfg.seed)]
    out["gnr-reranked"] = [g["images"] for g in gnr.generate(users.ids, cfg.n, cfg.seed, best_of=cfg.best_of)]
    t0 = time.perf_counter()
    gnr.generate(users.ids[:1], 1, cfg.seed)
    latency = {"one_item_seconds": round(time.perf_counter() - t0, 3)}
    unimp = UniMP(ds, models["unimp"], device=device)
    examples = [Example(u, "recommendation", tuple(train_histories[u]), "") for u in users.ids]
    ranked = [[i for i, _ in r] for r in unimp.decoder.rank_items(examples, 4, users.past)]
    load = ds.load_image
    out["unimp-top1"] = [[load(r[0])] for r in ranked]
    out["unimp-top4"] = [[load(i) for i in r[:4]] for r in ranked]
    sasrec = B.RECOMMENDERS["sasrec"]().fit({u: [e.item for e in h] for u, h in train_histories.items()},
                                            tools.item_ids, seed=cfg.seed)  # fmt: skip
    top = B.top_k(sasrec.score(users.past), tools.item_ids, 1, exclude=users.past)
    out["sasrec-top1"] = [[load(r[0])] for r in top]
    out["best-catalog"] = [[load(tools.best_item(u, p, t))] for u, p, t in zip(users.ids, users.past, users.times)]
    partner = np.roll(np.arange(len(users.ids)), 1 + int(np.random.default_rng(cfg.seed).integers(len(users.ids) - 1)))
    out["mismatched"] = [out["gnr"][p] for p in partner]  # drawn for another user, scored for this one
    return out, latency


def run_gnr_benchmark(
    cfg: GNRBenchConfig,
    work_dir: str | Path = "runs/work",
    out: str | Path | None = None,
    dataset: str | Path | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> dict:
    """Train (or reuse) UniMP, the reward and GNR; score every method; write OUT/gnr_benchmark.json."""
    from tailorgen.evaluation.bench_unimp import UniMPBenchConfig, bench_shop

    started, work_dir = time.perf_counter(), Path(work_dir)
    shop = UniMPBenchConfig(seed=cfg.seed, shop_items=cfg.shop_items, shop_users=cfg.shop_users)
    root = Path(dataset) if dataset else bench_shop(shop, work_dir, progress)
    ds = Dataset(root)
    require(ds.has_ground_truth, "dataset", str(root), "a simulated shop (the judge and the oracle measure GNR)")
    users, train_histories = test_users(ds, cfg.users)
    everyone, _ = test_users(ds, len(ds.user_histories()))
    tools = Instruments(ds)
    models_dir = work_dir / "models" / (f"shop-{cfg.seed}" if dataset is None else root.name)
    monitor = tools.monitor(dict(zip(everyone.ids, everyone.times, strict=True)))
    models = trained_models(cfg, root, models_dir, progress, device, monitor)
    images, latency = method_images(cfg, ds, users, train_histories, models, tools, device)
    per_unit = {"next_item": {m: tools.score(users, ims) for m, ims in images.items()}}
    future_vs_past = Comparison(
        "gnr", "gnr", "future_similarity", b_metric="past_similarity", label="gnr future vs past"
    )
    reranked = against("gnr-reranked", ("gnr", "unimp-top1", "sasrec-top1"), ("future_utility",))
    compared = (*against("gnr", METHODS, ("future_utility", "future_similarity")), *reranked, future_vs_past)
    task = Task("next_item", METHODS, METRICS, "future_utility", compared, units={"user_id": users.ids})
    record = build_record(
        benchmark="gnr",
        what="Generate, Not Recommend: generated next items against recommended ones, in the user's future",
        tasks=[task],
        per_unit=per_unit,
        config=config_as_json(cfg),
        seeds=[cfg.seed],
        checkpoints={},
        started=started,
        dataset=str(root),
        extras=extras_of(models, latency) | ({"examples": CURVES} if out is not None else {}),
    )
    if out is not None:
        write_record(record, out)
        plot_curves(record["extras"]["rl"], Path(out) / CURVES)
    return record


def extras_of(models: dict, latency: dict) -> dict:
    rl = read_json(models["gnr"] / "rl" / "training_report.json")
    folders = {"unimp": models["unimp"], "reward": models["reward"], "gnr-sft": models["gnr"] / "sft"}
    seconds = {n: read_json(f / "training_report.json").get("train_seconds") for n, f in folders.items()}
    keys = ("evaluations", "reward_curve", "kl_curve", "best_step", "stopped_at")
    return {
        "latency": latency,
        "rl": {k: rl.get(k) for k in keys},
        "training_seconds": seconds | {"gnr-rl": rl.get("train_seconds")},
        "reward_held_out": read_json(models["reward"] / "training_report.json").get("held_out"),
    }


def plot_curves(report: dict, path: Path) -> None:
    """The reward of the training users' draws at each step (by the policy after that many updates), and at
    each evaluation the held-out reward, the judge's validity and the oracle's utility, at the same x:
    hacking shows as the first rising without the last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = report.get("evaluations") or []
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(report.get("reward_curve") or [], label="training users' draws")
    axes[0].plot([e["step"] for e in evals], [e["held_out_reward"] for e in evals], "o-", label="held-out users")
    axes[0].set_title("reward")
    for ax, key, title in ((axes[1], "judge_validity", "judge validity (held-out)"),
                           (axes[2], "oracle_utility", "oracle utility (held-out)")):  # fmt: skip
        ax.plot([e["step"] for e in evals if key in e], [e[key] for e in evals if key in e], "o-")
        ax.set_title(title)
    for ax in axes:
        ax.set_xlabel("RL step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_table(record: dict) -> str:
    from tailorgen.evaluation.bench_unimp import format_table as unimp_table

    return unimp_table(record)
