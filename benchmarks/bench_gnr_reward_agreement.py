"""Does the preference reward see, among a model's own drawn next items, what the shop's oracle values?

GRPO learns only from the spread of rewards within a group of images drawn for one user. This measures
that spread's use: for each test user, ``--group`` images drawn by a GNR model (its SFT or RL stage),
each scored by the learned reward (the training signal) and by the oracle's utility, at the time of the
user's held-out interaction, of what the judge reads on it (instruments, read here and nowhere in training):
- within-group Spearman correlation of reward and utility, averaged over users (0: RL has nothing to follow);
- the utility of the reward's top pick against the group's mean (best-of-N selection by the reward);
- the same two on ``--catalog`` random catalog items per user (real images: the reward's home ground).

    python benchmarks/bench_gnr_reward_agreement.py --dataset runs/demo/shop --models DIR/models/shop \
        --users 100 --group 8 --out docs/gnr_reward_agreement.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from tailorgen.data import Dataset
from tailorgen.evaluation.bench_gnr import Instruments, test_users
from tailorgen.evaluation.stats import paired_test
from tailorgen.unified.gnr import GNR
from tailorgen.unified.reward import PreferenceReward


def agreement(rewards: list[np.ndarray], utilities: list[np.ndarray]) -> dict:
    """Per-user Spearman, and the reward's top pick against the group mean (the expected random pick)."""
    rho = [spearmanr(r, u).statistic for r, u in zip(rewards, utilities, strict=True) if np.ptp(u) > 0]
    top = np.array([u[int(np.argmax(r))] for r, u in zip(rewards, utilities, strict=True)])
    mean = np.array([u.mean() for u in utilities])
    spread = np.array([u.std() for u in utilities])
    test = paired_test(top, mean)
    rho = np.asarray(rho)
    half = 1.96 * rho.std(ddof=1) / np.sqrt(len(rho))
    return {
        "spearman_mean": round(float(rho.mean()), 4),
        "spearman_ci95": [round(float(rho.mean() - half), 4), round(float(rho.mean() + half), 4)],
        "users_with_spread": len(rho),
        "utility_group_mean": round(float(mean.mean()), 4),
        "utility_within_group_std": round(float(spread.mean()), 4),
        "utility_reward_top1": round(float(top.mean()), 4),
        "top1_minus_mean": test,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--models", required=True, help="The benchmark's models folder (gnr/, reward/).")
    p.add_argument("--stage", default="sft", choices=["sft", "rl"])
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--catalog", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    ds = Dataset(a.dataset)
    users, histories = test_users(ds, a.users)
    tools = Instruments(ds)
    gnr = GNR(ds, Path(a.models) / "gnr" / a.stage, histories=histories)
    reward = PreferenceReward.from_pretrained(Path(a.models) / "reward")
    feats = gnr.decoder.images
    drawn = gnr.generate(users.ids, a.group, a.seed)
    rng = np.random.default_rng(a.seed)
    out = {"drawn": ([], []), "catalog": ([], [])}
    for u, t, past, g in zip(users.ids, users.times, users.past, drawn, strict=True):
        history = [feats(past).numpy()]
        emb = tools.encoder.encode(g["images"])
        reads, _ = tools.read(g["images"])
        out["drawn"][0].append(reward.score(history, emb[None])[0].numpy())
        out["drawn"][1].append(tools.oracle.utilities(u, reads, t))
        pool = [i for i in tools.item_ids if i not in set(past)]
        picks = list(rng.choice(pool, a.catalog, replace=False))
        cat = tools.catalog[[tools.row[i] for i in picks]]
        rows = [tools.oracle.item_attributes(i, visual_only=True) for i in picks]
        out["catalog"][0].append(reward.score(history, cat[None])[0].numpy())
        out["catalog"][1].append(tools.oracle.utilities(u, rows, t))
    record = {
        "command": "python benchmarks/bench_gnr_reward_agreement.py "
        + " ".join(f"--{k} {v}" for k, v in vars(a).items()),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "seconds": round(time.perf_counter() - t0, 1),
        "drawn": agreement(*out["drawn"]),
        "catalog": agreement(*out["catalog"]),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
