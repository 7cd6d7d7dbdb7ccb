"""A generate run's folder: written request by request, never mixed with another run's, resumable.

The folder holds ``run.json`` (the run's config: what was asked), one ``USER/ITEM__METHOD/`` folder
per request (its PNGs, then its ``record.json``), and ``records.jsonl`` (every record so far,
rewritten after each batch through a temporary file). A request whose ``record.json`` exists is
done, so an interrupted run keeps what it made, and the same call with ``resume`` finishes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from tailorgen.common import atomic_write_text, read_json, write_json
from tailorgen.generation.iamg import IAMGGenerator, request_folder, save_generation

RUN_FILE = "run.json"


def open_run_folder(out: str | Path, config: dict, overwrite: bool = False, resume: bool = False) -> list[dict]:
    """Make ``out`` ready for a run of ``config``; returns the records already there (``resume``), else none.

    A new folder is created. An existing one is refused unless it is a generate run and either
    ``overwrite`` (it is replaced) or ``resume`` with the same config (it is continued).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder for generated images")
    if out.exists() and any(out.iterdir()):
        run = read_json(out / RUN_FILE) if (out / RUN_FILE).is_file() else None
        if run is None:
            raise FileExistsError(f"{out} is a folder that no generate run wrote; choose another --out")
        if resume:
            if run != json.loads(json.dumps(config)):  # as stored: tuples are lists in JSON
                raise ValueError(f"{out} holds a run of another config; --resume continues only the same run")
            return _done_records(out)
        if not overwrite:
            raise FileExistsError(
                f"{out} holds an earlier run; pass --overwrite to replace it or --resume to finish it"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUN_FILE, config)
    return []


def _done_records(out: Path) -> list[dict]:
    return [read_json(p) for p in sorted(out.glob("*/*/record.json"))]


def generate_into(
    gen: IAMGGenerator,
    pairs: list[tuple[str, str]],
    out: str | Path,
    config: dict,
    n: int,
    seed: int,
    method: str,
    overwrite: bool = False,
    resume: bool = False,
    batch_images: int = 32,
    progress: bool = True,
) -> list[dict]:
    """Generate ``n`` images per (user, item) into ``out``, batch by batch; returns every record of the run."""
    out = Path(out)
    gen.context.check_known(pairs)  # before anything is written
    records = open_run_folder(out, config, overwrite, resume)
    done = {(r["user_id"], r["item_id"]) for r in records}
    todo = [p for p in dict.fromkeys(pairs) if p not in done]
    per_batch = max(1, batch_images // n)  # memory holds one batch of images, whatever the request count
    checkpoints = gen.checkpoints()
    with tqdm(total=len(todo), desc="generate", unit="request", disable=not progress) as bar:
        for s in range(0, len(todo), per_batch):
            for g in gen.generate_batch(todo[s : s + per_batch], n=n, seed=seed, method=method):
                records.append(save_generation(g, out, checkpoints))
            atomic_write_text(out / "records.jsonl", "".join(json.dumps(r) + "\n" for r in records))
            bar.update(len(todo[s : s + per_batch]))
    return records


__all__ = ["RUN_FILE", "generate_into", "open_run_folder", "request_folder"]
