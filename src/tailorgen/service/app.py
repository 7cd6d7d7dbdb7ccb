"""The FastAPI application: thin over the library. Each endpoint checks its input, runs one library
call in a bounded lane (``gate``), and returns the record the CLI prints for the same request, with
URLs where the CLI gives file paths.

Errors: an unknown id answers 404, a value out of range 422, a queue that is full or an engine that
is loading or absent 503 (with Retry-After where waiting helps), a body over the limit 413, a
missing or wrong API token 401 (403 when the server has none).
Every error body is ``{"detail": "one line"}``.
"""

from __future__ import annotations

import secrets
import threading
from contextlib import asynccontextmanager
from functools import cache
from importlib import resources
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from tailorgen import __version__
from tailorgen.common.messages import one_line
from tailorgen.data import DataError, UnknownIdError
from tailorgen.generation.pipeline import DEFAULT_STEPS
from tailorgen.service.engines import Engines, Unavailable
from tailorgen.service.forget import forget_user
from tailorgen.service.gate import Busy, Lane
from tailorgen.service.outputs import Outputs
from tailorgen.service.settings import ServiceSettings
from tailorgen.service.study_routes import add_study_routes, open_studies
from tailorgen.service.work import generate_next, imagine, personalize
from tailorgen.unified.sample import MIN_TEMPERATURE

MAX_ID = 256  # characters of a user or item id in a request
UserId = Annotated[str, Query(min_length=1, max_length=MAX_ID, description="A user id of the dataset.")]
ItemId = Annotated[str, Query(min_length=1, max_length=MAX_ID, description="An item id of the catalog.")]
TopK = Annotated[int, Query(ge=1, le=100, description="How many items, best first.")]
Seed = Field(0, ge=0, le=2**31 - 1, description="Fixes the randomness: the same request gives the same images.")


class PersonalizeRequest(BaseModel):
    """I-AM-G: the item, made for the user (see `tailorgen generate`)."""

    user: str = Field(min_length=1, max_length=MAX_ID)
    item: str = Field(min_length=1, max_length=MAX_ID)
    n: int = Field(4, ge=1, le=8, description="Images.")
    seed: int = Seed
    method: Literal["full", "rewrite", "retrieval", "plain"] = "full"
    steps: int = Field(DEFAULT_STEPS, ge=1, le=100, description="Denoising steps.")
    guidance: float = Field(2.0, ge=0, le=20, description="Classifier-free guidance (1: none).")


class ImagineRequest(BaseModel):
    """UniMP: an item drawn for the user from keywords, as image tokens (see `tailorgen unimp imagine`)."""

    user: str = Field(min_length=1, max_length=MAX_ID)
    keywords: str = Field("", max_length=200, description="E.g. 'dress red stripes'; empty: the history alone.")
    n: int = Field(4, ge=1, le=8)
    seed: int = Seed
    guidance: float = Field(3.0, ge=0, le=20)
    temperature: float = Field(1.0, ge=MIN_TEMPERATURE, le=5)
    top_k: int = Field(256, ge=0, le=4096, description="Codes kept per step (0: all).")
    top_p: float = Field(1.0, gt=0, le=1)


class GenerateNextRequest(BaseModel):
    """Generate, Not Recommend: the user's next item, drawn and named (see `tailorgen gnr generate`)."""

    user: str = Field(min_length=1, max_length=MAX_ID)
    n: int = Field(4, ge=1, le=8)
    seed: int = Seed


def create_app(settings: ServiceSettings) -> FastAPI:
    engines = Engines(settings)
    outputs = Outputs(settings.outputs, settings.keep_outputs)
    images = Lane("image", settings.image_workers, settings.image_queue)
    answers = Lane("answer", settings.answer_workers, settings.answer_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=engines.load, name="tailorgen-load", daemon=True).start()
        yield
        images.close()
        answers.close()

    app = FastAPI(
        title="tailorgen",
        version=__version__,
        description="Personalized multimodal generation: I-AM-G, UniMP and Generate, Not Recommend over one dataset.",
        lifespan=lifespan,
    )
    app.state.engines, app.state.lanes = engines, {"image": images, "answer": answers}
    _add_errors(app)
    _limit_body(app, settings.max_body_bytes)
    _add_health(app, engines)
    _add_data(app, engines)
    _add_answers(app, engines, answers)
    _add_generation(app, engines, outputs, images)
    _add_forget(app, engines, images, token_guard(settings.token))
    _add_pages(app, outputs)
    if settings.studies:
        add_study_routes(app, open_studies(settings.studies, settings.dataset))
    _document_examples(app, engines)
    return app


