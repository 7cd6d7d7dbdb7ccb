"""The HTTP API on a real server on 127.0.0.1: every endpoint against the library and the CLI, the
limits, the queue, and the engines that cannot load."""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from serving import Running, settings_for

from tailorgen.cli import main
from tailorgen.data import Dataset
from tailorgen.service import ServiceSettings, create_app
from tailorgen.service.outputs import Outputs


def _user_and_item(small_shop):
    ds = Dataset(small_shop)
    histories = ds.user_histories()
    user = sorted(histories)[0]
    item = next(i for i in ds.items.column("item_id").to_pylist() if i not in histories[user])
    return user, item


def _png(client, url) -> np.ndarray:
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", (url, r.status_code)
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def test_health_ready_and_the_openapi_spec_list_every_engine(server):
    assert server.client.get("/health").json()["status"] == "ok"
    ready = server.client.get("/ready").json()
    assert ready["engines"] == {"iamg": "ready", "unimp": "ready", "gnr": "ready"}, ready["errors"]
    paths = server.client.get("/openapi.json").json()["paths"]
    for path in ("/api/personalize", "/api/recommend", "/api/search", "/api/rate", "/api/explain", "/api/imagine",
                 "/api/generate-next", "/api/users", "/api/item-image"):  # fmt: skip
        assert path in paths
    assert server.client.get("/docs").status_code == 200


def test_users_items_and_interests(server, small_shop):
    user, item = _user_and_item(small_shop)
    users = server.client.get("/api/users", params={"limit": 1000}).json()
    assert user in users["users"] and users["total"] == len(Dataset(small_shop).user_histories())
    record = server.client.get(f"/api/users/{user}").json()
    assert record["history"][-1]["item_id"] == Dataset(small_shop).user_histories()[user][-1]
    assert record["interests"] and all(isinstance(t, str) for t in record["interests"])
    assert _png(server.client, f"/api/item-image?item={item}").shape == (32, 32, 3)


@pytest.mark.parametrize(
    ("path", "params", "cli"),
    [
        ("/api/recommend", {"k": 5}, ["recommend", "-k", "5"]),
        ("/api/search", {"query": "red dress", "k": 4}, ["search", "--query", "red dress", "-k", "4"]),
        ("/api/rate", {"item": None}, ["rate", "--item", None]),
        ("/api/explain", {"item": None}, ["explain", "--item", None]),
    ],
)
def test_answers_are_the_records_the_cli_prints(server, small_shop, service_models, path, params, cli):
    user, item = _user_and_item(small_shop)
    params = {k: item if v is None else v for k, v in params.items()} | {"user": user}
    cli = [item if a is None else a for a in cli]
    r = server.client.get(path, params=params)
    assert r.status_code == 200, r.text
    args = ["unimp", *cli[:1], str(small_shop), "--user", user, "--model", str(service_models["unimp"]), *cli[1:]]
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    assert r.json() == json.loads(res.stdout)


def test_personalize_gives_the_cli_images_behind_urls(server, small_shop, service_models, tmp_path):
    user, item = _user_and_item(small_shop)
    body = {"user": user, "item": item, "n": 2, "seed": 3, "steps": 4}
    record = server.client.post("/api/personalize", json=body).json()
    assert record["user_tags"] and record["rewrite"]["text"] and len(record["images"]) == 2
    res = CliRunner().invoke(main, ["generate", str(small_shop), "--user", user, "--item", item, "--n", "2",
                                    "--seed", "3", "--steps", "4", "--generator", str(service_models["generator"]),
                                    "--out", str(tmp_path / "g")])  # fmt: skip
    assert res.exit_code == 0, res.output
    [cli] = [json.loads(line) for line in (tmp_path / "g" / "records.jsonl").read_text().splitlines()]
    for url, path in zip(record["images"], cli["images"], strict=True):
        assert np.array_equal(_png(server.client, url), np.asarray(Image.open(tmp_path / "g" / path).convert("RGB")))
    same = {k: v for k, v in cli.items() if k not in ("images", "seconds")}
    assert {k: record[k] for k in same} == same
    # The request's folder is complete on disk, named by the server's id, never by the user's.
    folder = server.outputs / record["request_id"]
    assert folder.is_dir() and user not in record["request_id"]


