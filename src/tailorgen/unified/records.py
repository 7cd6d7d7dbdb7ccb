"""The JSON records of the unified models' answers: one definition for the CLI and the HTTP service.

Each function takes what a ``UniMP`` or ``GNR`` call returned and gives a plain dict; where images
were written, the caller passes their locations (file paths for the CLI, URLs for the service),
so the record is the same either way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tailorgen.common.hashing import hash_file
from tailorgen.unified.vq import WEIGHTS


def ranked_record(ranked: list[tuple[str, float]], titles: dict[str, str]) -> list[dict]:
    """Items best first, each with its log-probability under the model and its title."""
    return [{"item_id": i, "log_prob": round(float(s), 4), "title": titles.get(i)} for i, s in ranked]


def recommendation_record(user: str, ranked: list[tuple[str, float]], titles: dict[str, str]) -> dict:
    return {"user": user, "items": ranked_record(ranked, titles)}


def search_record(user: str, query: str, ranked: list[tuple[str, float]], titles: dict[str, str]) -> dict:
    return {"user": user, "query": query, "items": ranked_record(ranked, titles)}


def rating_record(user: str, item: str, expected: float, distribution) -> dict:
    return {
        "user": user,
        "item": item,
        "rating": round(float(expected), 3),
        "distribution": [round(float(p), 4) for p in distribution],
    }


def explanation_record(user: str, item: str, text: str) -> dict:
    return {"user": user, "item": item, "explanation": text}


def model_checkpoints(folder: Path) -> dict:
    """The folder and the hashes of the weights that made an image (LM, VQ decoder)."""
    lm = folder / "lm" / "model.safetensors"
    return {
        "model": str(folder),
        "lm": hash_file(lm) if lm.exists() else None,
        "vq": hash_file(folder / "vq" / WEIGHTS),
    }


def imagined_record(user: str, keywords: str, made, images: list[str], model_dir: Path) -> dict:
    """``made``: a ``UniMP.imagine`` result; ``images``: where its PNGs are, in order."""
    return {
        "user": user,
        "keywords": keywords,
        "n": len(made.images),
        "seed": made.seed,
        "settings": dataclasses.asdict(made.settings),
        "images": images,
        "tokens": made.codes.tolist(),
        "log_probs": [round(float(x), 3) for x in made.log_probs],
        "checkpoints": model_checkpoints(Path(model_dir)),
    }


def generated_record(user: str, seed: int, made: dict, images: list[str], model_dir: Path) -> dict:
    """``made``: one user's entry of ``GNR.generate``; ``images``: where its PNGs are, in order."""
    return {
        "user": user,
        "seed": seed,
        "model": str(model_dir),
        "images": images,
        "titles": made["titles"],
        "codes": made["codes"].tolist(),
    }