def _document_examples(app: FastAPI, engines: Engines) -> None:
    """Real ids of this dataset as the OpenAPI examples, so /docs' "Try it out" (and schemathesis)
    starts from requests that answer rather than from ids that do not exist."""
    user = engines.users[0] if engines.users else None
    item = next(iter(engines.titles), None)
    values = {"user": user, "user_id": user, "item": item, "query": engines.queries.get(user) or "dress"}
    values = {k: v for k, v in values.items() if v is not None}
    make_schema = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = make_schema()
            for operation in (op for path in schema["paths"].values() for op in path.values()):
                for param in operation.get("parameters", []):
                    if param["name"] in values:
                        param["schema"]["examples"] = [values[param["name"]]]
            for component in schema.get("components", {}).get("schemas", {}).values():
                for name, prop in component.get("properties", {}).items():
                    if name in values:
                        prop["examples"] = [values[name]]
        return app.openapi_schema

    app.openapi = openapi


def _add_errors(app: FastAPI) -> None:
    def answer(status: int, error: Exception, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"detail": one_line(error)}, status_code=status, headers=headers)

    @app.exception_handler(UnknownIdError)
    async def unknown(_: Request, e: UnknownIdError):
        return answer(404, e)

    @app.exception_handler(Busy)
    async def busy(_: Request, e: Busy):
        return answer(503, e, {"Retry-After": str(e.retry_after)})

    @app.exception_handler(Unavailable)
    async def unavailable(_: Request, e: Unavailable):
        return answer(503, e, {"Retry-After": str(e.retry_after)} if e.retry_after else None)

    @app.exception_handler(DataError)
    async def data_error(_: Request, e: DataError):
        return answer(422, e)

    @app.exception_handler(ValueError)
    async def value_error(_: Request, e: ValueError):
        return answer(422, e)


def _limit_body(app: FastAPI, limit: int) -> None:
    """Refuse a body over ``limit`` bytes before reading it (Content-Length), or as soon as a chunked one passes it."""

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
        if declared is None and request.method in ("POST", "PUT", "PATCH"):
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
            request._body = body  # read once here; the endpoint reads the cached copy
        return await call_next(request)


def token_guard(token: str | None):
    """A dependency that lets a request through only with ``Authorization: Bearer TOKEN``."""

    def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            raise HTTPException(403, "this server has no API token, so it changes no data (start it with --token)")
        if not authorization or not secrets.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong API token (Authorization: Bearer TOKEN)")

    return check


def _add_forget(app: FastAPI, engines: Engines, lane: Lane, guard) -> None:
    @app.delete("/api/users/{user_id:path}", tags=["data"], dependencies=[Depends(guard)])
    async def forget(user_id: str) -> dict:
        """Forget the user: their interactions, reviews, queries, generated outputs and study votes
        go, atomically per store; the models whose training saw them are listed, to be retrained.
        The server then reloads its models from the changed data (/ready says when)."""
        s = engines.settings
        report = await lane.run(forget_user, s.dataset, user_id, outputs=(s.outputs,), studies=s.studies,
                                models=engines.model_folders())  # fmt: skip
        engines.reload()
        return report


def _add_health(app: FastAPI, engines: Engines) -> None:
    @app.get("/health", tags=["health"])
    def health() -> dict:
        """The process answers (whatever the models' state)."""
        return {"status": "ok", "version": __version__}

    @app.get("/ready", tags=["health"])
    def ready() -> JSONResponse:
        """200 once every engine asked for has loaded or failed (with the reason); 503 while they load."""
        lanes = {name: lane.state() for name, lane in app.state.lanes.items()}
        body = {"ready": engines.ready, "engines": engines.state, "errors": engines.errors, "lanes": lanes}
        return JSONResponse(body, status_code=200 if engines.ready else 503)


