"""Train the personalized generator (UNet + conditioner with its interest attention) on a shop.

``train_generator`` reads like the recipe: build the training shop and set (``dataset``), start
the modules (``models``: fresh, or a saved generator's with ``init_from``), run each phase of
``GeneratorTrainConfig.phases()`` (``loop``; the accent parts join at the fine-tune), then save
the pipeline with its training report. What examples the generator learns from is in
``examples``. A killed training, started again with the same config and OUT, goes on from its
last checkpoint (``OUT/checkpoints/PHASE/checkpoints``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from diffusers import DDIMScheduler

from tailorgen.common.atomic import atomic_dir, check_output_dir
from tailorgen.generation.context import IAMGSettings
from tailorgen.generation.pipeline import PersonalizedImagePipeline
from tailorgen.generation.train.config import GeneratorTrainConfig
from tailorgen.generation.train.dataset import build_training_set, prepare_training_set
from tailorgen.generation.train.examples import IMAGE_SIZE, history_look
from tailorgen.generation.train.loop import fit_phase, noise_scheduler, phase_run
from tailorgen.generation.train.models import (
    build_models,
    check_init_from,
    grow_to_spec,
    load_models,
    parent_record,
)
from tailorgen.training import CHECKPOINT_EVERY, resolve_device, write_report
from tailorgen.training.run import is_training_output

__all__ = [
    "IMAGE_SIZE",
    "GeneratorTrainConfig",
    "build_training_set",
    "fit_generator",
    "history_look",
    "prepare_training_set",
    "train_generator",
]


def train_generator(
    cfg: GeneratorTrainConfig,
    out: str | Path,
    work_dir: str | Path,
    progress: bool = True,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    stop_after: int | None = None,
) -> dict:
    """Build the generator's shop and training set, then train it (``fit_generator``) and save it to ``out``."""
    if cfg.backend == "sd15":  # a frozen pretrained UNet: another loop, the same set and toolkit
        from tailorgen.generation.train.sd15 import train_sd15

        return train_sd15(cfg, out, work_dir, progress, device, checkpoint_every, stop_after)
    t0 = time.perf_counter()
    device = resolve_device(device)
    check_output_dir(out, overwrite=True, replaceable=is_training_output, what="generator")  # before hours of work
    if cfg.init_from:
        check_init_from(cfg)
    data, ctx, rng, hashes = prepare_training_set(cfg, work_dir, progress, device)
    prep = time.perf_counter() - t0
    return fit_generator(
        cfg, data, ctx.settings, out, rng, prep, progress, device, hashes, checkpoint_every, stop_after
    )


def fit_generator(
    cfg: GeneratorTrainConfig,
    data: dict,
    settings: IAMGSettings,
    out: str | Path,
    rng,
    prep_seconds: float = 0.0,
    progress: bool = True,
    device: str = "cpu",
    data_hashes: dict | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    stop_after: int | None = None,
) -> dict:
    """Train on a prepared set (``build_training_set``), phase by phase, and save the pipeline to ``out``."""
    out = Path(out)
    phases = cfg.phases()
    if cfg.init_from:
        unet, conditioner = load_models(cfg.init_from, cfg)
    else:
        first = cfg.phase_spec(phases[0][0])
        unet, conditioner = build_models(cfg, first, data["text_tokens"].shape[-1], data["text_neighbours"].shape[1])
    runs = []
    for phase in phases:
        spec = cfg.phase_spec(phase[0])
        unet, conditioner = grow_to_spec(unet, conditioner, spec)
        run = phase_run(out, cfg, phase, device, data_hashes, checkpoint_every, stop_after, progress)
        unet, conditioner = fit_phase(run, cfg, phase, data, unet, conditioner, spec, rng, device)
        runs.append(run)
    pipe = PersonalizedImagePipeline(
        unet=unet,
        conditioner=conditioner,
        # "trailing" starts sampling at t=999, the step the model learned to read pure noise at.
        # The default "leading" starts at t=960, where this schedule still leaves the target's mean
        # colour readable in the noise, so the noise rather than the conditions picks it
        # (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed").
        scheduler=DDIMScheduler.from_config(noise_scheduler(cfg).config, timestep_spacing="trailing"),
    )
    # OUT is replaced only when the pipeline and its report are complete; the checkpoints go with the old one.
    with atomic_dir(out, overwrite=True, replaceable=is_training_output, what="generator") as tmp:
        pipe.save_pretrained(str(tmp))
        report = _write_report(tmp, cfg, settings, data, runs, pipe, prep_seconds, device, data_hashes)
    return report


def _write_report(folder, cfg, settings, data, runs, pipe, prep_seconds, device, data_hashes) -> dict:
    return write_report(
        folder,
        what="tailorgen personalized generator (I-AM-G): pixel UNet + conditioner with interest attention",
        config=cfg,
        seed=cfg.seed,
        device=device,
        data={"train": data_hashes or {}},
        steps=sum(r.steps for r in runs),
        resumed_from=next((r.resumed_from for r in runs if r.resumed_from is not None), None),
        train_seconds=sum(r.seconds for r in runs),
        loss_curve=[v for r in runs for v in r.curve(100)],
        # What the generator reads and the settings its conditions were built with; IAMGGenerator
        # generates with the same (``trained_settings``, ``condition_spec``).
        condition_spec=pipe.condition_spec.to_dict(),
        iamg_settings=dataclasses.asdict(settings),
        init_from=parent_record(cfg.init_from) if cfg.init_from else None,
        phases={r.desc: {"steps": r.steps, "seconds": round(r.seconds, 1), "loss_curve": r.curve(100)} for r in runs},
        examples=len(data["keep_interest"]),
        renders=len(data["target"]) // len(data["keep_interest"]),
        personalize_examples=data["n_personalize"],
        counterfactual_targets=data["counterfactual_targets"],
        prep_seconds=round(prep_seconds, 1),
        parameters={
            "unet": sum(p.numel() for p in pipe.unet.parameters()),
            "conditioner": sum(p.numel() for p in pipe.conditioner.parameters()),
        },
    )
