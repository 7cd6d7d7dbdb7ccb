"""I-AM-G end to end: mine interests, rewrite, retrieve, fuse, and generate the user's version of an item.

:class:`IAMGGenerator` ties the stages together for one dataset. Its :meth:`generate` follows the
paper's order (the steps are timed one by one, so a benchmark can say where the time goes):

1. interests: the user's tag profile from their history (text tags + zero-shot image tags);
2. rewrite: the item text plus the user's top tags, their favourite look first (template or LLM);
3. retrieve: K text neighbours of the rewritten text and K image neighbours of the user's
   recency-weighted history images (``IAMGSettings.image_query_mix`` would blend in the item's
   own image; it is 0 by default, since with the item in the query the neighbours were the
   item's look rather than the user's);
4. condition: token states of the text, the item's image embedding, and the neighbours, which the
   interest-attention module turns into interest tokens inside the conditioner;
5. diffuse: the personalized image, with classifier-free guidance; the shipped generator also
   reads the item's own pixels, so the garment keeps its shape and takes on the user's look.

The ablations of the paper are methods of the same generator (:data:`METHODS`): only which text
is used and which condition segments are kept change, never the weights or the noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tailorgen.common import atomic_dir, atomic_write_text, component_hashes, write_json
from tailorgen.data import Dataset, id_file_stem
from tailorgen.encoders.image import images_to_tensor
from tailorgen.generation.context import IAMGSettings, PersonalizationContext, Request
from tailorgen.generation.pipeline import DEFAULT_SAMPLER, DEFAULT_STEPS, PersonalizedImagePipeline
from tailorgen.interests.rewrite import Rewriter

# method -> (condition on the rewritten text?, condition segments kept)
METHODS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "plain": (False, ("text", "image")),  # non-personalized: the item's own text and image
    "rewrite": (True, ("text", "image")),  # rewrite only
    "retrieval": (False, ("text", "image", "interest")),  # retrieval (interest tokens) only
    "full": (True, ("text", "image", "interest")),  # I-AM-G
}
STAGES = ("interests+rewrite+retrieve", "condition", "diffuse")


def default_generator_path() -> Path:
    return Path(str(resources.files("tailorgen") / "assets" / "generator"))


def trained_settings(path: str | Path) -> IAMGSettings | None:
    """The retrieval and rewrite settings a generator was trained with (its training report), if recorded.

    A generator learns from the neighbours its settings retrieve; generating with other settings
    feeds it conditions it never saw (a different image query, for one), so these are the default.
    What the generator reads besides (history images, the accent) is its ``condition_spec``, not a setting.
    """
    report = Path(path) / "training_report.json"
    if not report.exists():
        return None
    recorded = json.loads(report.read_text()).get("iamg_settings")
    if not recorded:
        return None
    known = {f.name for f in dataclasses.fields(IAMGSettings)}
    recorded = {k: v for k, v in recorded.items() if k in known}
    # Generators trained before look_attributes existed learned from the paper's plain ranking.
    recorded["look_attributes"] = tuple(recorded.get("look_attributes", ()))
    return IAMGSettings(**recorded)


def load_pipeline(path: str | Path | None = None, device: str = "cpu") -> PersonalizedImagePipeline:
    path = Path(path) if path else default_generator_path()
    if not (path / "model_index.json").exists():
        raise FileNotFoundError(
            f"no generator at {path}; train one with `tailorgen train generator --out {path}` (see docs/benchmarks.md)"
        )
    pipe = PersonalizedImagePipeline.from_pretrained(str(path), dtype=torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pick_requests(
    histories: dict[str, list[str]], item_ids: list[str], n: int, min_history: int, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """Up to ``n`` users with >= ``min_history`` interactions, drawn by ``rng``, each with an item they never saw."""
    eligible = sorted(u for u, h in histories.items() if len(h) >= min_history)
    users = [str(u) for u in rng.choice(eligible, size=min(n, len(eligible)), replace=False)]
    pairs = []
    for u in users:
        seen = set(histories[u])
        while (item := item_ids[int(rng.integers(len(item_ids)))]) in seen:
            pass
        pairs.append((u, item))
    return pairs


def noise_for(seed: int, user_id: str, item_id: str, k: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The starting noise of image k for (user, item): the same for every method, so they compare paired."""
    digest = hashlib.sha256(f"{seed}|{user_id}|{item_id}|{k}".encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return torch.randn(shape, generator=g)


@dataclass
class Generation:
    """The images made for one request, with everything needed to reproduce and explain them."""

    request: Request
    method: str
    images: list[Image.Image]
    seed: int
    seconds: dict[str, float] = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)  # sampler, steps and guidance the images were made with

    def record(self) -> dict:
        return self.request.record() | {
            "method": self.method,
            "seed": self.seed,
            "sampling": self.sampling,
            "n_images": len(self.images),
            "seconds": self.seconds,
        }