def test_imagine_and_generate_next_draw_images(server, small_shop):
    user, _ = _user_and_item(small_shop)
    drawn = server.client.post("/api/imagine", json={"user": user, "keywords": "dress red", "n": 2, "seed": 1}).json()
    assert len(drawn["images"]) == 2 and len(drawn["tokens"]) == 2 and drawn["checkpoints"]["vq"]
    again = server.client.post("/api/imagine", json={"user": user, "keywords": "dress red", "n": 2, "seed": 1}).json()
    assert again["tokens"] == drawn["tokens"] and again["request_id"] != drawn["request_id"]
    assert _png(server.client, drawn["images"][0]).shape == (32, 32, 3)
    made = server.client.post("/api/generate-next", json={"user": user, "n": 2}).json()
    assert len(made["images"]) == 2 and len(made["titles"]) == 2
    assert json.loads((server.outputs / made["request_id"] / "record.json").read_text())["titles"] == made["titles"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "says"),
    [
        ("get", "/api/recommend", {"params": {"user": "nobody"}}, 404, "unknown user 'nobody'"),
        ("get", "/api/users/nobody/../x", {}, 404, "unknown user"),
        ("get", "/api/rate", {"params": {"user": "USER", "item": "no-such"}}, 404, "unknown item 'no-such'"),
        ("get", "/api/recommend", {"params": {"user": "USER", "k": 0}}, 422, "greater than or equal to 1"),
        ("get", "/api/recommend", {"params": {"user": "x" * 300}}, 422, "at most 256"),
        ("get", "/api/search", {"params": {"user": "USER", "query": "  "}}, 422, "query: empty"),
        ("post", "/api/personalize", {"json": {"user": "USER", "item": "ITEM", "n": 50}}, 422, "less than or equal"),
        ("post", "/api/imagine", {"content": b"{" + b" " * 20000 + b"}"}, 413, "request body over"),
        ("get", "/outputs/../../etc/passwd", {}, 404, ""),
        ("get", "/outputs/" + "0" * 32 + "/..%2F..%2Fsecret.json", {}, 404, "no such output"),
    ],
)
def test_bad_requests_get_one_line_and_the_right_status(server, small_shop, method, path, kwargs, status, says):
    user, item = _user_and_item(small_shop)
    kwargs = json.loads(json.dumps(kwargs, default=lambda b: b.decode()).replace("USER", user).replace("ITEM", item))
    if "content" in kwargs:
        kwargs["content"] = kwargs["content"].encode()
    r = getattr(server.client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert says in r.text


def test_a_full_queue_answers_503_with_retry_after(small_shop, service_models, tmp_path):
    settings = settings_for(small_shop, service_models, tmp_path / "out", engines=("unimp",), answer_queue=0)
    user, _ = _user_and_item(small_shop)
    with Running(create_app(settings)) as running:
        running.wait_ready()
        lane, hold = running.app.state.lanes["answer"], threading.Event()
        held = asyncio.run_coroutine_threadsafe(lane.run(hold.wait), running.loop)  # the one worker is busy
        while lane.admitted == 0:
            pass
        r = running.client.get("/api/recommend", params={"user": user})
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1 and "queue is full" in r.json()["detail"]
        hold.set()
        held.result(10)
        assert running.client.get("/api/recommend", params={"user": user}).status_code == 200


def test_an_engine_that_cannot_load_says_why_and_the_others_serve(small_shop, service_models, tmp_path):
    """No GNR model given, and the shipped unified model (trained on the demo shop's catalog)."""
    settings = ServiceSettings(dataset=small_shop, outputs=tmp_path / "out", generator=service_models["generator"])
    user, item = _user_and_item(small_shop)
    with Running(create_app(settings)) as running:
        ready = running.wait_ready()
        assert ready["engines"] == {"iamg": "ready", "unimp": "failed", "gnr": "failed"}
        assert "a unified model answers for the catalog it was trained on" in ready["errors"]["unimp"]
        r = running.client.get("/api/recommend", params={"user": user})
        assert r.status_code == 503 and "unimp failed to load" in r.json()["detail"]
        r = running.client.post("/api/generate-next", json={"user": user})
        assert r.status_code == 503 and "--gnr DIR" in r.json()["detail"]
        body = {"user": user, "item": item, "n": 1, "steps": 2}
        assert running.client.post("/api/personalize", json=body).status_code == 200


def test_outputs_resolve_only_their_own_files(tmp_path):
    outputs = Outputs(tmp_path / "out")
    (tmp_path / "secret.json").write_text("{}")
    rid, _ = outputs.write(lambda folder: (folder / "image_0.png").write_bytes(b"png") and {})
    assert outputs.path(rid, "image_0.png") == tmp_path / "out" / rid / "image_0.png"
    for relative in ("../../secret.json", "image_1.png", "/etc/passwd", "a/../../secret.json", "x.txt"):
        assert outputs.path(rid, relative) is None, relative
    assert outputs.path("../" + rid, "image_0.png") is None


def test_a_chunked_body_is_limited_as_it_streams_and_read_once(server, small_shop):
    """No Content-Length (chunked): the limit applies while the body arrives, and a body under it
    still reaches the endpoint whole."""
    user, _ = _user_and_item(small_shop)

    def chunks(body: bytes):
        for k in range(0, len(body), 1000):
            yield body[k : k + 1000]

    big = b'{"user": "' + b"x" * 20000 + b'"}'
    r = server.client.post("/api/imagine", content=chunks(big), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    small = json.dumps({"user": user, "keywords": "dress", "n": 1}).encode()
    r = server.client.post("/api/imagine", content=chunks(small), headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and len(r.json()["images"]) == 1, r.text


def test_outputs_keep_the_newest_folders(tmp_path):
    outputs = Outputs(tmp_path / "out", keep=3)
    ids = []
    for k in range(5):
        rid, _ = outputs.write(lambda folder: (folder / "image_0.png").write_bytes(b"png") and {})
        os.utime(tmp_path / "out" / rid, ns=(k * 10**9, k * 10**9))  # distinct ages, whatever the clock's grain
        ids.append(rid)
    outputs.prune()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(ids[-3:])
