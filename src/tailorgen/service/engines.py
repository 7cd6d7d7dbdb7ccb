"""The models behind the service, loaded once, in the background, and what each answers.

``Engines.load()`` runs on a thread at start-up, so the server answers health checks (and says
"not ready") while the models load. An engine that cannot load here (say, a unified model trained
on another catalog) is reported with its reason; its endpoints answer 503 with that reason and
the others work.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from tailorgen.common.messages import one_line
from tailorgen.data import Dataset, UnknownIdError
from tailorgen.service.settings import ENGINES, ServiceSettings


class Unavailable(Exception):
    """An engine that is still loading, failed to load, or was not asked for."""

    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def load_engine(name: str, dataset: Dataset, folder: Path | None, device: str = "cpu"):
    """One model over ``dataset``: ``iamg`` (I-AM-G's generator), ``unimp`` or ``gnr``, from
    ``folder`` (None: the shipped one; GNR ships none)."""
    if name == "iamg":
        from tailorgen.generation.iamg import IAMGGenerator

        return IAMGGenerator(dataset, folder)
    if name == "unimp":
        from tailorgen.unified import UniMP

        return UniMP(dataset, folder, device=device)
    from tailorgen.unified.gnr import GNR

    if folder is None:
        raise ValueError("no Generate, Not Recommend model: give --gnr DIR (tailorgen train gnr)")
    return GNR(dataset, folder, device=device)


class Engines:
    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.loaded = threading.Event()
        self._start_afresh()

    def _start_afresh(self) -> None:
        """Read the data; every engine asked for is "loading" until ``load`` has run."""
        self.read_data()
        self.state = {name: ("loading" if name in self.settings.engines else "off") for name in ENGINES}
        self.errors: dict[str, str] = {}
        self.models: dict[str, object] = {}

    def read_data(self) -> None:
        """What the endpoints read without a model: ids, titles, histories, last queries."""
        self.dataset = Dataset(self.settings.dataset)  # a bad dataset stops the server at start, with its error
        items = self.dataset.items.to_pylist()
        self.titles = {r["item_id"]: r.get("title") or "" for r in items}
        self.categories = {r["item_id"]: r.get("category") or "" for r in items}
        self.histories = self.dataset.user_histories()
        self.users = sorted(self.histories)
        self.queries = self._last_queries()

    def _last_queries(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.dataset.queries is not None:
            for q in sorted(self.dataset.queries.to_pylist(), key=lambda q: q["timestamp"]):
                out[q["user_id"]] = q["query"]
        return out

    def load(self) -> None:
        s = self.settings
        folders = {"iamg": s.generator, "unimp": s.unimp, "gnr": s.gnr}
        for name in s.engines:
            try:
                self.models[name] = load_engine(name, self.dataset, folders[name], s.device)
                self.state[name] = "ready"
            except Exception as e:  # noqa: BLE001 - reported per engine; the others still serve
                self.state[name], self.errors[name] = "failed", one_line(e)
        self.loaded.set()

    def reload(self) -> threading.Thread:
        """After the data changed (a user forgotten): read it again and load every model afresh, in
        the background; until then the models' endpoints answer 503 (loading)."""
        self.loaded.clear()
        self._start_afresh()
        thread = threading.Thread(target=self.load, name="tailorgen-reload", daemon=True)
        thread.start()
        return thread

    def model_folders(self) -> list[Path]:
        """Where the served models' training reports are (shipped ones included)."""
        from tailorgen.generation.iamg import default_generator_path
        from tailorgen.unified.unimp import SHIPPED

        s = self.settings
        folders = [s.generator or default_generator_path(), s.unimp or SHIPPED, s.gnr]
        return [Path(f) for f in folders if f is not None]

    def get(self, name: str):
        state = self.state[name]
        if state == "ready":
            return self.models[name]
        if state == "loading":
            raise Unavailable(f"{name} is still loading", retry_after=5)
        if state == "off":
            raise Unavailable(f"{name} is not served by this server (start it with that engine)")
        raise Unavailable(f"{name} failed to load: {self.errors[name]}")

    @property
    def ready(self) -> bool:
        return self.loaded.is_set()

    # What the data says, without a model.
    def check_user(self, user: str) -> str:
        if user not in self.histories:
            raise UnknownIdError("user", user, str(Path(self.dataset.root) / "interactions.parquet"), self.users[:5])
        return user

    def check_item(self, item: str) -> str:
        if item not in self.titles:
            raise UnknownIdError("item", item, str(Path(self.dataset.root) / "items.parquet"))
        return item

    def item_summary(self, item: str) -> dict:
        return {"item_id": item, "title": self.titles[item], "category": self.categories[item]}

    def user_record(self, user: str, max_history: int = 50) -> dict:
        """A user's history (most recent last), last search query and interest tags (from I-AM-G's
        profile, when it is loaded)."""
        history = self.histories[self.check_user(user)]
        record = {
            "user": user,
            "history_length": len(history),
            "history": [self.item_summary(i) for i in history[-max_history:]],
            "last_query": self.queries.get(user),
        }
        if self.state["iamg"] == "ready":
            record["interests"] = self.models["iamg"].context.interest_tags(user)
        return record

    def item_png(self, item: str) -> bytes | None:
        image = self.dataset.load_image(self.check_item(item))
        if image is None:
            return None
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()
