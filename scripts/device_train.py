r"""Train the generator on a borrowed GPU machine that has PyTorch but none of this project's data or models.

Where tailorgen is installed, `tailorgen train generator --device cuda` runs the shipped recipe on a
GPU, and this script is not needed. The GPU
machines lent to some development sessions here have PyTorch, but no FAISS, no MiniLM weights and
no Fashion-MNIST; they cannot download anything, and at most 64 MiB of files go along. The
training set is about 1.4 GB (token states and images), so it cannot travel. This script splits
the work in two:

    # here, on the CPU: build the training set as `tailorgen train generator` does, and pack it (57 MiB with the repo)
    python scripts/device_train.py pack --out runs/device_pack
    # there: rebuild the set from the pack and run the same recipe (generation.train.fit_generator)
    python scripts/device_train.py train --pack runs/device_pack --out $OUT/gen

Both take ``--set key=value`` overrides of ``GeneratorTrainConfig`` (the recipe's defaults are the
shipped generator's); the pack records the config, and ``train`` may change only how it trains
(steps, batch size, learning rates, renders, init_from), not what the set holds.

What the pack holds instead, and how the other end rebuilds the set:
- the texts as MiniLM token ids, and MiniLM itself, cut to the vocabulary rows those ids use and
  with its layers in int8; the token states are computed again there (cosine to the float32
  model's states >= 0.9995: ``check`` measures it on a small pack);
- each catalog embedding and history image once, with per-example indices into them;
- per example, the garment's silhouette and its (source, target) looks. The renderer draws the
  images again there with the same code, in chunks of 2,000 examples with a seed each. The first
  chunk replays the CPU build's draws (numpy's seeds [s, 77] and [s, 77, 0] are one seed); the
  others draw other pattern phases and placements of the same looks: the same distribution, not
  the same pixels. The config's ``renders`` draws each example that many times.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def _dedupe(a: np.ndarray, row_ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``a`` into a table of its distinct trailing ``row_ndim``-dimensional rows and an index array."""
    lead = a.shape[: a.ndim - row_ndim]
    rows = a.reshape(int(np.prod(lead)), -1)
    table, inverse = np.unique(rows, axis=0, return_inverse=True)
    return table.reshape(-1, *a.shape[a.ndim - row_ndim :]), inverse.reshape(lead).astype(np.int32)


TABLES = {"image_embedding": 1, "text_neighbours": 1, "image_neighbours": 1, "history_pixels": 3}
PLAIN = ("text_mask", "history_mask", "history_accent", "keep_interest", "rewritten", "looks")
# What ``train`` may change of the packed config: how to train, not what the set holds.
TRAINING = ("steps", "batch_size", "lr", "warmup_steps", "finetune_steps", "finetune_lr", "finetune_warmup_steps")
TRAINING += ("accent_pixel_weight", "renders", "init_from", "ema_decay")


def pack(args) -> None:
    from tailorgen.generation.train import GeneratorTrainConfig, prepare_training_set
    from tailorgen.training import config_from

    # As train_generator prepares it: the same seeds in the same order, each example drawn once here.
    cfg = config_from(GeneratorTrainConfig, overrides=args.set)
    t0 = time.perf_counter()
    data, ctx, _, hashes = prepare_training_set(dataclasses.replace(cfg, renders=1), args.work_dir)
    sizes = write_pack(args.out, data, cfg, ctx, time.perf_counter() - t0, hashes)
    print(json.dumps({"examples": len(data["target"]), "MiB": sizes}))


