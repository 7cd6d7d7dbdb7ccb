"""Train I-AM-G's conditioner against a frozen Stable Diffusion 1.5 UNet: the paper's own setting.

``tailorgen train generator --backend sd15 --pretrained DIR --no-accent-film``, DIR a diffusers SD 1.5
folder (``unet/``, ``vae/``, ``scheduler/``, ``text_encoder/``, ``tokenizer/``). The steps:
1. the embedded trainer's training set (``prepare_training_set``), but the text is SD's CLIP token
   states of the same texts (all 77 tokens read, padding too, as SD was trained) and each target
   image is encoded once to latents by the frozen VAE (resized to the pipeline's image size);
2. what trains: the conditioner (image and interest projections, the interest attention, the
   history CNN and accent token where asked) and, with ``lora_rank > 0``, peft LoRA adapters on the
   UNet's attention projections; the UNet's own weights, the VAE and the text encoder stay frozen.
   The loss is the pretrained scheduler's (epsilon for SD 1.5) on latents, with the embedded loop's
   segment dropout, EMA and phases (the accent token joins at the fine-tune);
3. OUT: the pipeline (``PersonalizedImagePipeline.from_pretrained``) with the LoRA merged into its
   UNet, the adapter alone in diffusers' layout (``lora/``: ``unet.load_lora_adapter(OUT/lora,
   prefix="unet")`` on SD's own UNet), the frozen ``text_encoder/`` and ``tokenizer/``, the report.
At inference the pipeline needs the same CLIP states: ``load_clip_text(OUT)`` and ``clip_text_states``.

Refused: ``accent_film`` (SD's UNet has no class embedding; one added would change the frozen
architecture, whose ResNet blocks never learned to read it). SD decides ``block_out_channels``,
``cross_attention_dim`` and ``prediction_type`` (the report records what was used).
``accent_pixel_weight`` weighs each latent by the share of accent pixels in the patch it encodes.

An IP-Adapter (``cfg.ip_adapter``, ``--ip-adapter``: a weights file in the published layout with its CLIP image encoder
in ``image_encoder/`` beside it, as h94/IP-Adapter ships them) is loaded as at inference
(``load_ip_adapter``), frozen; it reads each item's CLIP image embedding, dropped with the "image"
segment, and is unloaded before saving (load it again at inference).

One file of about 410 lines, the whole backend's trainer: splitting the loading of the frozen
parts from the loop that uses them would leave each half unreadable without the other.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.training_utils import EMAModel
from diffusers.utils import convert_state_dict_to_diffusers
from tqdm.auto import tqdm

from tailorgen.common import component_hashes, hash_file
from tailorgen.common.atomic import atomic_dir, check_output_dir
from tailorgen.generation.conditioning import PersonalizationConditioner
from tailorgen.generation.context import IAMGSettings
from tailorgen.generation.pipeline import PersonalizedImagePipeline
from tailorgen.generation.spec import ConditionSpec
from tailorgen.generation.train.config import GeneratorTrainConfig
from tailorgen.generation.train.dataset import prepare_training_set
from tailorgen.generation.train.loop import TrainingSet, phase_run
from tailorgen.generation.train.models import grow_to_spec
from tailorgen.interests.accent import accent_pixels
from tailorgen.training import CHECKPOINT_EVERY, TrainingRun, resolve_device, set_lr, warmup_cosine, write_report
from tailorgen.training.run import is_training_output

SD_FOLDERS = ("unet", "vae", "scheduler", "text_encoder", "tokenizer")
LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]  # the attention projections, as diffusers' LoRA scripts
ENCODE_BATCH = 32  # images or texts through a frozen encoder at once


def train_sd15(
    cfg: GeneratorTrainConfig,
    out: str | Path,
    work_dir: str | Path,
    progress: bool = True,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    stop_after: int | None = None,
) -> dict:
    """Build the generator's shop and training set, then train against the frozen SD UNet (``fit_sd15``).

    An IP-Adapter (``cfg.ip_adapter``) is loaded and kept frozen.
    """
    check_sd15_config(cfg, out)
    t0 = time.perf_counter()
    device = resolve_device(device)
    data, ctx, rng, hashes = prepare_training_set(cfg, work_dir, progress, device)
    prep = time.perf_counter() - t0
    return fit_sd15(
        cfg, data, ctx.settings, out, rng, prep, progress, device, hashes, checkpoint_every, stop_after, cfg.ip_adapter
    )


def fit_sd15(
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
    ip_adapter: str | Path | None = None,
) -> dict:
    """Train on a prepared set (``build_training_set``), phase by phase, and save the pipeline to ``out``."""
    check_sd15_config(cfg, out)
    t0 = time.perf_counter()
    conditioner = sd_conditioner(cfg, data)
    sd, tokenizer, text_encoder, image_encoder = load_frozen_sd(cfg.pretrained, conditioner, device, ip_adapter)
    data = sd_training_set(data, sd, tokenizer, text_encoder, image_encoder, device, progress)
    if cfg.lora_rank:
        add_lora(sd.unet, cfg.lora_rank)
    prep_seconds += time.perf_counter() - t0
    runs = []
    for phase in cfg.phases():
        spec = cfg.phase_spec(phase[0])
        _, conditioner = grow_to_spec(sd.unet, conditioner, spec)
        run = phase_run(out, cfg, phase, device, data_hashes, checkpoint_every, stop_after, progress, " on sd15")
        conditioner = fit_sd15_phase(run, cfg, phase, data, sd, conditioner, spec, rng, device)
        runs.append(run)
    # OUT is replaced only when the pipeline and its report are complete; the checkpoints go with the old
    # one. The SD folder is protected: an OUT that is or holds it would delete the weights it reads.
    with atomic_dir(out, True, replaceable=is_training_output, protect=[cfg.pretrained], what="generator") as tmp:
        trained = save_sd15(tmp, sd, conditioner, tokenizer, text_encoder, cfg.lora_rank)
        hashes = data_hashes or {}
        return _write_report(tmp, cfg, settings, data, runs, trained, prep_seconds, device, hashes, ip_adapter)


def check_sd15_config(cfg: GeneratorTrainConfig, out: str | Path) -> None:
    """Refuse what SD's UNet cannot read, an SD folder that lacks a part, and an OUT over it, before any work."""
    if cfg.backend != "sd15" or not cfg.pretrained:
        raise ValueError("train_sd15 needs backend='sd15' and pretrained (a diffusers Stable Diffusion 1.5 folder)")
    if cfg.accent_film:
        raise ValueError(
            "accent_film: Stable Diffusion's UNet has no class embedding to read the history accent through; "
            "give accent_film=False (--no-accent-film) with backend 'sd15' (accent_token still adds it as a token)"
        )
    if cfg.init_from:
        raise ValueError(
            "init_from: the sd15 backend starts from SD's frozen weights and a fresh conditioner; "
            "continuing a saved sd15 generator is not supported yet"
        )
    if cfg.ip_adapter and not Path(cfg.ip_adapter).is_file():
        raise FileNotFoundError(f"ip_adapter: {cfg.ip_adapter} is not a file (an IP-Adapter's weights)")
    root = Path(cfg.pretrained)
    missing = [name for name in SD_FOLDERS if not (root / name).is_dir()]
    if missing:
        raise ValueError(
            f"pretrained: {root} lacks {', '.join(f'{m}/' for m in missing)}; a diffusers Stable Diffusion 1.5 "
            f"folder holds {', '.join(f'{m}/' for m in SD_FOLDERS)}"
        )
    check_output_dir(out, True, replaceable=is_training_output, protect=[root], what="generator")


