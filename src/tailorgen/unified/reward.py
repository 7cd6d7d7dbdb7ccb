"""The learned preference reward of "Generate, Not Recommend": how likely a user is to choose an image next.

GNR's generator writes the user's next item as an image, and online RL trains it against this
reward. ``PreferenceReward`` reads the image embeddings of the user's last ``max_history`` items
(the shipped image encoder, ``encoders.default_encoder("image")``) and a candidate image's
embedding, and returns a logit. It is trained from interactions only (``train_reward``,
``tailorgen train reward DATASET``): for each training interaction, the history before it -> the
item chosen, against ``negatives`` catalog items drawn uniformly (a sampled softmax). It never reads
the judge or the oracle: those measure the generator, and a reward that read them would teach it to
please the measurement.

Two splits keep the report honest: per user, the last interaction is the test and the second-last
the validation (``unified.tasks``, leave-one-out), and a seeded hash of the user id keeps
``held_out_users`` of the users out of training altogether, since RL evaluates on users the reward
never saw. With ``vq``, every candidate (positive and negative) is the embedding of the item image's
VQ reconstruction, as the generator writes images; the history stays the real catalog images. A
reward that saw real positives and reconstructed negatives would learn "looks VQ-made" instead of
taste.

On disk: ``reward.safetensors``, ``reward_config.json`` (what the reward reads, the encoder's and
VQ tokenizer's fingerprints included) and the trainer's ``training_report.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from tailorgen.common import write_json
from tailorgen.data import Dataset
from tailorgen.encoders import Encoder, default_encoder, encode_catalog
from tailorgen.training import (
    CHECKPOINT_EVERY,
    EpochOrder,
    TrainingError,
    TrainingRun,
    data_hashes,
    require,
    set_lr,
    setting,
    setup,
    warmup_cosine,
)
from tailorgen.unified.serialize import Example
from tailorgen.unified.tasks import TaskSplit, build_task_split
from tailorgen.unified.vq import VQImageTokenizer

WEIGHTS, CONFIG = "reward.safetensors", "reward_config.json"


@dataclass
class RewardConfig:
    """A reward's shape and what it reads (``reward_config.json``)."""

    embed_dim: int = 384
    hidden: int = 64
    layers: int = 1
    heads: int = 4
    max_history: int = 10
    dropout: float = 0.3
    image_encoder: str = ""  # fingerprint of the encoder whose embeddings it reads
    candidate_vq: str | None = None  # fingerprint of the VQ tokenizer candidates go through, or None


def recency(mask: torch.Tensor, max_history: int) -> torch.Tensor:
    """Each history slot's recency (0: the most recent real item), for histories ordered oldest first
    with padding anywhere; clamped to the table, and meaningless on padding (which is masked)."""
    newer = mask.long().flip(1).cumsum(1).flip(1) - 1
    return newer.clamp(0, max_history - 1)