def write_pack(out, data: dict, cfg, ctx, prep_seconds: float = 0.0, hashes: dict | None = None) -> dict[str, float]:
    """Write a training set (``build_training_set`` on a simulated shop) compactly; returns the files' sizes in MiB."""
    import torch
    from safetensors.torch import save_file

    from tailorgen.common import atomic_dir, write_json
    from tailorgen.world.knowledge import knowledge_for

    if not data["counterfactual_targets"]:
        raise ValueError("a pack re-renders its images, so it needs a simulated shop with ground truth")
    if len(data["target"]) != len(data["keep_interest"]):
        raise ValueError("pack a set of one render per example; the other end draws the config's renders")
    tokenizer = ctx.text_encoder.model.tokenizer
    ids = tokenizer(list(data["text"]), padding="max_length", truncation=True, max_length=data["text_mask"].shape[1])
    ids = np.asarray(ids["input_ids"])
    if not np.array_equal(ids != tokenizer.pad_token_id, data["text_mask"]):
        raise ValueError("the texts' token ids do not match the training set's text mask")
    used, remapped = np.unique(ids, return_inverse=True)
    arrays = {"input_ids": remapped.reshape(ids.shape).astype(np.int16)}
    for key, row_ndim in TABLES.items():
        if key in data:
            arrays[f"{key}_table"], arrays[f"{key}_index"] = _dedupe(data[key], row_ndim)
    # The item's and its neighbours' image embeddings are rows of one catalog table: keep it once.
    table, index = _dedupe(np.concatenate([data["image_embedding"][:, None], data["image_neighbours"]], 1), 1)
    arrays["image_embedding_index"], arrays["image_neighbours_index"] = index[:, 0], index[:, 1:]
    arrays["image_embedding_table"] = table
    del arrays["image_neighbours_table"]
    arrays |= {k: data[k] for k in PLAIN if k in data}
    knowledge = knowledge_for(ctx.dataset)
    silhouette = np.array([knowledge.silhouette_index(i) for i in data["source_item"]])
    shapes, arrays["silhouette_index"] = np.unique(silhouette, return_inverse=True)
    arrays["silhouettes"] = knowledge.silhouettes[shapes]

    # MiniLM with only the vocabulary rows the texts use, its layers' weights in int8 with a float16
    # scale per 32 weights (cosine of the token states to the float32 model's >= 0.9995, ``check``).
    transformer = ctx.text_encoder.model[0].auto_model
    state = {}
    for k, v in transformer.state_dict().items():
        v = v.detach().float()
        if k == "embeddings.word_embeddings.weight":
            v = v[torch.from_numpy(used)]
        if v.ndim == 2 and k.startswith("encoder."):
            groups = v.reshape(v.shape[0], -1, 32)
            scale = groups.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 127
            state[k + ".int8"], state[k + ".scale"] = (groups / scale).round().to(torch.int8), scale.half()
        else:
            state[k] = v.half()
    meta = {
        "config": dataclasses.asdict(cfg),
        "settings": dataclasses.asdict(ctx.settings),
        "data_hashes": hashes or {},
        "prep_seconds": round(prep_seconds, 1),
    }
    with atomic_dir(out, overwrite=True) as tmp:
        np.savez_compressed(tmp / "set.npz", **arrays)
        save_file(state, str(tmp / "minilm.safetensors"))
        write_json(tmp / "minilm_config.json", transformer.config.to_dict() | {"vocab_size": len(used)})
        write_json(tmp / "meta.json", meta)
    return {p.name: round(p.stat().st_size / 2**20, 1) for p in Path(out).iterdir()}


