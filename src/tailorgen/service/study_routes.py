"""The study's endpoints and pages: a participant's next pair and vote, the results and the CSV."""

from __future__ import annotations

import html
import re
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field

from tailorgen.service.study import CHOICES, PLAIN, StudyStore
from tailorgen.service.study_results import study_results

IMAGE = re.compile(r"\d{1,7}-[ab]\.png")
Name = Annotated[str, Query(min_length=1, max_length=64)]
Token = Annotated[str, Query(min_length=1, max_length=128)]


class Vote(BaseModel):
    participant: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=128)
    pair_id: int = Field(ge=0, le=10_000_000)
    order: str = Field(pattern="^(ab|ba)$", description="Which image was left: 'ab' (a left) or 'ba'.")
    choice: str = Field(pattern=f"^({'|'.join(CHOICES)})$")


def open_studies(folders, dataset: Path) -> dict[str, tuple[StudyStore, Path]]:
    """Each study folder's store by study id; a study made on another dataset is refused."""
    studies = {}
    for folder in map(Path, folders):
        store = StudyStore(folder / "study.sqlite")
        info = store.info()
        if Path(info["dataset"]).resolve() != dataset.resolve():
            raise ValueError(f"{folder}: study {info['id']!r} was made on {info['dataset']}, not on {dataset}")
        studies[info["id"]] = (store, folder)
    return studies


def add_study_routes(app: FastAPI, studies: dict[str, tuple[StudyStore, Path]]) -> None:
    static = resources.files("tailorgen.service") / "static"

    def study(study_id: str) -> tuple[StudyStore, Path]:
        if not PLAIN.fullmatch(study_id) or study_id not in studies:
            raise HTTPException(404, f"no study {study_id!r} on this server")
        return studies[study_id]

    def participant(store: StudyStore, name: str, token: str) -> str:
        if not store.check_participant(name, token):
            raise HTTPException(403, "unknown participant or wrong token (use the link from participants.csv)")
        return name

    @app.get("/study/{study_id}", include_in_schema=False, response_class=HTMLResponse)
    def page(study_id: str) -> HTMLResponse:
        study(study_id)
        return HTMLResponse((static / "study.html").read_text(encoding="utf-8"))

    @app.get("/static/study.js", include_in_schema=False)
    def script() -> Response:
        return Response((static / "study.js").read_text(encoding="utf-8"), media_type="text/javascript")

    @app.get("/api/studies/{study_id}/next", tags=["study"])
    def next_pair(study_id: str, participant_id: Annotated[str, Query(alias="participant", max_length=64)],
                  token: Token) -> dict:  # fmt: skip
        """The participant's next pair (random among those they have not voted on), blind and in random order."""
        store, _ = study(study_id)
        participant(store, participant_id, token)
        info = store.info()
        pair = store.next_pair(participant_id, np.random.default_rng())
        if pair is None:
            return {"question": info["question"], "done": True}
        pair["left"], pair["right"] = (f"/study-images/{study_id}/{pair[s]}" for s in ("left", "right"))
        return pair | {"question": info["question"], "done": False}

    @app.post("/api/studies/{study_id}/votes", tags=["study"], status_code=201)
    def vote(study_id: str, body: Vote) -> dict:
        """One vote, committed to SQLite before the answer (a participant votes once per pair)."""
        store, _ = study(study_id)
        participant(store, body.participant, body.token)
        try:
            return {"vote_id": store.vote(body.participant, body.pair_id, body.order, body.choice)}
        except LookupError as e:
            raise HTTPException(404, str(e)) from None
        except FileExistsError as e:
            raise HTTPException(409, str(e)) from None

    @app.get("/api/studies/{study_id}/results", tags=["study"])
    def results(study_id: str) -> dict:
        """Win rates per compared pair and Bradley-Terry scores, with 95% bootstrap intervals."""
        store, _ = study(study_id)
        d = store.info()["definition"]
        return study_results(store.votes(), [a["name"] for a in d["arms"]], [tuple(p) for p in d["pairs"]])

    @app.get("/api/studies/{study_id}/votes.csv", tags=["study"], response_class=Response)
    def votes_csv(study_id: str) -> Response:
        """Every vote: participant, pair, user, the arms left and right as shown, the choice, the time."""
        store, _ = study(study_id)
        return Response(store.votes_csv(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{study_id}-votes.csv"'})  # fmt: skip

    @app.get("/study/{study_id}/results", include_in_schema=False, response_class=HTMLResponse)
    def results_page(study_id: str) -> HTMLResponse:
        return HTMLResponse(render_results(study_id, results(study_id)))

    @app.get("/study-images/{study_id}/{name}", include_in_schema=False, response_class=FileResponse)
    def image(study_id: str, name: str) -> FileResponse:
        _, folder = study(study_id)
        if not IMAGE.fullmatch(name) or not (folder / "images" / name).is_file():
            raise HTTPException(404, "no such image")
        return FileResponse(folder / "images" / name, media_type="image/png")


def render_results(study_id: str, r: dict) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(p['a'])}</td><td>{e(p['b'])}</td><td>{p['decisive']}</td><td>{p['neither']}</td>"
        + (f"<td>{p['a_win_rate']:.2f} [{p['a_win_rate_ci'][0]:.2f}, {p['a_win_rate_ci'][1]:.2f}]</td>"
           if "a_win_rate" in p else "<td>-</td>") + "</tr>"
        for p in r["pairs"]
    )  # fmt: skip
    ci = r.get("bradley_terry_ci", {})

    def interval(a: str) -> str:
        return f"[{ci[a][0]:.2f}, {ci[a][1]:.2f}]" if a in ci else "-"

    bt = "".join(
        f"<tr><td>{e(a)}</td><td>{s:+.2f}</td><td>{interval(a)}</td></tr>"
        for a, s in sorted(r["bradley_terry"].items(), key=lambda kv: -kv[1])
    )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>study {e(study_id)}: results</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}td,th{padding:3px 10px;border-bottom:1px solid #ddd}"
        "</style></head><body>"
        f"<h1>study {e(study_id)}: results</h1><p>{r['votes']} votes, {r['neither']} of them 'neither'. "
        f"<a href='/api/studies/{e(study_id)}/votes.csv'>votes (CSV)</a></p>"
        "<h2>win rate of a over b (decisive votes; 95% bootstrap interval)</h2><table id='pairs'>"
        f"<tr><th>a</th><th>b</th><th>decisive</th><th>neither</th><th>a wins</th></tr>{rows}</table>"
        "<h2>Bradley-Terry scores (centred; 95% bootstrap interval)</h2><table id='bt'>"
        f"<tr><th>arm</th><th>score</th><th>interval</th></tr>{bt}</table></body></html>"
    )
