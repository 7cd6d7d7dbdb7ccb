"""Build the simulated shop: catalog, images, texts, users and their behaviour.

The output is an ordinary tailorgen dataset (exactly what `tailorgen data import` writes)
plus a truth/ folder with the hidden ground truth, which the dataset loader never reads.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from tqdm.auto import tqdm

from tailorgen.common import read_json, write_json
from tailorgen.data import DatasetWriter
from tailorgen.world.attributes import (
    BRANDS,
    CATEGORIES,
    CATEGORY_PRICE,
    COLOURS,
    NO_SECONDARY,
    PATTERNS,
    PREFERENCE_ATTRIBUTES,
    STYLES,
)
from tailorgen.world.oracle import save_taste
from tailorgen.world.render import render_item
from tailorgen.world.silhouettes import SilhouetteBank
from tailorgen.world.text import item_text, query_text, review_text
from tailorgen.world.users import UserTaste, sample_taste, utility_matrix

DAY = 86_400
# rating = offset + slope * z, z = how far the chosen item stands above the user's average item;
# tuned so ratings spread like public review data (mostly 4-5, some 1-3).
RATING_OFFSET, RATING_SLOPE = 2.7, 0.7


# Bumped whenever the same config would render or simulate a different shop, so cached shops
# (ensure_shop) are rebuilt. 2: the primary colour dominates every pattern; only unambiguous
# Fashion-MNIST silhouettes are used.
WORLD_VERSION = 2


@dataclass
class WorldConfig:
    n_items: int = 2000
    n_users: int = 300
    seed: int = 0
    image_size: int = 32
    mean_history: float = 20.0
    min_history: int = 5
    max_history: int = 200
    candidates_per_step: int = 200  # items a user is shown before choosing one
    choice_temperature: float = 0.7  # scale of the Gumbel noise on choices
    p_text_omits_colour: float = 0.25  # share of items whose text never names the colour
    p_text_omits_pattern: float = 0.25  # ... never names the pattern or second colour
    p_review: float = 0.6
    queries_per_user: float = 1.0
    horizon_days: int = 365
    use_fashion_mnist: bool = True

    def __post_init__(self):
        if self.n_items < 20 or self.n_users < 1:
            raise ValueError("a shop needs at least 20 items and 1 user")
        if self.image_size < 8:
            raise ValueError("image_size must be at least 8 pixels")


def _sample_item_attributes(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Attribute value indices per item, following each brand's tendencies."""
    n = cfg.n_items
    n_col = len(COLOURS)
    brand = rng.integers(len(BRANDS), size=n)

    def favouring(favourites, values, strength, size):
        """Sample value indices with ``strength`` of the mass spread over the brand's favourites."""
        p = np.full(len(values), (1 - strength) / len(values))
        for f in favourites:
            p[list(values).index(f)] += strength / len(favourites)
        return rng.choice(len(values), size=size, p=p)

    cat, col, pat = (np.empty(n, np.int64) for _ in range(3))
    for b, br in enumerate(BRANDS):
        rows = np.flatnonzero(brand == b)
        cat[rows] = favouring(br.categories, CATEGORIES, 0.5, len(rows))
        col[rows] = favouring(br.palette, COLOURS, 0.45, len(rows))
        pat[rows] = favouring(br.patterns, PATTERNS, 0.45, len(rows))
    # Second colour: any colour but the first; solid items have none.
    sec = (col + rng.integers(1, n_col, size=n)) % n_col
    sec[pat == PATTERNS.index("solid")] = n_col  # index of NO_SECONDARY
    level = np.array([b.price_level for b in BRANDS])[brand]
    base = np.array([CATEGORY_PRICE[c] for c in CATEGORIES])[cat]
    price = np.round(base * level * rng.lognormal(0, 0.25, n)) - 0.01
    return {
        "category": cat,
        "colour": col,
        "pattern": pat,
        "secondary_colour": sec,
        "brand": brand,
        "price": np.maximum(price, 0.99),
        "log_price_ratio": np.log(np.maximum(price, 0.99) / base),
        "popularity": rng.normal(0, 1, n),
    }


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _review(cfg, taste: UserTaste, values, u: int, s: float, item: int, rating: int, rng) -> str | None:
    """A review for ``p_review`` of the choices, citing the attributes that made the user like or
    dislike ``item`` at time ``s`` (a share of the horizon)."""
    if rng.random() >= cfg.p_review:
        return None
    contrib = []
    for a_i, a in enumerate(PREFERENCE_ATTRIBUTES):
        v = int(values[a][item])
        if a == "secondary_colour" and v == len(COLOURS):
            continue
        w = taste.weights_at(a, np.array([u]), np.array([s]))[0, v]
        contrib.append((float(taste.importance[u, a_i] * w), a, PREFERENCE_ATTRIBUTES[a][v]))
    contrib.sort(reverse=True)
    liked = [(a, v) for c, a, v in contrib if c > 0.5]
    disliked = [(a, v) for c, a, v in reversed(contrib) if c < -0.1]
    return review_text(rating, liked, disliked, rng)


