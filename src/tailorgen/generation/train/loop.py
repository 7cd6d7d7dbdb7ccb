"""One training phase of the generator: the loop, read top to bottom (nanoGPT-style).

Which parts train: the UNet and the conditioner (projections, interest attention, history CNN,
accent token) together; the text encoder (MiniLM) and the image encoder are frozen, their outputs
precomputed in the training set. The loop draws batches and dropped segments from ``rng`` and
noise and timesteps from torch's generator; ``TrainingRun`` checkpoints both, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

from tailorgen.generation.spec import ConditionSpec
from tailorgen.generation.train.config import GeneratorTrainConfig
from tailorgen.generation.train.dataset import CONDITION_KEYS
from tailorgen.interests.accent import accent_pixels
from tailorgen.training import TrainingRun
from tailorgen.training.schedule import set_lr, warmup_cosine


def noise_scheduler(cfg: GeneratorTrainConfig) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=cfg.prediction_type
    )


def phase_run(out, cfg, phase, device, data_hashes, checkpoint_every, stop_after, progress, label="") -> TrainingRun:
    """The ``TrainingRun`` of one phase: its checkpoints in ``OUT/checkpoints/PHASE``, so phases resume apart."""
    return TrainingRun(
        Path(out) / "checkpoints" / phase[0],
        cfg,
        phase[1],
        seed=cfg.seed,
        device=device,
        data={"train": data_hashes or {}},
        checkpoint_every=checkpoint_every,
        stop_after=stop_after,
        progress=progress,
        desc=f"train generator{label} ({phase[0]})",
    )


def fit_phase(run: TrainingRun, cfg, phase: tuple[str, int, float, int], data, unet, conditioner, spec, rng, device):
    """Train ``unet`` and ``conditioner`` for one phase (``cfg.phases()``); leaves their EMA weights in them."""
    name, steps, peak_lr, warmup = phase
    unet, conditioner = unet.to(device).train(), conditioner.to(device).train()
    params = [*unet.parameters(), *conditioner.parameters()]
    opt = torch.optim.AdamW(params, lr=peak_lr, weight_decay=1e-4)
    emas = [
        EMAModel(m.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=2 / 3) for m in (unet, conditioner)
    ]
    run.track(unet=unet, conditioner=conditioner, optimizer=opt, ema_unet=emas[0], ema_conditioner=emas[1], rng=rng)
    scheduler = noise_scheduler(cfg)
    stored = TrainingSet(data, spec, device)
    pixel_weight = cfg.accent_pixel_weight if name == "finetune" else 0.0
    for step in run:
        set_lr(opt, warmup_cosine(step, peak_lr, max(warmup, 1), steps))
        batch, x0, source, drop = stored.sample(rng, cfg)
        loss = denoising_loss(unet, conditioner, scheduler, spec, batch, x0, source, drop, pixel_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        for ema, module in zip(emas, (unet, conditioner)):
            ema.step(module.parameters())
        run.log(loss)
    if run.checkpoint_every:  # the finished phase: a later phase's resume starts from it
        run.save_checkpoint()
    for ema, module in zip(emas, (unet, conditioner)):
        ema.copy_to(module.parameters())
    return unet.cpu().eval(), conditioner.cpu().eval()


class TrainingSet:
    """The training set on the training device (about 2 GB at the defaults: text token states 1.2 GB), by index."""

    def __init__(self, data: dict, spec: ConditionSpec, device):
        self.keys = CONDITION_KEYS + (("history_pixels", "history_mask") if spec.history_images else ())
        self.keys += ("history_accent",) if spec.reads_history_accent else ()
        missing = [k for k in self.keys if k not in data]
        if missing:
            raise ValueError(f"the training set lacks {missing}, which a generator reading {spec} needs")
        keys = (*self.keys, "source", "target", "keep_interest", "rewritten")
        self.tensors = {k: torch.from_numpy(data[k]).to(device) for k in keys}
        self.examples, self.rows = len(data["keep_interest"]), len(data["target"])  # rows: renders x examples
        self.device = device

    def sample(self, rng, cfg: GeneratorTrainConfig):
        """A batch of conditions, target and source pixels in [-1, 1], and which segments each example drops."""
        row, batch, drop = self.draw(rng, cfg)
        x0, source = (self.tensors[k][row].float() / 127.5 - 1 for k in ("target", "source"))
        return batch, x0, source, drop

    def draw(self, rng, cfg: GeneratorTrainConfig):
        """(image rows, their examples' conditions, dropped segments) of one batch, drawn from ``rng``."""
        row = torch.from_numpy(rng.integers(0, self.rows, cfg.batch_size)).to(self.device)
        idx = row % self.examples
        t = self.tensors
        batch = {k: t[k][idx] for k in self.keys}
        batch = {k: v.float() if v.dtype == torch.float16 else v for k, v in batch.items()}
        if "history_pixels" in batch:
            batch["history_pixels"] = batch["history_pixels"].float() / 127.5 - 1
        drop = torch.zeros(cfg.batch_size, 3, dtype=torch.bool, device=self.device)
        no_interest = torch.from_numpy(rng.random(cfg.batch_size) < cfg.p_drop_interest).to(self.device)
        # Interest tokens go only where the rewrite still carries the user (the rewrite-only ablation).
        drop[:, 2] = ~t["keep_interest"][idx] | (no_interest & t["rewritten"][idx])
        drop[torch.from_numpy(rng.random(cfg.batch_size) < cfg.p_drop_all).to(self.device)] = True
        return row, batch, drop


def denoising_loss(unet, conditioner, scheduler, spec, batch, x0, source, drop, accent_pixel_weight=0.0):
    """The diffusion loss of one batch (v-prediction MSE by default), the accent's pixels weighted more if asked."""
    accent = batch.pop("history_accent", None)
    tokens, mask = conditioner(**batch, drop=drop, history_accent=accent if spec.accent_token else None)
    # The UNet's accent goes with the interest segment: zeros where that is dropped.
    class_labels = accent * ~drop[:, 2:3] if spec.accent_film else None
    noise = torch.randn_like(x0)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
    noisy = torch.cat([scheduler.add_noise(x0, noise, t), source], dim=1)
    pred = unet(noisy, t, encoder_hidden_states=tokens, encoder_attention_mask=mask, class_labels=class_labels).sample
    target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
    if not accent_pixel_weight:
        return F.mse_loss(pred, target)
    # The accent covers at most ~40% of the fabric: a small part of a flat loss.
    weight = 1 + accent_pixel_weight * accent_pixels(x0).float()[:, None]
    return (weight * (pred - target) ** 2).mean() / weight.mean()