def sd_conditioner(cfg: GeneratorTrainConfig, data: dict) -> PersonalizationConditioner:
    """A fresh conditioner for the first phase; it passes CLIP text states through (SD was trained on them)."""
    spec = cfg.phase_spec(cfg.phases()[0][0])
    width = UNet2DConditionModel.load_config(cfg.pretrained, subfolder="unet")["cross_attention_dim"]
    return PersonalizationConditioner(
        embed_dim=data["text_neighbours"].shape[-1],
        text_dim=width,
        project_text=False,
        cross_attention_dim=width,
        max_neighbours=max(8, data["text_neighbours"].shape[1]),
        history_images=spec.history_images,
        accent_token=spec.accent_token,
    )


def load_frozen_sd(path, conditioner, device: str, ip_adapter=None):
    """(pipeline, tokenizer, text encoder, IP-Adapter image encoder or None) of an SD folder, frozen, on ``device``."""
    sd = PersonalizedImagePipeline.from_stable_diffusion(str(path), conditioner.config.embed_dim, conditioner)
    tokenizer, text_encoder = load_clip_text(path)
    for module in (sd.unet, sd.vae, text_encoder):
        module.requires_grad_(False).to(device)
    image_encoder = load_ip_adapter(sd, ip_adapter) if ip_adapter else None
    return sd, tokenizer, text_encoder, image_encoder


