"""Generate, Not Recommend: the unified model writes the user's next item (its image as VQ codes, then
its name), trained by supervised fine-tuning on the real next items, then by online RL against the
learned preference reward (``unified.reward``). ``tailorgen train gnr DATASET --from UNIMP --reward R``.

1. **SFT** (``OUT/sft``), from a trained UniMP model: the task ``next_item`` (``unified.serialize``):
   the history before each training interaction -> that item's codes and catalog text; the history is
   dropped in ``drop_history`` of the draws, which gives guidance its unconditional prompt.
2. **RL** (``OUT/rl``), GRPO-style, on the users the reward trained on. Per step, for each of
   ``users_per_step`` users, a group of ``group_size`` images is sampled with guidance exactly as at
   inference (``unified.sample.sample_codes``, truncation off so that log-probabilities are exact);
   the reward scores each image, read through the image encoder as a saved PNG would be; advantages
   are the rewards standardized within the group (GRPO, Shao et al. 2024, DeepSeekMath); the loss
   is the clipped ratio objective (PPO, Schulman et al. 2017) on every code, plus ``kl_coef`` times
   the k3 estimate of KL(policy || SFT model) per code (as GRPO). One update per batch, so the ratio
   starts at 1 and the clip guards the rest. Log-probabilities come from ``guided_log_probs``: the
   same guidance mix and temperature as the rollouts.
3. **Against reward hacking**: every ``eval_every`` steps the policy draws ``eval_images`` images per
   user the reward never trained on, and the mean reward there is the held-out signal: the best policy by it
   is kept, and RL stops after ``patience`` evaluations without a gain. ``monitor`` (given by the
   benchmark) may log the judge's and the oracle's reading of those same images into the curves; the
   trainer never reads what it returns (the judge and the oracle are instruments, never a signal).

TRL's GRPOTrainer expects a causal LM that writes text through its tokenizer; this model writes
image codes under guidance, so the loop is here, one screen per phase.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tailorgen.common import read_json
from tailorgen.data import Dataset
from tailorgen.encoders import default_encoder
from tailorgen.training import (
    CHECKPOINT_EVERY,
    TrainingRun,
    data_hashes,
    require,
    set_lr,
    setting,
    setup,
    trained_with,
    warmup_cosine,
)
from tailorgen.unified.batch import ImageFeatures, collate
from tailorgen.unified.content import item_content
from tailorgen.unified.decode import Decoder
from tailorgen.unified.model import UnifiedModel
from tailorgen.unified.reward import PreferenceReward, embed_pixels, is_held_out
from tailorgen.unified.sample import MIN_TEMPERATURE, Prompt, SamplingSettings, guided_log_probs, sample_codes
from tailorgen.unified.serialize import Event, Example, Serializer
from tailorgen.unified.tasks import build_task_split
from tailorgen.unified.tokenizer import PieceEncoder
from tailorgen.unified.train import image_codes

# (step, held-out users, their images) -> named values to log; for the benchmark's instruments.
Monitor = Callable[[int, list[str], list], dict[str, float]]


@dataclass
class GNRTrainConfig:
    unimp: str = setting("", "The trained UniMP model folder to start from (tailorgen train unimp).")
    reward: str = setting("", "The preference reward folder (tailorgen train reward), trained on this dataset.")
    sft_steps: int = setting(600, "SFT optimizer steps on next-item generation.")
    batch_size: int = setting(16, "SFT sequences per step.")
    sft_lr: float = setting(3e-4, "SFT peak learning rate (warm-up, then cosine).")
    drop_history: float = setting(0.1, "SFT: share of draws whose history is dropped (guidance's unconditional).")
    rl_steps: int = setting(100, "RL steps at most (stops earlier on the held-out signal).")
    users_per_step: int = setting(8, "RL: users (prompts) per step.")
    group_size: int = setting(8, "RL: images sampled per user; advantages are standardized within the group.")
    rl_lr: float = setting(2e-5, "RL learning rate (constant).")
    clip: float = setting(0.2, "RL: the ratio's clip range (1 - clip, 1 + clip).")
    kl_coef: float = setting(0.04, "RL: weight of the KL penalty against the SFT model.")
    guidance: float = setting(3.0, "Classifier-free guidance of the rollouts and of generation.")
    temperature: float = setting(1.0, "Sampling temperature of the rollouts and of generation.")
    eval_every: int = setting(10, "RL: steps between held-out evaluations.")
    eval_users: int = setting(64, "RL: users the reward never saw, watched at each evaluation.")
    eval_images: int = setting(4, "RL: images per watched user at each evaluation (more: a steadier signal).")
    patience: int = setting(3, "RL: evaluations without a held-out gain before it stops.")
    seed: int = setting(0, "Seed of the batch order, the rollouts and the evaluations.")
    threads: int = setting(2, "CPU threads.")

    def __post_init__(self):
        require(bool(self.unimp), "unimp", self.unimp, "a UniMP model folder (--from)")
        require(bool(self.reward), "reward", self.reward, "a preference reward folder (--reward)")
        require(self.group_size >= 2, "group_size", self.group_size, "an integer >= 2 (advantages need a group)")
        require(self.eval_images >= 1, "eval_images", self.eval_images, "an integer >= 1")
        require(self.sft_steps >= 0 and self.rl_steps >= 0, "sft_steps", (self.sft_steps, self.rl_steps), ">= 0")
        require(self.rl_lr > 0, "rl_lr", self.rl_lr, "a learning rate > 0")
        require(0 <= self.drop_history < 1, "drop_history", self.drop_history, "a share in [0, 1)")
        require(self.guidance >= 0 and self.temperature >= MIN_TEMPERATURE, "guidance",
                (self.guidance, self.temperature), f"guidance >= 0 and temperature >= {MIN_TEMPERATURE}")  # fmt: skip

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(guidance=self.guidance, temperature=self.temperature, top_k=0, top_p=1.0)


# Settings only RL reads: changing them trains RL again on the same SFT model. (Guidance and
# temperature are not among them: the SFT model's own samples use them too.)
RL_SETTINGS = ("rl_steps", "users_per_step", "group_size", "rl_lr", "clip", "kl_coef", "eval_every", "eval_users",
               "eval_images", "patience")  # fmt: skip


def sft_done(folder: Path, cfg: GNRTrainConfig, dataset_dir: str | Path) -> bool:
    """Whether ``folder`` holds the SFT model of ``cfg`` on this data, whatever its RL settings."""
    report = folder / "training_report.json"
    if not report.is_file():
        return False
    stored = read_json(report).get("config", {})
    defaults = GNRTrainConfig.__dataclass_fields__  # a setting added since the report: its default was used
    as_stored = dataclasses.replace(cfg, **{k: stored.get(k, defaults[k].default) for k in RL_SETTINGS})
    return trained_with(folder, as_stored, dataset_dir)


@dataclass
class GNRData:
    dataset: Dataset
    serializer: Serializer
    encoder: PieceEncoder
    images: ImageFeatures
    sft: list[Example]  # next_item examples of every training interaction
    rl_users: list[str]  # users the reward trained on
    held_out_users: list[str]  # users it never saw
    histories: dict[str, tuple[Event, ...]]  # each user's training history


def prepare_gnr(cfg: GNRTrainConfig, dataset_dir: str | Path, model: UnifiedModel, progress: bool) -> GNRData:
    require(model.vq is not None, "unimp", cfg.unimp, "a UniMP model that draws (trained with image_generation)")
    dataset = Dataset.load(dataset_dir)
    split = build_task_split(dataset, ("image_generation",), "last")
    content = item_content(dataset, with_images=model.config.with_images, progress=progress)
    codes = image_codes(model.vq, dataset, progress)
    serializer = Serializer(content.texts, model.ids, model.config.max_history, content.has_images
                            and model.config.with_images, image_codes=codes)  # fmt: skip
    sft = [dataclasses.replace(ex, task="next_item") for ex in split.train["image_generation"]
           if ex.user and ex.target in codes]  # fmt: skip
    share, seed = reward_split(cfg.reward)
    users = sorted(u for u, h in split.train_histories.items() if h)
    images = ImageFeatures(content.item_ids, content.image_vectors, dim=content.image_dim)
    return GNRData(
        dataset, serializer, PieceEncoder(model.tokenizer), images, sft,
        [u for u in users if not is_held_out(u, share, seed)], [u for u in users if is_held_out(u, share, seed)],
        {u: tuple(h) for u, h in split.train_histories.items()},
    )  # fmt: skip


def reward_split(reward_dir: str) -> tuple[float, int]:
    """The share and seed of the users the reward was never trained on (its training report)."""
    config = read_json(Path(reward_dir) / "training_report.json")["config"]
    return float(config["held_out_users"]), int(config["user_split_seed"])


def train_sft(cfg: GNRTrainConfig, data: GNRData, model: UnifiedModel, out: Path, progress: bool, device: str,
              checkpoint_every: int) -> dict:  # fmt: skip
    """Next-item SFT: the model's own answer-only focal loss on ``next_item`` examples."""
    model.to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.sft_lr, weight_decay=0.01)
    rng = np.random.default_rng(cfg.seed)
    hashes = {"dataset": {"hashes": data_hashes(data.dataset.root)}}
    run = TrainingRun(out, cfg, cfg.sft_steps, seed=cfg.seed, device=device, checkpoint_every=checkpoint_every,
                      progress=progress, desc="gnr sft", data=hashes)  # fmt: skip
    run.track(model=model, optimizer=opt, rng=rng)
    pad = model.tokenizer.pad_token_id
    for step in run:
        set_lr(opt, warmup_cosine(step, cfg.sft_lr, max(1, min(50, cfg.sft_steps // 10)), cfg.sft_steps))
        picked = [data.sft[i] for i in rng.integers(0, len(data.sft), cfg.batch_size)]
        picked = [dataclasses.replace(ex, history=()) if rng.random() < cfg.drop_history else ex for ex in picked]
        encoded = [data.encoder.encode(data.serializer.pieces(ex), model.config.max_length) for ex in picked]
        batch = collate(encoded, pad, data.images, [1.0] * len(picked)).to(device)
        loss = model(batch.input_ids, batch.attention_mask, batch.image_features, batch.weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run.log(loss)
    model.cpu().eval()
    with run.output() as tmp:
        model.save_pretrained(tmp)
        return run.write_report(tmp, what="tailorgen GNR: next-item SFT", examples=len(data.sft))


class HeldOutSignal:
    """Early stopping on the reward of users the reward never saw: the best policy's weights, when it
    was reached, how many evaluations since, and every evaluation (a checkpoint holds it all)."""

    def __init__(self, patience: int):
        self.patience, self.best, self.best_step, self.stale = patience, -float("inf"), 0, 0
        self.weights: dict[str, torch.Tensor] = {}
        self.evaluations: list[dict] = []

    def update(self, step: int, held_out_reward: float, model: torch.nn.Module) -> bool:
        """Record a held-out reward; True when RL should stop."""
        if held_out_reward > self.best:
            self.best, self.best_step, self.stale = held_out_reward, step, 0
            self.weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1
        return self.stale >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "stale": self.stale, "weights": self.weights,
                "evaluations": self.evaluations}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_step, self.stale = state["best"], state["best_step"], state["stale"]
        self.weights, self.evaluations = state["weights"], state["evaluations"]


class Rollouts:
    """Prompts, images and rewards of next-item generation for a set of users."""

    def __init__(self, data: GNRData, model: UnifiedModel, reward: PreferenceReward, settings: SamplingSettings):
        self.data, self.model, self.reward, self.settings = data, model, reward, settings
        self.decoder = Decoder(model, data.serializer, data.images)
        self.image_encoder = default_encoder("image")

    def examples(self, users, blank: bool = False) -> list[Example]:
        return [Example(u, "next_item", () if blank else self.data.histories[u], "") for u in users]

    def prompts(self, users) -> tuple[Prompt, Prompt]:
        return self.decoder.prompt(self.examples(users)), self.decoder.prompt(self.examples(users, blank=True))

    def sample(self, users, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            cond, uncond = self.prompts(users)
        m = self.model
        return sample_codes(m.lm, cond, uncond, m.image_code_ids, m.config.image_tokens, self.settings, generator)

    def images(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder.pixels(codes)

    def rewards(self, users, pixels: torch.Tensor) -> torch.Tensor:
        histories = [self.data.histories[u] for u in users]
        return drawn_rewards(self.reward, self.image_encoder, self.data.images, histories, pixels)


def drawn_rewards(reward: PreferenceReward, encoder, images: ImageFeatures, histories: list, pixels: torch.Tensor):
    """The reward of each drawn image (B, 3, H, W) for the history (events) beside it, the image read as a
    saved PNG would be (``embed_pixels``): what RL optimizes and best-of-N selects by."""
    vectors = [images([e.item for e in h]).numpy() for h in histories]
    return reward.score(vectors, embed_pixels(encoder, pixels))


def grpo_loss(policy_lp, old_lp, ref_lp, rewards, group_size: int, clip: float, kl_coef: float):
    """GRPO's objective for (B*G, T) per-code log-probabilities: group-standardized advantages, the clipped
    ratio, and the k3 estimate of KL(policy || reference) per code. Returns (loss, mean KL)."""
    r = rewards.reshape(-1, group_size)
    advantages = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).reshape(-1, 1)
    ratio = (policy_lp - old_lp).exp()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    log_ref_ratio = ref_lp - policy_lp
    kl = log_ref_ratio.exp() - log_ref_ratio - 1
    return (-surrogate + kl_coef * kl).mean(), kl.mean()


def train_rl(cfg: GNRTrainConfig, data: GNRData, policy: UnifiedModel, out: Path, progress: bool, device: str,
             checkpoint_every: int, monitor: Monitor | None = None) -> dict:  # fmt: skip
    """GRPO against the preference reward on the users it trained on; early stopping on the others."""
    reference = copy.deepcopy(policy).to(device).eval().requires_grad_(False)
    policy.to(device).train()
    settings, G = cfg.sampling, cfg.group_size
    rollouts = Rollouts(data, policy, PreferenceReward.from_pretrained(cfg.reward), settings)
    ref_rollouts = Rollouts(data, reference, rollouts.reward, settings)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.rl_lr, weight_decay=0.0)
    rng, gen, signal = (
        np.random.default_rng(cfg.seed),
        torch.Generator().manual_seed(cfg.seed),
        HeldOutSignal(cfg.patience),
    )
    hashes = {"dataset": {"hashes": data_hashes(data.dataset.root)}}
    run = TrainingRun(out, cfg, cfg.rl_steps, seed=cfg.seed, device=device, checkpoint_every=checkpoint_every,
                      progress=progress, desc="gnr rl", log_every=1, data=hashes)  # fmt: skip
    run.track(model=policy, optimizer=opt, rng=rng, generator=gen, signal=signal)
    code_ids, eval_users = policy.image_code_ids, data.held_out_users[: cfg.eval_users]
    watched = [u for u in eval_users for _ in range(cfg.eval_images)]
    for step in run:
        users = [u for u in rng.choice(data.rl_users, cfg.users_per_step, replace=False) for _ in range(G)]
        codes, old_lp = rollouts.sample(users, gen)
        rewards = rollouts.rewards(users, rollouts.images(codes))
        policy_lp = guided_log_probs(policy.lm, *rollouts.prompts(users), code_ids, codes, settings)
        with torch.no_grad():
            ref_lp = guided_log_probs(reference.lm, *ref_rollouts.prompts(users), code_ids, codes, settings)
        loss, kl = grpo_loss(policy_lp, old_lp, ref_lp, rewards, G, cfg.clip, cfg.kl_coef)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        run.log(loss, reward=rewards.mean(), kl=kl)
        due = (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.rl_steps
        if due and evaluate(step + 1, rollouts, watched, cfg.seed, signal, monitor):
            run.stop()
    if signal.weights:  # the best policy by the held-out signal
        policy.load_state_dict(signal.weights)
    policy.cpu().eval()
    with run.output() as tmp:
        policy.save_pretrained(tmp)
        return run.write_report(
            tmp, what="tailorgen GNR: GRPO against the preference reward", curve_every=1,
            reward_curve=run.curve(1, "reward"), kl_curve=run.curve(1, "kl"), evaluations=signal.evaluations,
            best_step=signal.best_step, stopped_at=run.step, rl_users=len(data.rl_users),
            held_out_users=len(eval_users), held_out_images=len(watched),
        )  # fmt: skip


@torch.no_grad()
def evaluate(step: int, rollouts: Rollouts, users: list[str], seed: int, signal: HeldOutSignal,
             monitor: Monitor | None) -> bool:  # fmt: skip
    """An image for each of ``users`` (held-out users, repeated for more images each; the same seed
    every time); True when RL should stop."""
    codes, _ = rollouts.sample(users, torch.Generator().manual_seed(seed + 10_000))
    pixels = rollouts.images(codes)
    held_out = float(rollouts.rewards(users, pixels).mean())
    entry = {"step": step, "held_out_reward": round(held_out, 4)}
    if monitor is not None:  # the benchmark's instruments, logged and never read here
        entry |= monitor(step, users, rollouts.model.vq.to_pil(pixels))
    signal.evaluations.append(entry)
    return signal.update(step, held_out, rollouts.model)


def train_gnr(
    cfg: GNRTrainConfig,
    dataset_dir: str | Path,
    out: str | Path,
    progress: bool = True,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    monitor: Monitor | None = None,
) -> dict:
    """SFT into OUT/sft (skipped when it is there, trained with this config), then RL into OUT/rl."""
    t0 = time.perf_counter()
    device = setup(cfg.seed, cfg.threads, device)
    out = Path(out)
    model = UnifiedModel.from_pretrained(cfg.unimp)
    data = prepare_gnr(cfg, dataset_dir, model, progress)
    if not sft_done(out / "sft", cfg, dataset_dir):
        train_sft(cfg, data, model, out / "sft", progress, device, checkpoint_every)
    policy = UnifiedModel.from_pretrained(out / "sft")
    report = train_rl(cfg, data, policy, out / "rl", progress, device, checkpoint_every, monitor)
    return report | {"seconds_total": round(time.perf_counter() - t0, 1)}


class GNR:
    """A trained GNR model over its dataset: ``generate(user, n)`` draws and names the user's next item."""

    def __init__(self, dataset: Dataset, model_dir: str | Path, device: str = "cpu", histories: dict | None = None):
        """``histories``: per user, the events to generate from (default: everything the dataset holds)."""
        folder = Path(model_dir)
        folder = folder / "rl" if (folder / "rl").is_dir() else folder / "sft" if (folder / "sft").is_dir() else folder
        self.model = UnifiedModel.from_pretrained(folder, device=device)
        self.folder = folder
        self.config = GNRTrainConfig(**read_json(folder / "training_report.json")["config"])
        self.settings = self.config.sampling
        content = item_content(dataset, with_images=self.model.config.with_images, progress=False)
        serializer = Serializer(content.texts, self.model.ids, self.model.config.max_history,
                                content.has_images and self.model.config.with_images)  # fmt: skip
        images = ImageFeatures(content.item_ids, content.image_vectors, dim=content.image_dim)
        self.decoder = Decoder(self.model, serializer, images)
        if histories is None:
            histories = build_task_split(dataset, ("image_generation",), "none").train_histories
        self.histories = {u: tuple(h) for u, h in histories.items()}
        self._reward: tuple[PreferenceReward, object] | None = None

    def generate(self, users: list[str], n: int = 4, seed: int = 0, best_of: int | None = None) -> list[dict]:
        """Per user, ``n`` drawn next items: {"images", "titles", "codes"}.

        ``best_of`` (>= n): draw that many and keep the ``n`` the preference reward the model was
        trained against rates highest for the user (best-of-N selection, as rejection sampling in
        RLHF), best first."""
        k = best_of or n
        require(k >= n, "best_of", best_of, f"at least n ({n})")
        examples = [Example(u, "next_item", self.histories[u], "") for u in users]
        codes, _ = self.decoder.imagine(examples, k, self.settings, seed)
        out = []
        for ex, c in zip(examples, codes, strict=True):
            pixels = self.decoder.pixels(c)
            if k > n:
                keep = torch.from_numpy(np.argsort(-self.reward_scores(ex.user, pixels), kind="stable")[:n].copy())
                c, pixels = c[keep], pixels[keep]
            titles = self.decoder.name_drawn([ex] * n, c)
            out.append({"images": self.model.vq.to_pil(pixels), "titles": titles, "codes": c})
        return out

    def reward_scores(self, user: str, pixels: torch.Tensor) -> np.ndarray:
        """The preference reward of each drawn image (n, 3, H, W) for ``user``, read as saved PNGs are."""
        if self._reward is None:
            self._reward = PreferenceReward.from_pretrained(self.config.reward), default_encoder("image")
        reward, encoder = self._reward
        return drawn_rewards(reward, encoder, self.decoder.images, [self.histories[user]] * len(pixels), pixels).numpy()
