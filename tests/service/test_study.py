"""The human preference study: the definition, preparing it with the real models, voting over HTTP
and in the browser, the results, and votes that survive kill -9 of the server."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from serving import Running, settings_for

from tailorgen.service import create_app
from tailorgen.service.study import StudyDefinition, StudyStore
from tailorgen.service.study_prepare import prepare_study
from tailorgen.service.study_results import bradley_terry, study_results

STUDY = {
    "id": "tiny",
    "question": "Which would this shopper rather buy?",
    "users": 3,
    "participants": ["p1", "p2", "p3"],
    "arms": [
        {"name": "personalized", "kind": "iamg"},
        {"name": "plain", "kind": "iamg", "method": "plain"},
        {"name": "recommended", "kind": "recommend"},
        {"name": "generated", "kind": "generate"},
    ],  # fmt: skip
    "pairs": [["personalized", "plain"], ["generated", "recommended"]],
}


@pytest.fixture(scope="module")
def study_dir(small_shop, service_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "tiny"
    definition = StudyDefinition.from_dict(STUDY)
    summary = prepare_study(definition, small_shop, out, service_models["generator"], service_models["unimp"],
                            service_models["gnr"], progress=False)  # fmt: skip
    assert summary == {"study": "tiny", "users": 3, "pairs": 6, "participants": 3}
    return out


def _links(study_dir: Path) -> dict[str, dict]:
    with open(study_dir / "participants.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["participant"]: {"token": r["token"], "link": r["link"]} for r in rows}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"id": "../x"}, "id: '../x' is not allowed"),
        ({"arms": [{"name": "a", "kind": "paint"}, {"name": "b", "kind": "iamg"}]}, "kind 'paint' is not allowed"),
        ({"pairs": [["personalized", "nobody"]]}, "pairs:"),
        ({"participants": ["p1", "p1"]}, "participants:"),
        ({"users": 0}, "users: 0 is not allowed"),
    ],
)
def test_a_bad_study_file_names_the_key(change, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        StudyDefinition.from_dict(STUDY | change, "study.toml")


def test_prepare_makes_every_image_blind_and_the_links(study_dir):
    store = StudyStore(study_dir / "study.sqlite")
    info = store.info()
    assert info["pairs"] == 6 and info["definition"]["id"] == "tiny"
    for pid in range(6):
        for side in "ab":
            assert (study_dir / "images" / f"{pid}-{side}.png").is_file()
    links = _links(study_dir)
    assert set(links) == {"p1", "p2", "p3"} and len({v["token"] for v in links.values()}) == 3
    assert all(store.check_participant(p, v["token"]) and not store.check_participant(p, "x") for p, v in links.items())


def test_bradley_terry_recovers_known_strengths():
    rng = np.random.default_rng(0)
    truth = {"a": 1.0, "b": 0.0, "c": -1.0}
    outcomes = []
    for _ in range(3000):
        i, j = rng.choice(list(truth), 2, replace=False)
        p = 1 / (1 + np.exp(truth[j] - truth[i]))
        outcomes.append((i, j) if rng.random() < p else (j, i))
    scores = bradley_terry(outcomes, list(truth))
    assert np.allclose(scores, [1.0, 0.0, -1.0], atol=0.12), scores


def test_results_count_ties_apart_and_give_intervals():
    votes = [{"left_arm": "x", "right_arm": "y", "choice": c} for c in ["left"] * 8 + ["right"] * 2 + ["neither"] * 3]
    r = study_results(votes, ["x", "y"], [("x", "y")])
    [pair] = r["pairs"]
    assert (pair["decisive"], pair["a_wins"], pair["neither"], r["neither"]) == (10, 8, 3, 3)
    lo, hi = pair["a_win_rate_ci"]
    assert lo < 0.8 < hi and r["bradley_terry"]["x"] > 0 > r["bradley_terry"]["y"]


def test_a_participant_votes_on_every_pair_in_the_browser(browser, small_shop, service_models, study_dir, tmp_path):
    settings = settings_for(small_shop, service_models, tmp_path / "out", engines=(), studies=(study_dir,))
    links = _links(study_dir)
    with Running(create_app(settings)) as running:
        running.wait_ready()
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(running.url + links["p1"]["link"])
        for k in range(6):
            page.wait_for_function(f"document.querySelector('#progress').textContent.startsWith('{k} done')")
            page.wait_for_function(  # every image of the pair and of the history decodes
                "[...document.querySelectorAll('.choices img, #history img')].every(i => i.complete && i.naturalWidth)"
            )
            page.click(["#left", "#right", "#neither"][k % 3])
        page.wait_for_selector("body[data-done='1']")
        assert "All done" in page.inner_text("#progress") and not errors, errors
        page.goto(running.url + "/study/tiny/results")
        assert "6 votes, 2 of them 'neither'" in page.inner_text("body")
        page.close()
        c = running.client
        token = links["p1"]["token"]
        again = {"participant": "p1", "token": token, "pair_id": 0, "order": "ab", "choice": "left"}
        assert c.post("/api/studies/tiny/votes", json=again).status_code == 409
        assert c.post("/api/studies/tiny/votes", json=again | {"participant": "p2"}).status_code == 403
        assert c.get("/api/studies/tiny/next", params={"participant": "p1", "token": "nope"}).status_code == 403
        rows = [
            r
            for r in csv.DictReader(c.get("/api/studies/tiny/votes.csv").text.splitlines())
            if r["participant"] == "p1"
        ]
        assert len(rows) == 6
        assert {r["left_arm"] for r in rows} | {r["right_arm"] for r in rows} == {a["name"] for a in STUDY["arms"]}
        results = c.get("/api/studies/tiny/results").json()
        assert results["votes"] >= 6 and sum(p["decisive"] + p["neither"] for p in results["pairs"]) == results["votes"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kill_9_during_voting_loses_no_answered_vote(small_shop, study_dir, tmp_path):
    """Three participants vote as fast as they can; the server is killed mid-way; every vote it
    answered 201 is in the database afterwards, and the database opens cleanly."""
    port = _free_port()
    cmd = [str(Path(sys.executable).parent / "tailorgen"), "serve", str(small_shop), "--port", str(port),
           "--engines", "", "--study", str(study_dir), "--outputs", str(tmp_path / "out")]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url, links, answered, lock = f"http://127.0.0.1:{port}", _links(study_dir), [], threading.Lock()
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        start_votes = len(StudyStore(study_dir / "study.sqlite").votes())

        def participant(name: str) -> None:
            token = links[name]["token"]
            with httpx.Client(base_url=url, timeout=10) as c:
                while True:
                    try:
                        pair = c.get("/api/studies/tiny/next", params={"participant": name, "token": token}).json()
                        if pair.get("done"):
                            return
                        body = {"participant": name, "token": token, "pair_id": pair["pair_id"],
                                "order": pair["order"], "choice": "left"}  # fmt: skip
                        r = c.post("/api/studies/tiny/votes", json=body)
                    except httpx.TransportError:
                        return  # the server is gone
                    if r.status_code == 201:
                        with lock:
                            answered.append(r.json()["vote_id"])

        threads = [threading.Thread(target=participant, args=(p,)) for p in ("p2", "p3")]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(answered) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(server.pid, signal.SIGKILL)
        for t in threads:
            t.join(20)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
    stored = {v["vote_id"] for v in StudyStore(study_dir / "study.sqlite").votes()}
    assert answered and set(answered) <= stored, (answered, stored)
    assert len(stored) >= start_votes + len(answered)
    assert parse_qs(urlparse(links["p2"]["link"]).query)["participant"] == ["p2"]


def test_the_shipped_study_files_parse():
    files = sorted((Path(__file__).parents[2] / "configs").glob("study-*.toml"))
    assert files
    for path in files:
        definition = StudyDefinition.read(path)
        assert definition.pairs and len(definition.participants) >= 2