def load_clip_text(path: str | Path):
    """(tokenizer, text encoder) of an SD folder or of a pipeline this module saved, frozen and in eval mode."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(Path(path) / "tokenizer"))
    text_encoder = CLIPTextModel.from_pretrained(str(Path(path) / "text_encoder")).eval().requires_grad_(False)
    return tokenizer, text_encoder


@torch.no_grad()
def clip_text_states(texts, tokenizer, text_encoder, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 77, D) CLIP token states of ``texts`` and a (B, 77) all-True mask, as SD's pipelines make them.

    Every position is read, padding included: SD 1.5 was trained on padded prompts without a mask,
    and its padding states carry the end-of-text summary.
    """
    n = tokenizer.model_max_length
    ids = tokenizer(list(texts), padding="max_length", max_length=n, truncation=True, return_tensors="pt").input_ids
    states = [
        text_encoder(ids[s : s + ENCODE_BATCH].to(device)).last_hidden_state.float().cpu()
        for s in range(0, len(ids), ENCODE_BATCH)
    ]
    return torch.cat(states), torch.ones(len(ids), n, dtype=torch.bool)


def sd_training_set(data: dict, sd, tokenizer, text_encoder, image_encoder, device: str, progress: bool) -> dict:
    """The embedded set with CLIP text states, the targets' latents and (IP-Adapter) CLIP image embeddings."""
    data = dict(data)
    texts = [str(t) for t in data["text"]]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=False).input_ids]
    if cut := sum(n > tokenizer.model_max_length for n in lengths):
        warnings.warn(
            f"{cut} of {len(texts)} training texts exceed CLIP's {tokenizer.model_max_length}-token window and are cut;"
            " the user tags come last in a rewrite",
            stacklevel=2,
        )
    states, mask = clip_text_states(texts, tokenizer, text_encoder, device)
    data["text_tokens"], data["text_mask"] = states.half().numpy(), mask.numpy()
    data["latents"] = encode_latents(sd.vae, data["target"], sd.image_size, device, progress)
    if image_encoder is not None:  # the item's own image: its source render, one embedding per row
        data["ip_image_embeds"] = clip_image_embeds(image_encoder, data["source"], device)
    return data


@torch.no_grad()
def encode_latents(vae, pixels: np.ndarray, size: int, device: str, progress: bool = False) -> np.ndarray:
    """(N, 3, S, S) uint8 images -> (N, C, size/f, size/f) float16 latents, scaled as SD's UNet reads them."""
    out = []
    for s in tqdm(range(0, len(pixels), ENCODE_BATCH), desc="latents", unit="batch", disable=not progress):
        x = torch.from_numpy(pixels[s : s + ENCODE_BATCH]).to(device).float() / 127.5 - 1
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) if x.shape[-1] != size else x
        # The mode, not a sample: the targets stay fixed, and the noise comes from the diffusion itself.
        out.append((vae.encode(x).latent_dist.mode() * vae.config.scaling_factor).half().cpu())
    return torch.cat(out).numpy()


def load_ip_adapter(sd: PersonalizedImagePipeline, weights: str | Path):
    """Load a published IP-Adapter into ``sd``, frozen; returns its CLIP image encoder (``image_encoder/``)."""
    from transformers import CLIPVisionModelWithProjection

    weights = Path(weights)
    encoder_dir = weights.parent / "image_encoder"
    if not weights.is_file() or not encoder_dir.is_dir():
        raise ValueError(f"ip_adapter: {weights} must be an IP-Adapter weights file with image_encoder/ beside it")
    sd.load_ip_adapter(str(weights.parent), subfolder="", weight_name=weights.name, image_encoder_folder=None)
    sd.unet.requires_grad_(False)
    encoder = CLIPVisionModelWithProjection.from_pretrained(str(encoder_dir)).eval().requires_grad_(False)
    return encoder.to(sd.unet.device)


@torch.no_grad()
def clip_image_embeds(encoder, pixels: np.ndarray, device: str) -> np.ndarray:
    """(N, 3, S, S) uint8 images -> (N, D) CLIP image embeddings (``image_embeds``), what an IP-Adapter reads."""
    from transformers import CLIPImageProcessorPil  # the PIL backend: torchvision does not install beside this torch

    size = encoder.config.image_size
    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    encoder = encoder.to(device)
    out = []
    for s in range(0, len(pixels), ENCODE_BATCH):
        batch = list(pixels[s : s + ENCODE_BATCH].transpose(0, 2, 3, 1))
        inputs = processor(images=batch, return_tensors="pt").pixel_values.to(device)
        out.append(encoder(pixel_values=inputs).image_embeds.float().cpu())
    return torch.cat(out).numpy()


