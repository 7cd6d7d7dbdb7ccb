"""The generator's training recipe: one dataclass, whose defaults are the shipped generator's recipe.

The shipped generator was trained in two phases, and the defaults run both:
1. from scratch: the UNet and the conditioner reading the item, the rewritten text, the retrieved
   neighbours and the user's last 8 history images (``steps`` of ``batch_size``);
2. fine-tune: the history accent joins (its interest token and the UNet's class embedding, both
   added at zero output) with the accent pixels weighted more in the loss (``finetune_steps``).
At batch 256 that is a GPU's work (about 13 minutes on an H100 or H200); ``configs/generator-cpu.toml``
is the one-hour recipe for 2 CPU cores (docs/benchmarks.md has what each gives).
"""

from __future__ import annotations

from dataclasses import dataclass

from tailorgen.generation.spec import ConditionSpec
from tailorgen.training import setting


@dataclass
class GeneratorTrainConfig:
    train_items: int = setting(4000, "Items of the generator's own training shop.")
    train_users: int = setting(1200, "Users of the training shop.")
    train_seed: int = setting(5001, "Seed of the training shop: no benchmark, encoder or judge uses it.")
    examples: int = setting(16000, "Training examples drawn from the users' histories.")
    renders: int = setting(
        4, "Renders of each example's (source, target) pair, with fresh pattern phases and placement."
    )
    history_images: int = setting(8, "The user's last N history images the conditioner reads from pixels (0: none).")
    accent_token: bool = setting(True, "The history accent as one more interest token (added for the fine-tune).")
    accent_film: bool = setting(
        True, "The history accent through the UNet's class embedding (added at zero for the fine-tune)."
    )
    p_reconstruct: float = setting(0.35, "Share of examples that reconstruct the item from its plain text.")
    p_plain_text: float = setting(0.25, "Share of personalize examples conditioned on the plain text.")
    p_drop_interest: float = setting(0.25, "Drop the interest tokens where the text is rewritten.")
    p_drop_all: float = setting(0.1, "Drop every condition (classifier-free guidance).")
    min_history: int = setting(3, "Interactions a user needs before an example is drawn from their history.")
    block_out_channels: tuple[int, ...] = setting((32, 64, 128), "UNet channels per level (embedded backend).")
    cross_attention_dim: int = setting(128, "Width of the condition tokens (embedded backend).")
    steps: int = setting(9500, "Optimizer steps of the first phase (0: start from --init-from's weights).")
    batch_size: int = setting(256, "Examples per step (both phases).")
    lr: float = setting(1e-3, "Peak learning rate of the first phase (linear warm-up, then cosine).")
    warmup_steps: int = setting(200, "Warm-up steps of the first phase.")
    finetune_steps: int = setting(2500, "Steps of the fine-tune phase, where the accent joins (0: none).")
    finetune_lr: float = setting(3e-4, "Peak learning rate of the fine-tune.")
    finetune_warmup_steps: int = setting(100, "Warm-up steps of the fine-tune.")
    accent_pixel_weight: float = setting(2.0, "Extra loss weight on the target's accent pixels in the fine-tune.")
    # v-prediction: near pure noise the model predicts the image (mostly a copy of the source
    # garment), near the clean image the noise; epsilon-prediction learned the copy far slower.
    prediction_type: str = setting(
        "v_prediction", "What the UNet predicts: v_prediction or epsilon (embedded; sd15 keeps its scheduler's)."
    )
    ema_decay: float = setting(0.999, "EMA decay ceiling (it warms up, so early weights fade).")
    init_from: str | None = setting(None, "Start from this saved generator's weights instead of from scratch.")
    backend: str = setting(
        "embedded",
        "embedded: the pixel UNet, trained with the conditioner; sd15: a frozen Stable Diffusion 1.5 UNet "
        "(--pretrained), against which the conditioner's projections and interest attention train (and LoRA).",
    )
    pretrained: str | None = setting(None, "With --backend sd15: a diffusers Stable Diffusion 1.5 folder.")
    lora_rank: int = setting(0, "With --backend sd15: LoRA rank on the frozen UNet's attention (0: none).")
    ip_adapter: str | None = setting(
        None, "With --backend sd15: an IP-Adapter weights file (image_encoder/ beside it), loaded and kept frozen."
    )
    seed: int = setting(0, "Seed of the examples, the batches, the noise and the initial weights.")
    threads: int = setting(2, "CPU threads.")

    def __post_init__(self):
        self.block_out_channels = tuple(self.block_out_channels)
        for name in ("train_items", "train_users", "examples", "renders", "batch_size", "cross_attention_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "finetune_steps", "warmup_steps", "finetune_warmup_steps", "history_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.steps + self.finetune_steps == 0:
            raise ValueError("steps and finetune_steps are both 0: nothing to train")
        if self.steps == 0 and not self.init_from:
            raise ValueError("steps=0 fine-tunes a saved generator: give init_from")
        if self.backend not in ("embedded", "sd15"):
            raise ValueError(f"backend must be 'embedded' or 'sd15', not {self.backend!r}")
        if self.backend == "sd15" and not self.pretrained:
            raise ValueError("backend 'sd15' trains against a pretrained Stable Diffusion 1.5: give pretrained")
        if self.backend == "embedded" and (self.pretrained or self.lora_rank or self.ip_adapter):
            raise ValueError("pretrained, lora_rank and ip_adapter are for backend 'sd15'")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, got {self.lora_rank}")
        if self.prediction_type not in ("v_prediction", "epsilon"):
            raise ValueError(f"prediction_type must be 'v_prediction' or 'epsilon', not {self.prediction_type!r}")
        for name in ("p_reconstruct", "p_plain_text", "p_drop_interest", "p_drop_all"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, config: dict) -> GeneratorTrainConfig:
        """The config a training report or pack recorded; an unknown key or a bad value is a ConfigError naming it."""
        from tailorgen.training import config_from

        return config_from(cls, **config)

    @property
    def spec(self) -> ConditionSpec:
        """What the trained generator reads (``generation.spec``)."""
        return ConditionSpec(self.history_images, self.accent_token, self.accent_film)

    def phases(self) -> list[tuple[str, int, float, int]]:
        """(name, steps, peak lr, warm-up steps) of each phase that runs."""
        out = [
            ("base", self.steps, self.lr, self.warmup_steps),
            ("finetune", self.finetune_steps, self.finetune_lr, self.finetune_warmup_steps),
        ]
        return [p for p in out if p[1] > 0]

    def phase_spec(self, phase: str) -> ConditionSpec:
        """The accent joins in the fine-tune; without one it is there from the start."""
        if phase == "base" and self.finetune_steps > 0:
            return ConditionSpec(self.history_images)
        return self.spec