class PreferenceReward(nn.Module):
    """History (B, H, D) oldest first, its mask (B, H; True = a real item) and candidates (B, C, D)
    (or (B, D)) -> logits (B, C) (or (B,)): how likely the user picks each candidate next.

    Embeddings go through one learned projection, the history gets recency embeddings and a
    transformer encoder, attention pooling makes the user vector, and an MLP of
    [user, candidate, user * candidate] scores. A learned start token is always in the history,
    so a user with no history still has a vector.
    """

    def __init__(self, config: RewardConfig):
        super().__init__()
        self.config = config
        h = config.hidden
        self.project = nn.Sequential(nn.Linear(config.embed_dim, h), nn.LayerNorm(h))
        self.start = nn.Parameter(torch.zeros(h))
        self.recency = nn.Embedding(config.max_history, h)
        layer = nn.TransformerEncoderLayer(h, config.heads, 2 * h, config.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, norm=nn.LayerNorm(h), enable_nested_tensor=False)
        self.pool = nn.Linear(h, 1)
        self.head = nn.Sequential(nn.Linear(3 * h, h), nn.GELU(), nn.Linear(h, 1))

    def user_vector(self, history: torch.Tensor, history_mask: torch.Tensor) -> torch.Tensor:
        mask = history_mask.bool()
        x = self.project(history) + self.recency(recency(mask, self.config.max_history))
        x = torch.cat([self.start.expand(len(x), 1, -1), x], 1)
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], 1)
        x = self.encoder(x, src_key_padding_mask=~keep)
        weights = self.pool(x).squeeze(-1).masked_fill(~keep, float("-inf")).softmax(-1)
        return (weights.unsqueeze(-1) * x).sum(1)

    def forward(self, history: torch.Tensor, history_mask: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        one = candidates.ndim == 2
        cand = self.project(candidates[:, None] if one else candidates)
        user = self.user_vector(history, history_mask)[:, None].expand_as(cand)
        logits = self.head(torch.cat([user, cand, user * cand], -1)).squeeze(-1)
        return logits[:, 0] if one else logits

    def loss(self, history: torch.Tensor, history_mask: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Sampled-softmax cross-entropy: each row's candidate 0 is the item chosen, the rest negatives."""
        logits = self(history, history_mask, candidates)
        return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray | torch.Tensor], candidate_embeddings) -> torch.Tensor:
        """For RL: one history per row ((h_i, D) embeddings, oldest first, any length, even 0) and
        candidates (B, D) or (B, C, D) -> logits (B,) or (B, C), in eval mode. Only the last
        ``max_history`` items of a history are read."""
        cands = torch.as_tensor(candidate_embeddings, dtype=torch.float32)
        history, mask = pad_histories(histories, self.config.max_history, self.config.embed_dim)
        training, device = self.training, self.start.device
        self.eval()
        try:
            return self(history.to(device), mask.to(device), cands.to(device)).cpu()
        finally:
            self.train(training)

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS))
        write_json(folder / CONFIG, dataclasses.asdict(self.config))

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu") -> PreferenceReward:
        folder = Path(folder)
        if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
            raise FileNotFoundError(
                f"no preference reward at {folder} (no {WEIGHTS}); make one with "
                f"`tailorgen train reward DATASET --out {folder}`"
            )
        model = cls(RewardConfig(**json.loads((folder / CONFIG).read_text())))
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
        return model.to(device).eval()


def pad_histories(histories: Sequence, max_history: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length histories -> (B, H, D) with their last ``max_history`` items left-padded, and the mask."""
    rows = [torch.as_tensor(h, dtype=torch.float32).cpu().reshape(-1, dim)[-max_history:] for h in histories]
    width = max([len(r) for r in rows] + [1])
    history, mask = torch.zeros(len(rows), width, dim), torch.zeros(len(rows), width, dtype=torch.bool)
    for b, r in enumerate(rows):
        if len(r):
            history[b, width - len(r) :], mask[b, width - len(r) :] = r, True
    return history, mask


def embed_pixels(encoder: Encoder, pixels: torch.Tensor) -> np.ndarray:
    """Images (n, 3, H, W) in [0, 1], as a VQ decoder writes them, -> the encoder's embeddings. Through
    8-bit PIL images, as a saved generated image is: training and RL read candidates the same way."""
    return encoder.encode(VQImageTokenizer.to_pil(pixels))


@dataclass
class RewardTrainConfig:
    max_history: int = setting(10, "History items the reward reads (the most recent ones).")
    hidden: int = setting(64, "Width of the projection, the transformer and the scoring MLP.")
    layers: int = setting(1, "Transformer encoder layers over the history.")
    heads: int = setting(4, "Attention heads.")
    dropout: float = setting(0.3, "Dropout in the transformer (a shop's few thousand examples overfit fast).")
    negatives: int = setting(32, "Catalog items drawn uniformly per training example (the positive excluded).")
    held_out_users: float = setting(
        0.2,
        "Share of users never trained on (a seeded hash of the user id): RL evaluates on users the reward never saw.",
    )
    user_split_seed: int = setting(0, "Seed of the hash that holds users out (separate from seed: the split stays).")
    vq: str | None = setting(
        None,
        "VQ image tokenizer folder: every candidate is the embedding of the item image's VQ reconstruction, "
        "as the generator writes images (none: the real images).",
    )
    eval_negatives: int = setting(99, "Sampled negatives each test positive is ranked among (AUC, HR@10, NDCG@10).")
    steps: int = setting(
        1000, "Optimizer steps (about 15 epochs of a 2,000-item, 300-user shop; twice as many overfit it)."
    )
    batch_size: int = setting(64, "Examples per step.")
    lr: float = setting(1e-3, "Peak learning rate (AdamW, linear warm-up, cosine decay).")
    warmup_steps: int = setting(100, "Warm-up steps.")
    weight_decay: float = setting(0.01, "AdamW weight decay.")
    seed: int = setting(0, "Seed of the initialization, the batch order and the negatives (the test's are fixed).")
    threads: int = setting(2, "CPU threads torch uses.")

    def __post_init__(self):
        require(self.max_history >= 1, "max_history", self.max_history, "an integer >= 1")
        require(self.heads >= 1, "heads", self.heads, "an integer >= 1")
        require(self.hidden >= 1 and self.hidden % self.heads == 0, "hidden", self.hidden, "a multiple of heads")
        require(self.layers >= 1, "layers", self.layers, "an integer >= 1")
        require(0 <= self.dropout < 1, "dropout", self.dropout, "a number from 0 up to 1")
        require(self.negatives >= 1, "negatives", self.negatives, "an integer >= 1")
        require(0 <= self.held_out_users < 1, "held_out_users", self.held_out_users, "a share from 0 up to 1")
        require(self.eval_negatives >= 1, "eval_negatives", self.eval_negatives, "an integer >= 1")
        require(self.steps >= 1, "steps", self.steps, "an integer >= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        require(self.warmup_steps >= 1, "warmup_steps", self.warmup_steps, "an integer >= 1")

    def model_config(self, embed_dim: int, image_encoder: str, candidate_vq: str | None) -> RewardConfig:
        return RewardConfig(embed_dim, self.hidden, self.layers, self.heads, self.max_history, self.dropout,
                            image_encoder, candidate_vq)  # fmt: skip


def is_held_out(user: str, share: float, seed: int) -> bool:
    """Whether ``user`` is never trained on: a hash of (seed, user id), so the split stays as users come and go."""
    digest = hashlib.sha256(f"{seed}:{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass
class Rows:
    """Examples as item rows: each history's last ``max_history`` items (oldest first, -1 = padding) and the target."""

    users: list[str]
    history: np.ndarray  # (N, H) int64
    target: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.target)


