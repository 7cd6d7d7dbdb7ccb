"""Forgetting a user: over HTTP (token-guarded) and from the CLI, nothing on disk names them after,
other users keep everything, and a forget that fails half-way leaves the dataset as it was."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from serving import Running, settings_for

from tailorgen.cli import main
from tailorgen.data import Dataset
from tailorgen.service import create_app
from tailorgen.service.study import StudyDefinition, StudyStore
from tailorgen.service.study_prepare import prepare_study

TOKEN = "a-test-token-of-some-length"


def mentions(root: Path, user: str) -> list[str]:
    """Every file under ``root`` that holds ``user`` as a value: Parquet and npz decoded, SQLite
    queried and read raw, anything else but images read as bytes."""
    found = []
    for path in (p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            hit = any(user in json.dumps(v) for c in table.column_names for v in table.column(c).to_pylist())
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                hit = any(z[k].dtype.kind == "U" and user in z[k].tolist() for k in z.files)
        elif path.suffix == ".png":
            continue
        elif path.suffix == ".sqlite":
            db = sqlite3.connect(path)
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            hit = any(user in json.dumps(row) for t in tables for row in db.execute(f"SELECT * FROM {t}"))
            db.close()
            hit = hit or user.encode() in path.read_bytes()
        else:
            hit = user.encode() in path.read_bytes()
        if hit:
            found.append(str(path.relative_to(root)))
    return found


@pytest.fixture
def shop_copy(small_shop, tmp_path):
    copy = tmp_path / "shop"
    shutil.copytree(small_shop, copy)
    return copy


def _two_users(shop: Path) -> tuple[str, str]:
    queries = set(Dataset(shop).queries.column("user_id").to_pylist())
    users = sorted(u for u in Dataset(shop).user_histories() if u in queries)
    return users[1], users[2]


def test_delete_user_forgets_them_everywhere_and_keeps_the_others(shop_copy, service_models, tmp_path):
    gone, kept = _two_users(shop_copy)
    arms = [{"name": "x", "kind": "iamg"}, {"name": "y", "kind": "recommend"}]
    definition = StudyDefinition.from_dict({"id": "f", "question": "Which?", "users": [gone, kept],
                                            "participants": ["p"], "arms": arms, "pairs": [["x", "y"]]})  # fmt: skip
    study = tmp_path / "study"
    prepare_study(definition, shop_copy, study, service_models["generator"], service_models["unimp"], progress=False)
    store = StudyStore(study / "study.sqlite")
    rng = np.random.default_rng(0)
    for _ in range(2):
        pair = store.next_pair("p", rng)
        store.vote("p", pair["pair_id"], pair["order"], "left")
    settings = settings_for(shop_copy, service_models, tmp_path / "out", studies=(study,), token=TOKEN)
    with Running(create_app(settings)) as running:
        running.wait_ready()
        c = running.client
        item = Dataset(shop_copy).items.column("item_id")[0].as_py()
        for user in (gone, kept):
            assert c.post("/api/personalize", json={"user": user, "item": item, "n": 1, "steps": 2}).status_code == 200
        assert c.post("/api/imagine", json={"user": gone, "n": 1}).status_code == 200
        assert c.delete(f"/api/users/{gone}").status_code == 401
        assert (
            c.delete(f"/api/users/{gone}", headers={"Authorization": "Bearer wrong-token-xxxxxxxx"}).status_code == 401
        )
        r = c.delete(f"/api/users/{gone}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["removed"]["interactions"] > 0 and report["removed"]["queries"] > 0 and report["ground_truth"]
        assert len(report["outputs_removed"][str(tmp_path / "out")]) == 2
        assert report["studies"][str(study)] == {"pairs": 1, "votes": 1}
        assert str(service_models["unimp"]) in report["models_to_retrain"]
        time.sleep(0.2)
        running.wait_ready()
        assert c.get(f"/api/users/{gone}").status_code == 404
        assert c.get("/api/recommend", params={"user": gone}).status_code == 404
        assert c.get("/api/recommend", params={"user": kept}).status_code == 200
    for root in (shop_copy, tmp_path / "out", study):
        assert mentions(root, gone) == [], root
    assert mentions(shop_copy, kept) and mentions(tmp_path / "out", kept) and mentions(study, kept)
    assert len(StudyStore(study / "study.sqlite").votes()) == 1


def test_without_a_token_the_server_changes_nothing(shop_copy, service_models, tmp_path):
    gone, _ = _two_users(shop_copy)
    with Running(create_app(settings_for(shop_copy, service_models, tmp_path / "out", engines=()))) as running:
        r = running.client.delete(f"/api/users/{gone}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403 and "--token" in r.json()["detail"]
    assert gone in Dataset(shop_copy).user_histories()


def test_a_forget_that_fails_half_way_leaves_the_dataset_as_it_was(shop_copy, monkeypatch):
    import tailorgen.service.forget as forget

    gone, _ = _two_users(shop_copy)
    before = {p.relative_to(shop_copy): p.read_bytes() for p in shop_copy.rglob("*") if p.is_file()}

    def crash(root, user):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(forget, "truth_without_user", crash)  # after the tables are rewritten in the copy
    with pytest.raises(OSError, match="disk full"):
        forget.forget_user(shop_copy, gone)
    after = {p.relative_to(shop_copy): p.read_bytes() for p in shop_copy.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in shop_copy.parent.iterdir()] == ["shop"]  # no partial copy left beside it


def test_cli_forget_covers_a_generate_run_and_refuses_an_unknown_user(shop_copy, service_models, tmp_path):
    gone, kept = _two_users(shop_copy)
    item = Dataset(shop_copy).items.column("item_id")[0].as_py()
    (tmp_path / "pairs.csv").write_text(f"user_id,item_id\n{gone},{item}\n{kept},{item}\n")
    res = CliRunner().invoke(main, ["generate", str(shop_copy), "--requests", str(tmp_path / "pairs.csv"), "--n", "1",
                                    "--steps", "2", "--generator", str(service_models["generator"]),
                                    "--out", str(tmp_path / "run")])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["forget", str(shop_copy), "--user", gone, "--outputs", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["removed"]["interactions"] > 0
    assert mentions(shop_copy, gone) == [] and gone not in Dataset(shop_copy).user_histories()
    left = [json.loads(line)["user_id"] for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert left == [kept] and (tmp_path / "run" / kept).is_dir() and not (tmp_path / "run" / gone).exists()
    assert mentions(tmp_path / "run", gone) == []
    assert kept in Dataset(shop_copy).user_histories()
    res = CliRunner().invoke(main, ["forget", str(shop_copy), "--user", gone])
    assert res.exit_code == 2 and f"unknown user '{gone}'" in res.output
