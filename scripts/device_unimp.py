"""Train the UniMP benchmark's unified models on a lent GPU machine, with tailorgen's own trainer.

The lent machines have PyTorch and transformers but neither this project's data nor MiniLM's
weights (too large to carry), so ``pack`` (here) writes each benchmark shop's tables (no images)
and its items' texts and embeddings (``ItemContent.save``) with the training configs the
benchmark asks for; ``train`` (there) runs ``unified.train.train_unimp`` on each, a few at a time,
and tars the model folders into parts small enough to come back. ``unpack`` (here) puts them
where ``tailorgen bench unimp --work-dir W`` looks, which reuses a model whose training config
matches its own. Nothing here changes the recipe: on a CPU the same command trains the same models.

    python scripts/device_unimp.py pack --seeds 0 1 --work-dir runs/work --bundle .unimp_bundle
    (device) python scripts/device_unimp.py train --bundle .unimp_bundle --out $OUT --device cuda
    python scripts/device_unimp.py unpack PARTS_DIR --work-dir runs/work
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

TABLES = ("manifest.json", "items.parquet", "interactions.parquet", "queries.parquet")


def pack(
    seeds: list[int], work_dir: Path, bundle: Path, variants: list[str], train: list[str], only: list[str]
) -> None:
    """``train``: the benchmark's ``--train`` overrides; ``only``: model names to keep (all if empty)."""
    import dataclasses

    from tailorgen.data import Dataset
    from tailorgen.evaluation.bench_unimp import UniMPBenchConfig, bench_shop, model_configs
    from tailorgen.unified.content import item_content
    from tailorgen.unified.serialize import TASKS

    jobs = []
    for seed in seeds:
        cfg = UniMPBenchConfig(seed=seed, variants=tuple(variants), train=tuple(train))
        shop = bench_shop(cfg, work_dir, progress=True)
        target = bundle / f"shop-{seed}"
        target.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            if (shop / name).exists():
                shutil.copy2(shop / name, target / name)
        item_content(Dataset(shop), with_images=True).save(target / "content.npz")
        for name, train_cfg in model_configs(cfg, TASKS).items():
            if only and name not in only:
                continue
            jobs.append({"shop": f"shop-{seed}", "name": name, "config": dataclasses.asdict(train_cfg)})
    (bundle / "jobs.json").write_text(json.dumps(jobs, indent=1))
    print(f"{len(jobs)} jobs in {bundle}")


def train_one(bundle: Path, out: Path, job: dict, device: str) -> None:
    from tailorgen.unified.content import ItemContent
    from tailorgen.unified.train import UniMPTrainConfig, train_unimp

    cfg = UniMPTrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in job["config"].items()})
    shop = bundle / job["shop"]
    content = ItemContent.load(shop / "content.npz")
    report = train_unimp(cfg, shop, out / job["shop"] / job["name"], progress=False, device=device, content=content)
    print(job["shop"], job["name"], report["train_seconds"], flush=True)


def train(bundle: Path, out: Path, device: str, parallel: int) -> None:
    jobs = json.loads((bundle / "jobs.json").read_text())
    models = out / "models"
    running, failed = [], []
    for k in range(len(jobs)):
        cmd = [sys.executable, __file__, "one", "--bundle", str(bundle), "--out", str(models), "--job", str(k),
               "--device", device]  # fmt: skip
        running.append((k, subprocess.Popen(cmd)))
        if len(running) >= parallel:
            k0, p = running.pop(0)
            failed += [k0] if p.wait() else []
    failed += [k for k, p in running if p.wait()]
    if failed:  # say so loudly: a lost model would otherwise be retrained on a CPU by the benchmark
        print(f"FAILED jobs: {[(jobs[k]['shop'], jobs[k]['name']) for k in failed]}", flush=True)
    archive = out / "models.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for folder in sorted(models.glob("*/*")):
            if (folder / "training_report.json").exists():
                tar.add(
                    folder,
                    arcname=str(folder.relative_to(models)),
                    filter=lambda t: None if "checkpoints" in t.name else t,
                )
    subprocess.run(["split", "-b", "15m", str(archive), str(out / "models.part-")], check=True)
    archive.unlink()
    shutil.rmtree(models)


def unpack(parts: Path, work_dir: Path) -> None:
    data = b"".join(p.read_bytes() for p in sorted(parts.glob("models.part-*")))
    tmp = work_dir / "models.tar.gz"
    tmp.write_bytes(data)
    with tarfile.open(tmp) as tar:
        tar.extractall(work_dir / "models", filter="data")
    tmp.unlink()
    print(sorted(str(p.relative_to(work_dir)) for p in (work_dir / "models").glob("*/*")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--work-dir", type=Path, default=Path("runs/work"))
    p.add_argument("--bundle", type=Path, default=Path(".unimp_bundle"))
    p.add_argument("--variants", nargs="*", default=["text-only", "semantic"])
    p.add_argument("--train", nargs="*", default=[], help="the benchmark's --train overrides (key=value)")
    p.add_argument("--only", nargs="*", default=[], help="model names to train (default: every one)")
    p = sub.add_parser("train")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--parallel", type=int, default=6)
    p = sub.add_parser("one")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--job", type=int, required=True)
    p.add_argument("--device", default="cuda")
    p = sub.add_parser("unpack")
    p.add_argument("parts", type=Path)
    p.add_argument("--work-dir", type=Path, default=Path("runs/work"))
    a = ap.parse_args()
    if a.cmd == "pack":
        pack(a.seeds, a.work_dir, a.bundle, a.variants, a.train, a.only)
    elif a.cmd == "train":
        train(a.bundle, a.out, a.device, a.parallel)
    elif a.cmd == "one":
        train_one(a.bundle, a.out, json.loads((a.bundle / "jobs.json").read_text())[a.job], a.device)
    else:
        unpack(a.parts, a.work_dir)


if __name__ == "__main__":
    main()
