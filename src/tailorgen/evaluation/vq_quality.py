"""How much of an image the VQ tokenizer's codes keep: the judge on originals and on reconstructions.

On the items of a shop no model was trained on (seed 9001 by default: not a training, benchmark or
development seed of any model in tailorgen), the judge reads category, colour, pattern and second
colour off each original and off its reconstruction ``decode(encode(image))``. Per attribute:
the judge's accuracy against the shop's truth on each, and their ratio (reconstruction /
original; issue 24's target: at least 0.97 for category, colour and pattern). Also the per-image
PSNR (torchmetrics) and a grid of originals above their reconstructions.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image, ImageDraw

from tailorgen.common import environment_versions, write_json
from tailorgen.data import Dataset
from tailorgen.evaluation.judge import ATTRIBUTES, Judge
from tailorgen.unified.vq import VQImageTokenizer, psnr
from tailorgen.world import WorldConfig
from tailorgen.world.build import ensure_shop

DEFAULT_SEED = 9001  # no model trained or was tuned on this shop
TARGET = 0.97  # reconstruction / original accuracy, for the attributes below
TARGET_ATTRIBUTES = ("category", "colour", "pattern")


def vq_quality(
    tokenizer: VQImageTokenizer,
    judge: Judge,
    dataset_dir: str | Path,
    limit: int | None = None,
    batch_size: int = 512,
    grid_items: int = 16,
) -> tuple[dict, Image.Image]:
    """The judge's accuracy on originals and reconstructions of a shop's items, PSNR, and a grid image.

    Returns (result, grid): ``result["accuracy"]["original" | "reconstruction"][attribute]``,
    ``result["ratio"][attribute]``, ``result["psnr"]`` (mean, std, median over items, in dB),
    ``result["meets_target"]``; the grid has originals in its top row, reconstructions below.
    """
    dataset_dir = Path(dataset_dir)
    truth_path = dataset_dir / "truth" / "items.parquet"
    if not truth_path.exists():
        raise FileNotFoundError(
            f"{dataset_dir} has no ground truth ({truth_path} is missing); "
            "the tokenizer is measured on a shop built by `tailorgen world build`"
        )
    truth = pq.read_table(truth_path).to_pydict()
    ids = truth["item_id"][:limit] if limit else truth["item_id"]
    ds = Dataset(dataset_dir)
    t0 = time.perf_counter()
    correct = {kind: dict.fromkeys(ATTRIBUTES, 0) for kind in ("original", "reconstruction")}
    psnrs, codes_seen, grid_pairs = [], torch.zeros(tokenizer.codebook_size, dtype=torch.long), []
    for s in range(0, len(ids), batch_size):
        originals = [ds.load_image(i).convert("RGB") for i in ids[s : s + batch_size]]
        codes = tokenizer.encode(originals)
        recon = tokenizer.decode(codes)
        codes_seen += torch.bincount(codes.reshape(-1), minlength=tokenizer.codebook_size)
        recon_images = tokenizer.to_pil(recon)
        x = tokenizer.pixels(originals).cpu()
        psnrs.append(psnr((x + 1) / 2, recon))
        for kind, images in (("original", originals), ("reconstruction", recon_images)):
            for k, read in enumerate(judge.read(images)):
                for a in ATTRIBUTES:
                    correct[kind][a] += read[a] == truth[a][s + k]
        for original, rec in zip(originals, recon_images):
            if len(grid_pairs) < grid_items:
                grid_pairs.append((original, rec))
    n = len(ids)
    accuracy = {kind: {a: c / n for a, c in counts.items()} for kind, counts in correct.items()}
    ratio = {
        a: (accuracy["reconstruction"][a] / accuracy["original"][a]) if accuracy["original"][a] else float("nan")
        for a in ATTRIBUTES
    }
    values = torch.cat(psnrs).numpy()
    result = {
        "dataset": str(dataset_dir),
        "items": n,
        "vq": tokenizer.fingerprint,
        "vq_path": str(tokenizer.path) if tokenizer.path else None,
        "judge": judge.fingerprint,
        "tokens_per_image": tokenizer.tokens_per_image,
        "grid": list(tokenizer.grid_shape),
        "codebook_size": tokenizer.codebook_size,
        "codes_used": int((codes_seen > 0).sum()),
        "accuracy": accuracy,
        "ratio": ratio,
        "target": {"ratio_at_least": TARGET, "attributes": list(TARGET_ATTRIBUTES)},
        "meets_target": bool(all(ratio[a] >= TARGET for a in TARGET_ATTRIBUTES)),
        "psnr": {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "median": float(np.median(values)),
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return result, pair_grid(grid_pairs)


def pair_grid(pairs: list[tuple[Image.Image, Image.Image]], scale: int = 3) -> Image.Image:
    """Originals in the top row, their reconstructions below, each image ``scale`` times its size."""
    cell = pairs[0][0].width * scale if pairs else 1
    head = 14
    grid = Image.new("RGB", (max(len(pairs), 1) * cell, 2 * head + 2 * cell), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((2, 1), "original", fill="black")
    draw.text((2, head + cell + 1), "reconstruction (VQ codes)", fill="black")
    for c, (original, rec) in enumerate(pairs):
        grid.paste(original.resize((cell, cell), Image.NEAREST), (c * cell, head))
        grid.paste(rec.resize((cell, cell), Image.NEAREST), (c * cell, 2 * head + cell))
    return grid


def run_vq_quality(
    vq: str | Path | None = None,
    judge: str | Path | None = None,
    seed: int = DEFAULT_SEED,
    items: int = 2_000,
    work_dir: str | Path = "runs/work",
    out: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """``vq_quality`` on the shop of ``seed`` (built under ``work_dir`` once) with the tokenizer at ``vq``
    (default: the shipped one) and the judge at ``judge`` (default: the shipped one).

    With ``out``: OUT/vq_quality.json (the result, seeds, versions) and OUT/vq_reconstructions.png.
    """
    tokenizer = VQImageTokenizer.from_pretrained(vq)
    the_judge = Judge(judge)
    world = WorldConfig(n_items=items, n_users=1, seed=seed, image_size=tokenizer.image_size)
    shop = ensure_shop(Path(work_dir) / f"vq-eval-{seed}-{items}", world, progress=progress)
    result, grid = vq_quality(tokenizer, the_judge, shop)
    result = {"benchmark": "vq", "seed": seed, **result, "versions": environment_versions()}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "vq_quality.json", result)
        grid.save(out / "vq_reconstructions.png")
    return result


def format_table(result: dict) -> str:
    """The per-attribute table (judge accuracy on originals and reconstructions, their ratio) and PSNR."""
    acc, ratio = result["accuracy"], result["ratio"]
    lines = [
        f"VQ tokenizer {result['vq']}: {result['tokens_per_image']} codes per image "
        f"({result['grid'][0]}x{result['grid'][1]}) from {result['codebook_size']} "
        f"({result['codes_used']} used); {result['items']} items of {result['dataset']}; judge {result['judge']}",
        f"{'attribute':<18}{'original':>10}{'recon':>10}{'ratio':>8}",
    ]
    for a in ATTRIBUTES:
        mark = " *" if a in TARGET_ATTRIBUTES else ""
        lines.append(f"{a:<18}{acc['original'][a]:>10.3f}{acc['reconstruction'][a]:>10.3f}{ratio[a]:>8.3f}{mark}")
    p = result["psnr"]
    verdict = "met" if result["meets_target"] else "NOT met"
    lines.append(f"PSNR {p['mean']:.2f} dB (std {p['std']:.2f}, median {p['median']:.2f})")
    lines.append(f"* target: ratio >= {TARGET} for {', '.join(TARGET_ATTRIBUTES)}: {verdict}")
    return "\n".join(lines)