@dataclass
class RewardData:
    """What training and evaluation read, computed once: per item (in ``item_ids`` order) the real image's
    embedding (histories) and the candidate's (through the VQ tokenizer when one is given)."""

    item_ids: list[str]
    history_vectors: torch.Tensor  # (n, D); zeros where an item has no image
    candidate_vectors: torch.Tensor  # (n, D)
    pool: np.ndarray  # rows of the items with an image: every positive and negative is one
    train: Rows
    test: dict[str, Rows]  # evaluation groups
    popularity: np.ndarray  # (n,) training interactions of the training users per item
    held_out: set[str]  # users never trained on
    encoder: str  # the image encoder's fingerprint
    vq: str | None  # the VQ tokenizer's fingerprint

    def batch(self, rows: Rows, index: np.ndarray, candidates: np.ndarray, device: str = "cpu"):
        """(history (B, H, D), mask (B, H), candidates (B, C, D)) of examples ``index`` and candidate item rows."""
        items = torch.from_numpy(rows.history[index])
        mask = items >= 0
        history = self.history_vectors[items.clamp(min=0)] * mask[..., None]
        cands = self.candidate_vectors[torch.from_numpy(candidates)]
        return history.to(device), mask.to(device), cands.to(device)


def draw_negatives(pool: np.ndarray, targets: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(N, k) item rows drawn uniformly from ``pool`` without each row's target (with replacement: k << pool)."""
    where = np.full(int(max(pool.max(), targets.max())) + 1, -1)
    where[pool] = np.arange(len(pool))
    draw = rng.integers(0, len(pool) - 1, (len(targets), k))
    return pool[draw + (draw >= where[targets][:, None])]


def item_vectors(dataset: Dataset, encoder: Encoder, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The real images' embeddings in items-table order (cached under DATASET/embeddings/), and which items have one."""
    item_ids = dataset.items.column("item_id").to_pylist()
    ids, vecs = encode_catalog(dataset, encoder, progress=progress)
    out, row = np.zeros((len(item_ids), encoder.dim), np.float32), dataset.item_row
    out[[row[i] for i in ids]] = vecs
    has = np.zeros(len(item_ids), bool)
    has[[row[i] for i in ids]] = True
    return out, has


def vq_vectors(dataset: Dataset, encoder: Encoder, vq: VQImageTokenizer, rows: np.ndarray) -> np.ndarray:
    """The embeddings of the VQ reconstructions of items ``rows``' images (zeros elsewhere)."""
    item_ids = dataset.items.column("item_id").to_pylist()
    out = np.zeros((len(item_ids), encoder.dim), np.float32)
    for s in range(0, len(rows), 256):
        part = rows[s : s + 256]
        out[part] = embed_pixels(encoder, vq.reconstruct([dataset.load_image(item_ids[r]) for r in part]))
    return out


def to_rows(examples: Sequence[Example], row: dict[str, int], has_image: np.ndarray, max_history: int) -> Rows:
    """Examples whose target has an image, as item rows; history items without an image are left out."""
    users, history, target = [], [], []
    for ex in examples:
        t = row[ex.target]
        if not has_image[t]:
            continue
        seen = [row[e.item] for e in ex.history if has_image[row[e.item]]][-max_history:]
        users.append(ex.user)
        history.append([-1] * (max_history - len(seen)) + seen)
        target.append(t)
    shape = (len(target), max_history)
    return Rows(users, np.array(history, np.int64).reshape(shape), np.array(target, np.int64))


def evaluation_examples(split: TaskSplit, held_out: set[str]) -> dict[str, list[Example]]:
    """The report's groups: the test interaction of each held-out user and of each training user, and
    every interaction of the held-out users after their first (all unseen; twenty times the examples)."""
    test = split.test["recommendation"]
    every = [*split.train["recommendation"], *split.valid["recommendation"], *test]
    return {
        "held_out_users": [ex for ex in test if ex.user in held_out],
        "training_users": [ex for ex in test if ex.user not in held_out],
        "held_out_users_every_interaction": [ex for ex in every if ex.user in held_out],
    }


def prepare_reward_data(cfg: RewardTrainConfig, dataset_dir: str | Path, progress: bool = True) -> RewardData:
    dataset = Dataset(dataset_dir)
    encoder = default_encoder("image")
    real, has_image = item_vectors(dataset, encoder, progress)
    pool = np.flatnonzero(has_image)
    if len(pool) < 2:
        raise TrainingError(f"{dataset_dir}: {len(pool)} item(s) with an image; the reward reads images of two or more")
    vq = VQImageTokenizer.from_pretrained(cfg.vq) if cfg.vq is not None else None
    candidates = vq_vectors(dataset, encoder, vq, pool) if vq else real
    split = build_task_split(dataset, ("recommendation",), "last")
    held_out = {u for u in split.histories if is_held_out(u, cfg.held_out_users, cfg.user_split_seed)}
    row = dataset.item_row
    train = [ex for ex in split.train["recommendation"] if ex.user not in held_out]
    counts = Counter(row[e.item] for u, h in split.train_histories.items() if u not in held_out for e in h)
    popularity = np.zeros(len(row), np.float64)
    popularity[list(counts)] = list(counts.values())
    return RewardData(
        item_ids=dataset.items.column("item_id").to_pylist(),
        history_vectors=torch.from_numpy(real),
        candidate_vectors=torch.from_numpy(candidates),
        pool=pool,
        train=to_rows(train, row, has_image, cfg.max_history),
        test={k: to_rows(v, row, has_image, cfg.max_history) for k, v in evaluation_examples(split, held_out).items()},
        popularity=popularity,
        held_out=held_out,
        encoder=encoder.fingerprint,
        vq=vq.fingerprint if vq else None,
    )


def ranking_metrics(positive: np.ndarray, negative: np.ndarray, k: int = 10) -> dict:
    """Positives (N,) against their own sampled negatives (N, K): pooled AUC (sklearn), the share of its
    own negatives a positive outscores (row_auc), and HR@k / NDCG@k of the positive's rank. Ties count
    as random order (the expected value), which matters for popularity's many equal counts."""
    from sklearn.metrics import roc_auc_score

    if len(positive) == 0:
        return {}
    greater = (negative > positive[:, None]).sum(1)
    ties = (negative == positive[:, None]).sum(1)
    hr, ndcg = np.zeros(len(positive)), np.zeros(len(positive))
    for n, (g, t) in enumerate(zip(greater, ties, strict=True)):
        ranks = np.arange(g, g + t + 1)  # each equally likely
        hr[n], ndcg[n] = (ranks < k).mean(), ((ranks < k) / np.log2(ranks + 2)).mean()
    labels = np.r_[np.ones(len(positive)), np.zeros(negative.size)]
    return {
        "auc": float(roc_auc_score(labels, np.r_[positive, negative.ravel()])),
        "row_auc": float(np.mean(1 - (greater + ties / 2) / negative.shape[1])),
        f"hr@{k}": float(hr.mean()),
        f"ndcg@{k}": float(ndcg.mean()),
    }


@torch.no_grad()
def reward_scores(model: PreferenceReward, data: RewardData, rows: Rows, candidates: np.ndarray) -> np.ndarray:
    model.eval()
    out = [np.zeros((0, candidates.shape[1]), np.float32)]
    for s in range(0, len(rows), 256):
        index = np.arange(s, min(s + 256, len(rows)))
        history, mask, cands = data.batch(rows, index, candidates[index], model.start.device.type)
        out.append(model(history, mask, cands).cpu().numpy())
    return np.concatenate(out)


def evaluate_reward(model: PreferenceReward, data: RewardData, negatives: int = 99, k: int = 10, seed: int = 0) -> dict:
    """Per evaluation group: the reward's and the popularity baseline's metrics, each positive ranked among
    ``negatives`` catalog items drawn with ``seed`` (the same for both methods)."""
    out = {}
    for name, rows in data.test.items():
        if len(rows) == 0:
            out[name] = {"examples": 0}
            continue
        negative = draw_negatives(data.pool, rows.target, negatives, np.random.default_rng(seed))
        cands = np.c_[rows.target, negative]
        scores, popular = reward_scores(model, data, rows, cands), data.popularity[cands]
        out[name] = {
            "examples": len(rows),
            "users": len(set(rows.users)),
            "reward": ranking_metrics(scores[:, 0], scores[:, 1:], k),
            "popularity": ranking_metrics(popular[:, 0], popular[:, 1:], k),
        }
    return out


def train_reward(
    cfg: RewardTrainConfig,
    dataset_dir: str | Path,
    out: str | Path,
    progress: bool = True,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    stop_after: int | None = None,
) -> dict:
    """Train the preference reward on ``dataset_dir``'s interactions; save it to ``out`` (resumable) with
    the report's held-out metrics."""
    t0 = time.perf_counter()
    device = setup(cfg.seed, cfg.threads, device)
    data = prepare_reward_data(cfg, dataset_dir, progress)
    if len(data.train) < cfg.batch_size:
        raise TrainingError(f"batch_size: {cfg.batch_size} with {len(data.train)} training examples; "
                            f"allowed: batch_size <= {len(data.train)}")  # fmt: skip
    model = PreferenceReward(cfg.model_config(data.history_vectors.shape[1], data.encoder, data.vq)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)  # batch order and negatives
    order = EpochOrder(len(data.train), cfg.batch_size, lambda n: rng.permutation(n))
    sources = {"dataset": {"path": str(dataset_dir), "hashes": data_hashes(dataset_dir)}}
    if cfg.vq is not None:
        sources["vq"] = {"path": str(cfg.vq), "fingerprint": data.vq}
    run = TrainingRun(
        out,
        cfg,
        cfg.steps,
        seed=cfg.seed,
        device=device,
        data=sources,
        checkpoint_every=checkpoint_every,
        stop_after=stop_after,
        progress=progress,
        desc="train reward",
    )
    run.track(model=model, optimizer=opt, order=order, rng=rng)
    prep_seconds = time.perf_counter() - t0
    model.train()
    for step in run:
        set_lr(opt, warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.steps))
        index = order.batch(step).numpy()
        target = data.train.target[index]
        cands = np.c_[target, draw_negatives(data.pool, target, cfg.negatives, rng)]
        loss = model.loss(*data.batch(data.train, index, cands, device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.log(loss)
    model.cpu().eval()
    with run.output() as tmp:
        model.save_pretrained(tmp)
        saved = PreferenceReward.from_pretrained(tmp)
        return run.write_report(
            tmp,
            what="tailorgen preference reward (Generate, Not Recommend)",
            curve_every=max(1, cfg.steps // 50),
            parameters=sum(p.numel() for p in model.parameters()),
            prep_seconds=round(prep_seconds, 1),
            train_examples=len(data.train),
            train_users=len(set(data.train.users)),
            held_out_users=len(data.held_out),
            final_loss=float(np.mean(run.history["loss"][-50:])),
            held_out=evaluate_reward(saved, data, cfg.eval_negatives),
        )