def add_lora(unet, rank: int) -> None:
    """LoRA adapters (peft, through diffusers' ``add_adapter``) on the attention projections; they start at zero."""
    from peft import LoraConfig

    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS))
    )


class LatentTrainingSet(TrainingSet):
    """The training set with each row's latents (and CLIP image embedding) on the training device."""

    def __init__(self, data: dict, spec: ConditionSpec, device):
        super().__init__(data, spec, device)
        self.latents = torch.from_numpy(data["latents"]).to(device)
        self.ip = torch.from_numpy(data["ip_image_embeds"]).to(device) if "ip_image_embeds" in data else None

    def sample(self, rng, cfg: GeneratorTrainConfig):
        """Conditions, latents, target pixels in [-1, 1], the rows' CLIP image embeddings (or None), drops."""
        row, batch, drop = self.draw(rng, cfg)
        pixels = self.tensors["target"][row].float() / 127.5 - 1
        ip = None if self.ip is None else self.ip[row]
        return batch, self.latents[row].float(), pixels, ip, drop


def fit_sd15_phase(run: TrainingRun, cfg, phase, data, sd, conditioner, spec, rng, device):
    """Train the conditioner (and the UNet's LoRA) for one phase; leaves their EMA weights in them."""
    name, steps, peak_lr, warmup = phase
    conditioner = conditioner.to(device).train()
    unet = sd.unet.train()  # frozen but for LoRA (its dropout is 0: train mode changes nothing else)
    params = [*conditioner.parameters(), *(p for p in unet.parameters() if p.requires_grad)]
    opt = torch.optim.AdamW(params, lr=peak_lr, weight_decay=1e-4)
    ema = EMAModel(params, decay=cfg.ema_decay, use_ema_warmup=True, power=2 / 3)
    # Checkpoints hold the LoRA weights (the same Parameters, listed), not the frozen UNet around them.
    lora = {"lora": torch.nn.ParameterList(p for p in unet.parameters() if p.requires_grad)} if cfg.lora_rank else {}
    run.track(conditioner=conditioner, **lora, optimizer=opt, ema=ema, rng=rng)
    scheduler = DDPMScheduler.from_pretrained(cfg.pretrained, subfolder="scheduler")
    stored = LatentTrainingSet(data, spec, device)
    pixel_weight = cfg.accent_pixel_weight if name == "finetune" else 0.0
    for step in run:
        set_lr(opt, warmup_cosine(step, peak_lr, max(warmup, 1), steps))
        batch, latents, pixels, ip, drop = stored.sample(rng, cfg)
        loss = latent_loss(unet, conditioner, scheduler, spec, batch, latents, pixels, ip, drop, pixel_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.step(params)
        run.log(loss)
    run.save_checkpoint()  # the finished phase: a later phase's resume starts from it
    ema.copy_to(params)
    return conditioner.eval()


def latent_loss(unet, conditioner, scheduler, spec, batch, latents, pixels, ip, drop, accent_pixel_weight=0.0):
    """The pretrained scheduler's loss on latents (epsilon MSE for SD 1.5), accent latents weighted more if asked."""
    accent = batch.pop("history_accent", None)
    tokens, mask = conditioner(**batch, drop=drop, history_accent=accent if spec.accent_token else None)
    kwargs = {}
    if ip is not None:  # the IP-Adapter's image goes with the "image" segment: zeros where that is dropped
        kwargs["added_cond_kwargs"] = {"image_embeds": [ip[:, None] * ~drop[:, 1:2, None]]}
    noise = torch.randn_like(latents)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device)
    noisy = scheduler.add_noise(latents, noise, t)
    pred = unet(noisy, t, encoder_hidden_states=tokens, encoder_attention_mask=mask, **kwargs).sample
    kind = scheduler.config.prediction_type
    if kind not in ("epsilon", "v_prediction"):
        raise ValueError(f"the pretrained scheduler predicts {kind!r}; the sd15 trainer knows epsilon and v_prediction")
    target = noise if kind == "epsilon" else scheduler.get_velocity(latents, noise, t)
    if not accent_pixel_weight:
        return F.mse_loss(pred, target)
    # A latent reads an 8x8 patch of pixels: it weighs as much as the share of accent pixels under it.
    share = F.adaptive_avg_pool2d(accent_pixels(pixels).float()[:, None], latents.shape[-2:])
    weight = 1 + accent_pixel_weight * share
    return (weight * (pred - target) ** 2).mean() / weight.mean()


