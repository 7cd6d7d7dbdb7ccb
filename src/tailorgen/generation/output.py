"""A generate run's folder: written request by request, never mixed with another run's, resumable.

The folder holds ``run.json`` (the run's config: what was asked), one ``USER/ITEM__METHOD/`` folder
per request (its PNGs, then its ``record.json``), and ``records.jsonl`` (every record so far,
rewritten after each batch through a temporary file). A request whose ``record.json`` exists is
done, so an interrupted run keeps what it made, and the same call with ``resume`` finishes it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from tailorgen.common import atomic_write_text, hash_bytes, read_json, write_json
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


def run_config(gen: IAMGGenerator, pairs: list[tuple[str, str]], **options) -> dict:
    """What a run asked for (``options``: method, n, steps, guidance, rewriter, seed), the generator's sampler,
    settings and checkpoints, and a hash of the requests: ``run.json``, which ``--resume`` must match."""
    config = dict(options) | {"sampler": gen.sampler, "settings": dataclasses.asdict(gen.context.settings)}
    config["pairs"] = len(pairs)
    config["pairs_hash"] = hash_bytes("\n".join(f"{u}\t{i}" for u, i in pairs).encode())
    config["generator"] = gen.checkpoints()
    return config


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
    todo = requests_to_do(pairs, records)
    per_batch = requests_per_batch(n, batch_images)
    checkpoints = gen.checkpoints()
    with tqdm(total=len(todo), desc="generate", unit="request", disable=not progress) as bar:
        for s in range(0, len(todo), per_batch):
            records += generate_requests(gen, todo[s : s + per_batch], out, n, seed, method, checkpoints, per_batch)
            write_records(out, records)
            bar.update(len(todo[s : s + per_batch]))
    return records


def requests_to_do(pairs: list[tuple[str, str]], done: list[dict]) -> list[tuple[str, str]]:
    """The distinct (user, item) pairs of ``pairs``, in order, without those a record says are done."""
    finished = {(r["user_id"], r["item_id"]) for r in done}
    return [p for p in dict.fromkeys(pairs) if p not in finished]


def requests_per_batch(n: int, batch_images: int = 32) -> int:
    """Requests per call of ``generate_batch``: memory holds one batch of images, whatever the request count."""
    return max(1, batch_images // n)


def generate_requests(
    gen: IAMGGenerator,
    pairs: list[tuple[str, str]],
    out: Path,
    n: int,
    seed: int,
    method: str,
    checkpoints: dict[str, str],
    per_batch: int,
) -> list[dict]:
    """Generate and save ``pairs`` (a batch, or a partition of a ``tailorgen.scale`` job), ``per_batch`` at a time.

    A request whose record.json is already there is read, not made again: a partition retried
    after its worker died finishes what is missing and writes nothing twice."""
    records = []
    for s in range(0, len(pairs), per_batch):
        batch = pairs[s : s + per_batch]
        done = {p: out / request_folder(*p, method) / "record.json" for p in batch}
        todo = [p for p in batch if not done[p].is_file()]
        made = (
            {(g.request.user_id, g.request.item_id): g for g in gen.generate_batch(todo, n, seed, method)}
            if todo
            else {}
        )
        records += [save_generation(made[p], out, checkpoints) if p in made else read_json(done[p]) for p in batch]
    return records


def write_records(out: Path, records: list[dict]) -> None:
    """records.jsonl: every record of the run so far, rewritten through a temporary file."""
    atomic_write_text(out / "records.jsonl", "".join(json.dumps(r) + "\n" for r in records))


__all__ = [
    "RUN_FILE",
    "generate_into",
    "generate_requests",
    "open_run_folder",
    "request_folder",
    "requests_per_batch",
    "requests_to_do",
    "run_config",
    "write_records",
]