def _encode_texts(pack_dir: Path, input_ids: np.ndarray, mask: np.ndarray, device: str) -> np.ndarray:
    """MiniLM token states (float16), as ``TextEncoder.encode_tokens`` computes them, from the cut model."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    config = BertConfig.from_dict(json.loads((pack_dir / "minilm_config.json").read_text()))
    packed = load_file(pack_dir / "minilm.safetensors")
    state = {k: v.float() for k, v in packed.items() if not k.endswith((".int8", ".scale"))}
    state |= {
        k[:-5]: (v.float() * packed[k[:-5] + ".scale"].float()).flatten(1)
        for k, v in packed.items()
        if k.endswith(".int8")
    }
    model = BertModel(config, add_pooling_layer="pooler.dense.weight" in state)
    model.load_state_dict(state)
    model = model.to(device).eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(input_ids), 512):
            ids = torch.from_numpy(input_ids[s : s + 512].astype(np.int64)).to(device)
            m = torch.from_numpy(mask[s : s + 512]).long().to(device)
            out.append(model(input_ids=ids, attention_mask=m).last_hidden_state.half().cpu().numpy())
    return np.concatenate(out)


RENDER_CHUNK = 2000  # examples per rendering task; each chunk has its own seed, so any pool size draws the same


def _render_chunk(args) -> tuple[np.ndarray, np.ndarray]:
    from tailorgen.generation.train import IMAGE_SIZE
    from tailorgen.world.render import render_looks

    shapes, looks, seed = args
    rng = np.random.default_rng(seed)
    pairs = [render_looks(shape, [tuple(x) for x in look], IMAGE_SIZE, rng) for shape, look in zip(shapes, looks)]
    return tuple(np.stack([p[k] for p in pairs]).transpose(0, 3, 1, 2) for k in (0, 1))


def unpack(pack_dir: Path, device: str, renders: int = 1) -> tuple[dict, dict]:
    """The training set, rebuilt with ``renders`` draws of each example: (data for ``fit_generator``, the meta)."""
    meta = json.loads((pack_dir / "meta.json").read_text())
    seed = meta["config"]["seed"]
    z = dict(np.load(pack_dir / "set.npz"))
    data = {k: z[k] for k in PLAIN if k in z}
    z["image_neighbours_table"] = z["image_embedding_table"]
    for key in TABLES:
        if f"{key}_index" in z:
            data[key] = z[f"{key}_table"][z[f"{key}_index"]]
    # Row r * examples + i is render r of example i (build_training_set's layout): fresh pattern phases
    # and placement for every render after the first.
    shapes = z["silhouettes"][np.concatenate([z["silhouette_index"]] * renders)]
    looks = np.concatenate([data["looks"]] * renders)
    chunks = [
        (shapes[s : s + RENDER_CHUNK], looks[s : s + RENDER_CHUNK], [seed, 77, s // RENDER_CHUNK])
        for s in range(0, len(shapes), RENDER_CHUNK)
    ]
    with ProcessPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        rendered = list(pool.map(_render_chunk, chunks))
    data["source"] = np.concatenate([r[0] for r in rendered])
    data["target"] = np.concatenate([r[1] for r in rendered])
    # After the renderers: worker processes forked from one that holds a CUDA context can break.
    data["text_tokens"] = _encode_texts(pack_dir, z["input_ids"], z["text_mask"], device)
    data["n_personalize"] = int(data["keep_interest"].sum())
    data["counterfactual_targets"] = True
    return data, meta


def train(args) -> None:
    # FAISS is not on the GPU machine, and training never retrieves: the neighbours are in the pack.
    sys.modules.setdefault("faiss", types.ModuleType("faiss"))
    import torch

    from tailorgen.generation.context import IAMGSettings
    from tailorgen.generation.train import GeneratorTrainConfig, fit_generator
    from tailorgen.training import config_from, setup

    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # every step has the same shapes
        torch.backends.cuda.matmul.allow_tf32 = True  # as the convolutions already do; fp32 weights and outputs
    pack_dir = Path(args.pack)
    meta = json.loads((pack_dir / "meta.json").read_text())
    changed = {item.partition("=")[0].strip().replace("-", "_") for item in args.set}
    if changed - set(TRAINING):
        raise SystemExit(f"--set may change only {TRAINING} of a pack, not {sorted(changed - set(TRAINING))}")
    cfg = config_from(GeneratorTrainConfig, overrides=args.set, **meta["config"])
    t0 = time.perf_counter()
    data, meta = unpack(pack_dir, args.device, cfg.renders)
    images, examples = len(data["target"]), len(data["keep_interest"])
    print(f"rebuilt {images} images of {examples} examples in {time.perf_counter() - t0:.0f} s", flush=True)
    device = setup(cfg.seed, cfg.threads, args.device)
    rng = np.random.default_rng(cfg.seed)
    settings = IAMGSettings(**meta["settings"])
    report = fit_generator(
        cfg, data, settings, args.out, rng, meta["prep_seconds"], not args.quiet, device, meta["data_hashes"]
    )
    print(json.dumps({k: report[k] for k in ("examples", "renders", "steps", "train_seconds", "parameters")}))


def compare_sets(original: dict, rebuilt: dict) -> dict:
    """How far a rebuilt set (``unpack``) is from the one it was packed from."""
    out = {k: bool(np.array_equal(original[k], rebuilt[k])) for k in (*TABLES, *PLAIN) if k in original}
    a, b = original["text_tokens"].astype(np.float32), rebuilt["text_tokens"].astype(np.float32)
    m = original["text_mask"]
    cos = (a * b).sum(-1)[m] / (np.linalg.norm(a, axis=-1)[m] * np.linalg.norm(b, axis=-1)[m])
    out["text_tokens_min_cosine"] = float(cos.min())
    out["text_tokens_max_abs_diff"] = float(np.abs(a - b)[m].max())
    for key in ("source", "target"):
        out[f"{key}_mean_pixel"] = [float(original[key].mean()), float(rebuilt[key].mean())]
    return out


def check(args) -> None:
    """Build the pack's set again on the CPU and compare the rebuilt one with it (use a small pack)."""
    from tailorgen.generation.train import GeneratorTrainConfig, prepare_training_set

    meta = json.loads((Path(args.pack) / "meta.json").read_text())
    cfg = GeneratorTrainConfig.from_dict(meta["config"] | {"renders": 1})
    original, *_ = prepare_training_set(cfg, args.work_dir)
    rebuilt, _ = unpack(Path(args.pack), "cpu")
    print(json.dumps(compare_sets(original, rebuilt), indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="build the training set here and write it compactly")
    a.add_argument("--out", required=True)
    a.add_argument("--work-dir", default="runs/work")
    a.add_argument("--set", action="append", default=[], help="GeneratorTrainConfig override key=value")
    a.set_defaults(fn=pack)
    a = sub.add_parser("train", help="rebuild the set from a pack and train (fit_generator)")
    a.add_argument("--pack", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--device", default="cuda")
    a.add_argument("--set", action="append", default=[], help=f"override of the packed config: one of {TRAINING}")
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(fn=train)
    a = sub.add_parser("check", help="compare the set rebuilt from a (small) pack with a fresh CPU build of it")
    a.add_argument("--pack", required=True)
    a.add_argument("--work-dir", default="runs/work")
    a.set_defaults(fn=check)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