class IAMGGenerator:
    """Personalized generation for the users and items of one dataset."""

    def __init__(
        self,
        dataset: Dataset | str | Path,
        pipeline: PersonalizedImagePipeline | str | Path | None = None,
        settings: IAMGSettings | None = None,
        rewriter: Rewriter | None = None,
        context: PersonalizationContext | None = None,
        guidance_scale: float = 2.0,
        num_inference_steps: int = DEFAULT_STEPS,
        progress: bool = False,
        sampler: str = DEFAULT_SAMPLER,
        compile_unet: bool = False,
    ):
        """``sampler``: a key of ``generation.pipeline.SAMPLERS``, on the noise schedule the generator was
        trained with. ``compile_unet``: compile the UNet (25-50 s a batch size, then
        each step about 15% faster: at 6 steps it pays back from about 1,500 images)."""
        dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        if pipeline is None or isinstance(pipeline, str | Path):
            self.pipeline_path = Path(pipeline) if pipeline else default_generator_path()
            pipeline = load_pipeline(self.pipeline_path)
        else:
            self.pipeline_path = None
        self.pipeline = pipeline
        if settings is None and self.pipeline_path is not None:
            settings = trained_settings(self.pipeline_path)
        spec = pipeline.condition_spec
        self.context = context or PersonalizationContext(
            dataset, settings, rewriter=rewriter, progress=progress, spec=spec
        )
        if self.context.spec != spec:
            raise ValueError(f"the context computes {self.context.spec}, but the generator reads {spec}")
        if not np.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}")
        self.guidance_scale = guidance_scale
        self.num_inference_steps = num_inference_steps
        self.sampler = sampler
        pipeline.use_sampler(sampler)
        if compile_unet:
            pipeline.compile_unet()

    def checkpoints(self) -> dict[str, str]:
        """Hashes of the weights behind an output, for its record."""
        out = {
            "text_encoder": self.context.text_encoder.fingerprint,
            "image_encoder": self.context.image_encoder.fingerprint,
            "rewriter": self.context.rewriter.backend,
        }
        if self.pipeline_path is not None:
            parts = component_hashes(self.pipeline_path, ("unet", "conditioner"))
            out |= {f"generator_{part}": h for part, h in parts.items()}
        return out

    def generate_batch(
        self,
        pairs: list[tuple[str, str]],
        n: int = 1,
        seed: int = 0,
        method: str = "full",
        batch_size: int = 32,
        requests: list[Request] | None = None,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
    ) -> list[Generation]:
        """``n`` images for each (user_id, item_id); ``requests`` reuses already-made Requests.

        ``guidance_scale`` and ``num_inference_steps`` override the generator's for this call only
        (a server answers requests with different settings from one loaded generator)."""
        if method not in METHODS:
            raise ValueError(f"unknown method '{method}'; choose from {list(METHODS)}")
        rewritten, use = METHODS[method]
        t0 = time.perf_counter()
        if requests is None:
            self.context.check_known(pairs)
            requests = self.context.requests(pairs)
        t_request = (time.perf_counter() - t0) / max(len(pairs), 1)
        pipe = self.pipeline
        # Every request's images in one flat list, cut into batches for the UNet.
        guidance = self.guidance_scale if guidance_scale is None else guidance_scale
        steps = num_inference_steps or self.num_inference_steps
        jobs = [(r, k) for r in requests for k in range(n)]
        images: list[Image.Image] = []
        t_condition = t_diffuse = 0.0
        for s in range(0, len(jobs), batch_size):
            chunk = jobs[s : s + batch_size]
            t1 = time.perf_counter()
            conditions = self.context.conditions([r for r, _ in chunk], rewritten=rewritten)
            source = None
            if pipe.reads_source_image:
                items = [self.context.dataset.load_image(r.item_id) for r, _ in chunk]
                source = images_to_tensor(items, pipe.image_size)
            t2 = time.perf_counter()
            latents = torch.stack([noise_for(seed, r.user_id, r.item_id, k, pipe.noise_shape) for r, k in chunk])
            images += pipe(
                conditions,
                image=source,
                use=use,
                guidance_scale=guidance,
                num_inference_steps=steps,
                latents=latents,
            )
            t_condition += t2 - t1
            t_diffuse += time.perf_counter() - t2
        per_image = max(len(jobs), 1)
        seconds = {
            "interests+rewrite+retrieve": round(t_request, 4),
            "condition": round(t_condition / per_image, 4),
            "diffuse": round(t_diffuse / per_image, 4),
        }
        sampling = {"sampler": self.sampler, "steps": steps, "guidance": guidance}
        return [
            Generation(r, method, images[j * n : (j + 1) * n], seed, seconds, sampling) for j, r in enumerate(requests)
        ]

    def generate(
        self, user_id: str, item_id: str, n: int = 4, seed: int = 0, method: str = "full", **overrides
    ) -> Generation:
        """``overrides``: ``guidance_scale``, ``num_inference_steps`` for this call (see ``generate_batch``)."""
        return self.generate_batch([(user_id, item_id)], n=n, seed=seed, method=method, **overrides)[0]