def _add_data(app: FastAPI, engines: Engines) -> None:
    @app.get("/api/users", tags=["data"])
    def users(offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
        """User ids with a history, sorted."""
        return {"total": len(engines.users), "users": engines.users[offset : offset + limit]}

    @app.get("/api/users/{user_id:path}", tags=["data"])
    def user(user_id: str) -> dict:
        """A user's recent history, last search query and interest tags."""
        if len(user_id) > MAX_ID:
            raise ValueError(f"user id longer than {MAX_ID} characters")
        return engines.user_record(user_id)

    @app.get("/api/item-image", tags=["data"], response_class=Response)
    def item_image(item: ItemId) -> Response:
        """A catalog item's image (PNG)."""
        png = engines.item_png(item)
        if png is None:
            raise HTTPException(404, f"item {item!r} has no image")
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def _add_answers(app: FastAPI, engines: Engines, lane: Lane) -> None:
    from tailorgen.unified.records import explanation_record, rating_record, recommendation_record, search_record

    @app.get("/api/recommend", tags=["UniMP"])
    async def recommend(user: UserId, k: TopK = 10) -> dict:
        """The next items for the user, from the whole catalog, their history left out."""
        model, user = engines.get("unimp"), engines.check_user(user)
        ranked = await lane.run(lambda: model.recommend([user], k)[0])
        return recommendation_record(user, ranked, engines.titles)

    @app.get("/api/search", tags=["UniMP"])
    async def search(user: UserId, query: Annotated[str, Query(min_length=1, max_length=200)], k: TopK = 10) -> dict:
        """Items for the user's query, read in the light of their history."""
        model, user = engines.get("unimp"), engines.check_user(user)
        ranked = await lane.run(model.search, user, query, k)
        return search_record(user, query, ranked, engines.titles)

    @app.get("/api/rate", tags=["UniMP"])
    async def rate(user: UserId, item: ItemId) -> dict:
        """The user's predicted rating of the item: the expected value over 1..5, and the distribution."""
        model, user, item = engines.get("unimp"), engines.check_user(user), engines.check_item(item)
        expected, dist = await lane.run(model.rate, user, item)
        return rating_record(user, item, expected, dist)

    @app.get("/api/explain", tags=["UniMP"])
    async def explain(user: UserId, item: ItemId) -> dict:
        """What the user would say about the item, written by the model."""
        model, user, item = engines.get("unimp"), engines.check_user(user), engines.check_item(item)
        return explanation_record(user, item, await lane.run(model.explain, user, item))


def _add_generation(app: FastAPI, engines: Engines, outputs: Outputs, lane: Lane) -> None:
    checkpoints = cache(lambda: engines.get("iamg").checkpoints())  # hashes of the weights: once, not per request

    @app.post("/api/personalize", tags=["I-AM-G"])
    async def personalize_item(req: PersonalizeRequest) -> dict:
        """I-AM-G: images of the item made for the user, with the tags, rewrite and neighbours behind them."""
        gen = engines.get("iamg")
        engines.check_user(req.user)
        engines.check_item(req.item)
        return await lane.run(personalize, gen, req, outputs, checkpoints())

    @app.post("/api/imagine", tags=["UniMP"])
    async def imagine_item(req: ImagineRequest) -> dict:
        """UniMP: images of an item for the user from keywords, written as image tokens."""
        model = engines.get("unimp")
        engines.check_user(req.user)
        if not model.model.config.image_codebook:
            raise Unavailable(f"the unified model {model.model_dir} was trained without image generation")
        return await lane.run(imagine, model, req, outputs)

    @app.post("/api/generate-next", tags=["Generate, Not Recommend"])
    async def next_items(req: GenerateNextRequest) -> dict:
        """Generate, Not Recommend: the user's next items, drawn and named."""
        model = engines.get("gnr")
        if req.user not in model.histories:
            engines.check_user(req.user)  # an unknown user: 404; a known one without a history: 422
            raise ValueError(f"user {req.user!r} has no training history for the GNR model")
        return await lane.run(generate_next, model, req, outputs)


def _add_pages(app: FastAPI, outputs: Outputs) -> None:
    static = resources.files("tailorgen.service") / "static"

    @app.get("/outputs/{request_id}/{file:path}", tags=["outputs"], response_class=FileResponse)
    def output_file(request_id: str, file: str) -> FileResponse:
        """A file a generation endpoint wrote (its record's URLs)."""
        path = outputs.path(request_id, file)
        if path is None:
            raise HTTPException(404, "no such output")
        return FileResponse(path)

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    @app.get("/static/app.js", include_in_schema=False)
    def script() -> Response:
        return Response((static / "app.js").read_text(encoding="utf-8"), media_type="text/javascript")
