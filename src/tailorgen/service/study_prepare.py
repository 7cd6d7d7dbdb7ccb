"""``tailorgen study prepare``: make every output a study shows, before anyone votes.

For each drawn user and each compared pair of arms, both outputs are made with the real models
(I-AM-G for a catalog item the user has not seen, UniMP's top-1 recommendation, a GNR model's
drawn next item) and saved under the pair's number; which arm is "a" is drawn per pair, so file
names say nothing about the arms. The folder is written whole or not at all.
"""

from __future__ import annotations

import csv
import secrets
from pathlib import Path
from urllib.parse import quote

import numpy as np
from tqdm.auto import tqdm

from tailorgen.common import atomic_dir
from tailorgen.common.manifest import write_run_manifest
from tailorgen.data import Dataset, UnknownIdError
from tailorgen.service.engines import load_engine
from tailorgen.service.study import StudyDefinition, StudyStore

HISTORY_SHOWN = 8  # the last items of the user's history shown beside the two outputs


class ArmMaker:
    """Makes one arm's image for a user; each model loads on first use."""

    def __init__(self, dataset: Dataset, generator=None, unimp=None, gnr=None, seed: int = 0):
        self.dataset, self.seed, self.models = dataset, seed, {}
        self.paths = {"iamg": generator, "unimp": unimp, "gnr": gnr}

    def _model(self, name: str):
        if name not in self.models:
            self.models[name] = load_engine(name, self.dataset, self.paths[name])
        return self.models[name]

    def image(self, arm, user: str, item: str):
        if arm.kind == "iamg":
            return self._model("iamg").generate(user, item, n=1, seed=self.seed, method=arm.method).images[0]
        if arm.kind == "recommend":
            [[(top, _)]] = self._model("unimp").recommend([user], 1)
            return self.dataset.load_image(top)
        return self._model("gnr").generate([user], 1, self.seed)[0]["images"][0]


def draw_users(definition: StudyDefinition, histories: dict[str, list[str]], where: str) -> list[str]:
    if isinstance(definition.users, tuple):
        for u in definition.users:
            if u not in histories:
                raise UnknownIdError("user", u, where)
        return list(definition.users)
    eligible = sorted(u for u, h in histories.items() if len(h) >= 2)
    rng = np.random.default_rng([definition.seed, 1])
    return [eligible[i] for i in sorted(rng.choice(len(eligible), min(definition.users, len(eligible)), replace=False))]


def prepare_study(definition: StudyDefinition, dataset_dir: str | Path, out: str | Path, generator=None, unimp=None,
                  gnr=None, overwrite: bool = False, progress: bool = True) -> dict:  # fmt: skip
    ds = Dataset(dataset_dir)
    histories = ds.user_histories()
    users = draw_users(definition, histories, str(Path(dataset_dir) / "interactions.parquet"))
    arms = {a.name: a for a in definition.arms}
    maker = ArmMaker(ds, generator, unimp, gnr, definition.seed)
    rng = np.random.default_rng([definition.seed, 2])
    catalog = ds.items.column("item_id").to_pylist()
    pairs, made = [], {}
    with atomic_dir(out, overwrite=overwrite, what="study folder") as tmp:
        (tmp / "images").mkdir()
        for user in tqdm(users, desc="study pairs", unit="user", disable=not progress):
            seen = set(histories[user])
            item = next(i for i in rng.permutation(catalog) if i not in seen)  # the item I-AM-G arms personalize
            for first, second in definition.pairs:
                a, b = (second, first) if rng.integers(2) else (first, second)
                pid = len(pairs)
                for side, arm in (("a", a), ("b", b)):
                    if (user, arm) not in made:
                        made[(user, arm)] = maker.image(arms[arm], user, str(item))
                    made[(user, arm)].save(tmp / "images" / f"{pid}-{side}.png")
                pairs.append({"pair_id": pid, "user_id": user, "item_id": str(item), "arm_a": a, "arm_b": b,
                              "image_a": f"{pid}-a.png", "image_b": f"{pid}-b.png",
                              "history": histories[user][-HISTORY_SHOWN:]})  # fmt: skip
        tokens = {p: secrets.token_urlsafe(18) for p in definition.participants}
        StudyStore.create(tmp / "study.sqlite", definition, str(Path(dataset_dir).resolve()), pairs, tokens)
        with open(tmp / "participants.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["participant", "token", "link"])
            for p, t in tokens.items():
                writer.writerow([p, t, f"/study/{definition.id}?participant={quote(p)}&token={quote(t)}"])
        write_run_manifest(tmp, "tailorgen study prepare", definition.as_dict(), definition.seed,
                           {"images": tmp / "images"})  # fmt: skip
    return {"study": definition.id, "users": len(users), "pairs": len(pairs), "participants": len(tokens)}