def _simulate_interactions(cfg, taste: UserTaste, attrs, rng, item_ids, horizon, progress):
    """Each user's time-ordered choices, ratings and reviews."""
    n_items = cfg.n_items
    values = {a: attrs[a] for a in PREFERENCE_ATTRIBUTES}
    rows = []
    # Ratings compare an item's utility with what the user feels about the catalog at large.
    ref_items = rng.choice(n_items, size=min(500, n_items), replace=False)
    p = 1.0 / max(cfg.mean_history - cfg.min_history, 1.0)
    lengths = np.minimum(cfg.min_history + rng.geometric(p, cfg.n_users) - 1, min(cfg.max_history, n_items // 2))
    for u in tqdm(range(cfg.n_users), desc="users", unit="user", disable=not progress):
        n = int(lengths[u])
        start = rng.uniform(0, 0.5) * horizon
        end = rng.uniform(start + 0.3 * horizon, horizon)
        times = np.sort(rng.uniform(start, end, n)).astype(np.int64)
        s = times / horizon
        users = np.full(n, u)
        cands = rng.integers(0, n_items, size=(n, cfg.candidates_per_step))
        util = utility_matrix(
            taste, users, s, {a: v[cands] for a, v in values.items()}, attrs["log_price_ratio"][cands]
        )
        score = util + taste.popularity_bias[u] * attrs["popularity"][cands]
        score = score + cfg.choice_temperature * rng.gumbel(size=score.shape)
        ref = utility_matrix(
            taste,
            np.array([u]),
            np.array([s.mean()]),
            {a: v[ref_items] for a, v in values.items()},
            attrs["log_price_ratio"][ref_items][None],
        )
        mu, sd = float(ref.mean()), float(ref.std() + 1e-6)
        seen: set[int] = set()
        for k in range(n):
            order = np.argsort(-score[k])
            j = next((j for j in order if cands[k, j] not in seen), None)
            if j is None:
                continue
            item = int(cands[k, j])
            seen.add(item)
            z = (util[k, j] - mu) / sd
            rating = int(np.clip(np.rint(RATING_OFFSET + RATING_SLOPE * z + rng.normal(0, 0.6)), 1, 5))
            review = _review(cfg, taste, values, u, s[k], item, rating, rng)
            rows.append((taste.user_ids[u], item_ids[item], int(times[k]), float(rating), review))
    return rows


def _interactions_table(rows: list[tuple]) -> pa.Table:
    return pa.table(
        {k: [r[j] for r in rows] for j, k in enumerate(("user_id", "item_id", "timestamp", "rating", "review"))}
    )


def _simulate_queries(cfg, taste: UserTaste, attrs, rng, item_ids, horizon, names):
    """Search queries, about ``queries_per_user`` a user: each describes the item the user would value
    most, at a random time, among 300 random ones."""
    values = {a: attrs[a] for a in PREFERENCE_ATTRIBUTES}
    n_q = rng.poisson(cfg.queries_per_user, cfg.n_users)
    rows = []
    for u in range(cfg.n_users):
        for _ in range(int(n_q[u])):
            t = int(rng.uniform(0, horizon))
            cands = rng.integers(0, cfg.n_items, size=300)
            util = utility_matrix(
                taste,
                np.array([u]),
                np.array([t / horizon]),
                {a: v[cands] for a, v in values.items()},
                attrs["log_price_ratio"][cands][None],
            )[0]
            item = int(cands[int(np.argmax(util))])
            text = query_text({a: names[a][item] for a in ("category", "colour", "pattern", "brand")}, rng)
            rows.append(
                {
                    "query_id": f"q{len(rows):06d}",
                    "user_id": str(taste.user_ids[u]),
                    "query": text,
                    "target_item_id": item_ids[item],
                    "timestamp": t,
                }
            )
    return rows


@dataclass
class _Catalog:
    """Every item's hidden truth: attribute indices (``attrs``) and names, house style, and whether
    its text leaves out the colour or the pattern."""

    item_ids: list[str]
    attrs: dict[str, np.ndarray]
    names: dict[str, list[str]]
    styles: list[str]
    omit_colour: np.ndarray
    omit_pattern: np.ndarray


def _sample_catalog(cfg: WorldConfig, rng: np.random.Generator) -> _Catalog:
    """Item ids and every item's hidden truth (images and texts are drawn later, per item)."""
    attrs = _sample_item_attributes(cfg, rng)
    width = len(str(cfg.n_items - 1))
    item_ids = [f"i{i:0{width}d}" for i in range(cfg.n_items)]
    colour_names = list(COLOURS)
    names = {
        "category": [CATEGORIES[i] for i in attrs["category"]],
        "colour": [colour_names[i] for i in attrs["colour"]],
        "pattern": [PATTERNS[i] for i in attrs["pattern"]],
        "secondary_colour": [NO_SECONDARY if i == len(COLOURS) else colour_names[i] for i in attrs["secondary_colour"]],
        "brand": [BRANDS[i].name for i in attrs["brand"]],
    }
    omit_colour = rng.random(cfg.n_items) < cfg.p_text_omits_colour
    omit_pattern = rng.random(cfg.n_items) < cfg.p_text_omits_pattern
    # A brand's house style most of the time, any style otherwise.
    styles = [BRANDS[b].style if rng.random() < 0.7 else STYLES[int(rng.integers(len(STYLES)))] for b in attrs["brand"]]
    return _Catalog(item_ids, attrs, names, styles, omit_colour, omit_pattern)


def _write_items(
    writer: DatasetWriter, cfg: WorldConfig, catalog: _Catalog, bank: SilhouetteBank, rng, progress: bool
) -> tuple[list[dict], list[int]]:
    """Render and write each item's image and write its text: the item rows, and which silhouette
    each image was drawn on."""
    items, sil_index = [], []
    for i in tqdm(range(cfg.n_items), desc="items", unit="item", disable=not progress):
        a = {k: catalog.names[k][i] for k in catalog.names}
        idx, sil = bank.draw(int(catalog.attrs["category"][i]), rng)
        sil_index.append(idx)
        img = render_item(sil, a["colour"], a["pattern"], a["secondary_colour"], cfg.image_size, rng)
        rel = writer.write_image(catalog.item_ids[i], _png(img), shard=cfg.n_items > 20_000)
        omits = bool(catalog.omit_colour[i]), bool(catalog.omit_pattern[i])
        title, description, tags = item_text(a, catalog.styles[i], *omits, rng)
        items.append(
            {
                "item_id": catalog.item_ids[i],
                "title": title,
                "description": description,
                "category": a["category"],
                "tags": tags,
                "image": rel,
                "brand": a["brand"],
                "price": float(catalog.attrs["price"][i]),
                "extra": None,
            }
        )
    return items, sil_index


def _write_truth(
    truth: Path,
    cfg: WorldConfig,
    catalog: _Catalog,
    bank: SilhouetteBank,
    sil_index: list[int],
    taste: UserTaste,
    horizon: int,
) -> None:
    """The hidden ground truth (item attributes, user taste, world config) that only the oracle reads."""
    pq.write_table(
        pa.table(
            {
                "item_id": catalog.item_ids,
                **catalog.names,
                "price": catalog.attrs["price"],
                "style": catalog.styles,
                "popularity": catalog.attrs["popularity"],
                "text_omits_colour": catalog.omit_colour,
                "text_omits_pattern": catalog.omit_pattern,
                "silhouette_source": [bank.source] * cfg.n_items,
                "silhouette_index": sil_index,
            }
        ),
        truth / "items.parquet",
    )
    save_taste(taste, truth / "users.npz")
    write_json(
        truth / "world.json",
        {
            "config": dataclasses.asdict(cfg),
            "horizon_seconds": horizon,
            "silhouettes": bank.source,
            "attributes": {a: list(v) for a, v in PREFERENCE_ATTRIBUTES.items()},
            "colours_rgb": COLOURS,
            "category_base_price": CATEGORY_PRICE,
        },
    )


def build_world(cfg: WorldConfig, out: str | os.PathLike, overwrite: bool = False, progress: bool = True) -> dict:
    """Write the shop to ``out`` (atomically) and return a summary.

    Every step draws from one generator seeded with ``cfg.seed``, so the steps' order is part of
    what a seed means: reordering them builds a different shop (and needs a new WORLD_VERSION).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    horizon = cfg.horizon_days * DAY
    bank = SilhouetteBank(use_fashion_mnist=cfg.use_fashion_mnist, seed=cfg.seed)
    catalog = _sample_catalog(cfg, rng)
    source = {
        "format": "tailorgen-shop",
        "world_version": WORLD_VERSION,
        "config": dataclasses.asdict(cfg),
        "silhouettes": bank.source,
    }
    with DatasetWriter(out, source=source, overwrite=overwrite) as writer:
        items, sil_index = _write_items(writer, cfg, catalog, bank, rng, progress)
        taste = sample_taste(cfg.n_users, rng)
        interactions = _simulate_interactions(cfg, taste, catalog.attrs, rng, catalog.item_ids, horizon, progress)
        queries = _simulate_queries(cfg, taste, catalog.attrs, rng, catalog.item_ids, horizon, catalog.names)
        writer.set_tables(items=items, interactions=_interactions_table(interactions), queries=queries)
        _write_truth(writer.subdir("truth"), cfg, catalog, bank, sil_index, taste, horizon)
    return {
        "out": str(Path(out)),
        "items": cfg.n_items,
        "users": cfg.n_users,
        "interactions": len(interactions),
        "queries": len(queries),
        "silhouettes": bank.source,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def ensure_shop(path: str | os.PathLike, cfg: WorldConfig, progress: bool = True) -> Path:
    """Build the shop at ``path`` unless one built with exactly this config and world version is there."""
    path = Path(path)
    manifest = path / "manifest.json"
    if manifest.exists():
        source = read_json(manifest).get("source", {})
        if source.get("config") == dataclasses.asdict(cfg) and source.get("world_version") == WORLD_VERSION:
            return path
    build_world(cfg, path, overwrite=True, progress=progress)
    return path