def request_folder(user_id: str, item_id: str, method: str) -> Path:
    """Where a request's images go inside a run folder: ``USER/ITEM__METHOD`` (relative).

    Folder names come from ``data.id_file_stem`` (ids are data: ``../x`` or ``a/b`` never become a
    path); the user is a folder level of its own and the method a fixed suffix, so no two requests
    share a folder. The record keeps the ids as they are.
    """
    return Path(id_file_stem(user_id)) / f"{id_file_stem(item_id)}__{method}"


def save_generation(g: Generation, out: Path, checkpoints: dict[str, str]) -> dict:
    """Write one request's folder, its PNGs and then its record.json (which marks the request done).

    The folder is written aside and renamed in whole, so a process killed halfway (a Dask
    worker, Ctrl-C) leaves no request half written, and one written again replaces it whole."""
    relative = request_folder(g.request.user_id, g.request.item_id, g.method)
    files = [(relative / f"image_{k}.png").as_posix() for k in range(len(g.images))]
    record = g.record() | {"images": files, "checkpoints": checkpoints}
    with atomic_dir(out / relative, overwrite=True, what="request") as tmp:
        for k, image in enumerate(g.images):
            image.save(tmp / f"image_{k}.png")
        write_json(tmp / "record.json", record)
    return record


def save_generations(generations: list[Generation], out: str | Path, checkpoints: dict[str, str]) -> list[dict]:
    """Write each request's PNGs and record under ``out/USER/ITEM__METHOD/`` and all records to records.jsonl."""
    out = Path(out)
    records = [save_generation(g, out, checkpoints) for g in generations]
    atomic_write_text(out / "records.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return records