def save_sd15(folder: Path, sd, conditioner, tokenizer, text_encoder, lora_rank: int) -> dict:
    """The pipeline (LoRA merged into its UNet), the adapter alone, the text encoder; returns parameter counts."""
    if getattr(sd.unet, "encoder_hid_proj", None) is not None:
        sd.unload_ip_adapter()  # not trained: a user loads the same file again at inference
    counts = {"conditioner": _count(conditioner), "unet_lora": 0}
    frozen = {"unet": _count(sd.unet, lora=False), "vae": _count(sd.vae), "text_encoder": _count(text_encoder)}
    if lora_rank:
        from peft.utils import get_peft_model_state_dict

        counts["unet_lora"] = _count(sd.unet, lora=True)
        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(sd.unet))
        StableDiffusionLoraLoaderMixin.save_lora_weights(str(folder / "lora"), unet_lora_layers=layers)
        sd.unet.fuse_lora()
        sd.unet.unload_lora()  # the merged weights stay: the saved UNet is a plain UNet2DConditionModel
    pipe = PersonalizedImagePipeline(unet=sd.unet, scheduler=sd.scheduler, conditioner=conditioner, vae=sd.vae)
    pipe.to("cpu").save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    text_encoder.to("cpu").save_pretrained(str(folder / "text_encoder"))
    return {"trainable": counts, "frozen": frozen, "condition_spec": pipe.condition_spec.to_dict()}


def _count(module, lora: bool | None = None) -> int:
    """Parameters of ``module``; ``lora`` True counts only LoRA's, False all but LoRA's."""
    return sum(p.numel() for n, p in module.named_parameters() if lora is None or ("lora_" in n) == lora)


def _sd_record(path: str | Path, ip_adapter) -> dict:
    """The pretrained weights, named by content (a folder may be moved or replaced)."""
    out: dict = {"path": str(path)} | component_hashes(path, ("unet", "vae", "text_encoder"))
    if ip_adapter:
        out["ip_adapter"] = {"path": str(ip_adapter), "sha256": hash_file(ip_adapter)}
    return out


def _write_report(folder, cfg, settings, data, runs, trained, prep, device, hashes, ip_adapter) -> dict:
    scheduler = DDPMScheduler.from_pretrained(cfg.pretrained, subfolder="scheduler")
    what = "LoRA on the UNet's attention projections, " if cfg.lora_rank else ""
    return write_report(
        folder,
        what="tailorgen personalized generator (I-AM-G) on a frozen Stable Diffusion 1.5 UNet: conditioner with "
        f"interest attention, {what}CLIP text states",
        config=cfg,
        seed=cfg.seed,
        device=device,
        data={"train": hashes},
        steps=sum(r.steps for r in runs),
        resumed_from=next((r.resumed_from for r in runs if r.resumed_from is not None), None),
        train_seconds=sum(r.seconds for r in runs),
        loss_curve=[v for r in runs for v in r.curve(100)],
        backend="sd15",
        pretrained=_sd_record(cfg.pretrained, ip_adapter),
        trained=["conditioner", *(["unet LoRA (" + ", ".join(LORA_TARGETS) + ")"] if cfg.lora_rank else [])],
        lora={"rank": cfg.lora_rank, "alpha": cfg.lora_rank, "targets": LORA_TARGETS} if cfg.lora_rank else None,
        prediction_type=scheduler.config.prediction_type,  # the pretrained scheduler's, not cfg.prediction_type
        condition_spec=trained["condition_spec"],
        iamg_settings=dataclasses.asdict(settings),
        phases={r.desc: {"steps": r.steps, "seconds": round(r.seconds, 1), "loss_curve": r.curve(100)} for r in runs},
        examples=len(data["keep_interest"]),
        renders=len(data["target"]) // len(data["keep_interest"]),
        personalize_examples=data["n_personalize"],
        counterfactual_targets=data["counterfactual_targets"],
        prep_seconds=round(prep, 1),
        parameters={"trainable": trained["trainable"], "frozen": trained["frozen"]},
    )
