"""The modules a training phase starts from: built fresh, loaded from a saved generator, or grown by the accent."""

from __future__ import annotations

from pathlib import Path

from tailorgen.common import component_hashes
from tailorgen.generation.conditioning import PersonalizationConditioner
from tailorgen.generation.pipeline import PersonalizedImagePipeline
from tailorgen.generation.spec import ConditionSpec
from tailorgen.generation.train.config import GeneratorTrainConfig
from tailorgen.generation.train.examples import IMAGE_SIZE
from tailorgen.generation.unet import add_accent_embedding, build_unet, grow
from tailorgen.interests.accent import HISTORY_ACCENT_DIM


def build_models(cfg: GeneratorTrainConfig, spec: ConditionSpec, embed_dim: int, neighbours: int):
    """A fresh (unet, conditioner) that read what ``spec`` says."""
    unet = build_unet(
        IMAGE_SIZE,
        cfg.block_out_channels,
        cfg.cross_attention_dim,
        accent_dim=HISTORY_ACCENT_DIM if spec.accent_film else 0,
    )
    conditioner = PersonalizationConditioner(
        embed_dim=embed_dim,
        cross_attention_dim=cfg.cross_attention_dim,
        max_neighbours=max(8, neighbours),
        history_images=spec.history_images,
        accent_token=spec.accent_token,
    )
    return unet, conditioner


def load_models(path: str | Path, cfg: GeneratorTrainConfig):
    """(unet, conditioner) of a saved generator, whose shapes must be the config's: the report records the config."""
    if not (Path(path) / "model_index.json").is_file():
        raise FileNotFoundError(f"init_from: {path} is not a saved generator (no model_index.json)")
    pipe = PersonalizedImagePipeline.from_pretrained(str(path))
    shapes = {
        "block_out_channels": tuple(pipe.unet.config.block_out_channels),
        "cross_attention_dim": pipe.unet.config.cross_attention_dim,
    }
    asked = {"block_out_channels": tuple(cfg.block_out_channels), "cross_attention_dim": cfg.cross_attention_dim}
    if asked != shapes:
        raise ValueError(f"cannot fine-tune {path}: it has {shapes}, but the config asks for {asked}; give its shapes")
    return pipe.unet, pipe.conditioner


def check_init_from(cfg: GeneratorTrainConfig) -> None:
    """Refuse, before hours of set preparation, a saved generator the run's first phase cannot start from.

    A generator that already reads the accent (the shipped one) can only be fine-tuned: ``steps=0``.
    """
    unet, conditioner = load_models(cfg.init_from, cfg)
    grow_to_spec(unet, conditioner, cfg.phase_spec(cfg.phases()[0][0]))


def grow_to_spec(unet, conditioner, spec: ConditionSpec):
    """The modules, with the accent parts ``spec`` asks for added at zero output; nothing else may differ.

    Both new parts start silent (the token's projection is new but its segment is not read until
    trained; the class embedding's last layer is zero, as ControlNet starts its convolutions), so a
    fine-tune begins from the saved model's outputs.
    """
    have = ConditionSpec.of(unet, conditioner)
    dropped = (have.accent_token and not spec.accent_token) or (have.accent_film and not spec.accent_film)
    if have.history_images != spec.history_images or dropped:
        raise ValueError(f"cannot fine-tune a generator that reads {have} into one that reads {spec}")
    if spec.accent_token and not have.accent_token:
        conditioner = grow(conditioner, PersonalizationConditioner.from_config(conditioner.config, accent_token=True))
    if spec.accent_film and not have.accent_film:
        unet = add_accent_embedding(unet, HISTORY_ACCENT_DIM)
    return unet, conditioner


def parent_record(path: str | Path) -> dict:
    """A saved generator named by the content of its weights, not by its folder (which may change)."""
    return {"path": str(path)} | component_hashes(path, ("unet", "conditioner"))
