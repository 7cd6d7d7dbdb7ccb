"""Forgetting a user everywhere tailorgen stored something about them, atomically per store.

- the dataset: interactions (ratings, reviews), queries, a shop's hidden taste, the import report's
  mentions; the splits, made from the old interactions, are dropped. The new dataset is built
  beside the old one (unchanged files hard-linked, the changed ones rewritten) and swapped in
  whole, so a crash leaves the old one as it was;
- generated outputs: every request folder whose record names the user (service outputs), and
  the user's folders and lines in a `tailorgen generate` run;
- studies: the user's pairs, their votes and images;
- models: those whose training report shows the dataset's data as it was, so with the user in
  it, are listed to be retrained (they are not changed: a model cannot unlearn by deletion).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tailorgen.common import atomic_dir, atomic_write_text, read_json, write_json
from tailorgen.data import Dataset, UnknownIdError
from tailorgen.data.forget import tables_without_user
from tailorgen.data.store import is_tailorgen_dataset
from tailorgen.service.study import StudyStore
from tailorgen.world.forget import truth_without_user


def _link_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` into the empty folder ``dst`` as hard links (the forget rewrites files by
    rename, never in place, so the old dataset's files are never touched); a copy where links fail."""
    for folder, dirs, files in os.walk(src):
        rel = Path(folder).relative_to(src)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(folder) / name, dst / rel / name)
            except OSError:
                shutil.copy2(Path(folder) / name, dst / rel / name)


def _names_user(record: dict, user: str) -> bool:
    return record.get("user") == user or record.get("user_id") == user


def forget_outputs(root: Path, user: str) -> list[str]:
    """Remove every folder under ``root`` whose records name ``user`` (a service's request folders,
    a `tailorgen generate` run's USER folders) and the user's lines of a run's records.jsonl; the
    folders' names."""
    root, removed = Path(root), []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        records = (read_json(p) for p in folder.rglob("*.json"))
        if any(isinstance(r, dict) and _names_user(r, user) for r in records):
            shutil.rmtree(folder)
            removed.append(folder.name)
    lines_file = root / "records.jsonl"
    if lines_file.is_file():
        lines = lines_file.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not _names_user(json.loads(line), user)]
        if len(kept) != len(lines):
            atomic_write_text(lines_file, "".join(kept))
    return removed


def forget_in_study(folder: Path, user: str) -> dict:
    done = StudyStore(Path(folder) / "study.sqlite").forget_user(user)
    for pid in done["pairs"]:
        for side in "ab":
            (Path(folder) / "images" / f"{pid}-{side}.png").unlink(missing_ok=True)
    manifest = Path(folder) / "manifest.json"
    if manifest.is_file() and user in manifest.read_text(encoding="utf-8"):
        record = read_json(manifest)  # an explicit user list in the recorded config
        users = record.get("config", {}).get("users")
        if isinstance(users, list):
            record["config"]["users"] = [u for u in users if u != user]
            write_json(manifest, record)
    return {"pairs": len(done["pairs"]), "votes": done["votes"]}


def trained_on(model_roots, hashes: dict) -> list[str]:
    """Model folders (any depth under ``model_roots``) whose training report names these data hashes."""
    found = []
    for root in map(Path, model_roots):
        for report in sorted(root.rglob("training_report.json")):
            data = read_json(report).get("data", {})
            if data.get("dataset", {}).get("hashes", {}).get("interactions.parquet") == hashes.get(
                "interactions.parquet"
            ):
                found.append(str(report.parent))
    return found


def forget_user(dataset: str | Path, user: str, outputs=(), studies=(), models=()) -> dict:
    """Forget ``user`` in ``dataset`` and in the given output folders, studies and model folders."""
    dataset = Path(dataset)
    ds = Dataset(dataset)
    users = set(ds.interactions.column("user_id").to_pylist())
    if ds.queries is not None:
        users |= set(ds.queries.column("user_id").to_pylist())
    if user not in users:
        raise UnknownIdError("user", user, str(dataset / "interactions.parquet"))
    to_retrain = trained_on(models, ds.manifest.get("files", {}))
    with atomic_dir(dataset, overwrite=True, replaceable=is_tailorgen_dataset, what="dataset") as tmp:
        _link_tree(dataset, tmp)
        report = tables_without_user(tmp, user)
        report["ground_truth"] = truth_without_user(tmp, user)
    report["outputs_removed"] = {str(o): forget_outputs(Path(o), user) for o in outputs}
    report["studies"] = {str(s): forget_in_study(Path(s), user) for s in studies}
    report["models_to_retrain"] = to_retrain
    return {"user": user, "dataset": str(dataset)} | report
