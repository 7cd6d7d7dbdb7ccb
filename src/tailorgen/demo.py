"""The demo behind `tailorgen demo` (the README's main command).

It sits downstream of every stage and only orchestrates them: build the demo shop, describe it,
run I-AM-G for a handful of users, and write an HTML page that shows each step per user.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tailorgen.common import atomic_dir, atomic_write_text, write_json
from tailorgen.common.manifest import write_run_manifest
from tailorgen.data import Dataset
from tailorgen.data.stats import dataset_stats, plot_history_lengths
from tailorgen.generation.iamg import IAMGGenerator, pick_requests, save_generations
from tailorgen.generation.pipeline import DEFAULT_STEPS
from tailorgen.world import WorldConfig
from tailorgen.world.build import ensure_shop
from tailorgen.world.preview import sample_grid


def run_demo(
    out: Path,
    seed: int = 0,
    n_items: int = 2000,
    n_users: int = 300,
    demo_users: int = 6,
    images_per_user: int = 4,
    generator: str | Path | None = None,
    steps: int = DEFAULT_STEPS,
    unimp: str | Path | None = None,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cfg = WorldConfig(n_items=n_items, n_users=n_users, seed=seed)
    shop = ensure_shop(out / "shop", cfg)
    sample_grid(shop, out / "samples.png")
    plot_history_lengths(shop, out / "history_lengths.png")
    summary = {
        "shop": str(shop),
        "stats": dataset_stats(shop),
        "samples": str(out / "samples.png"),
        "history_plot": str(out / "history_lengths.png"),
    }
    artifacts = {"shop": shop / "manifest.json", "samples": out / "samples.png"}
    if demo_users > 0:
        ds = Dataset(shop)
        gen = IAMGGenerator(ds, generator, num_inference_steps=steps, progress=True)
        rng = np.random.default_rng([seed, 777])
        pairs = pick_requests(gen.context.histories, list(gen.context.texts), demo_users, 8, rng)
        generations = gen.generate_batch(pairs, n=images_per_user, seed=seed, method="full")
        with atomic_dir(out / "generated", overwrite=True) as tmp:  # the demo's own folder: a rerun replaces it whole
            records = save_generations(generations, tmp, gen.checkpoints())
        answers, why_not = unimp_answers(ds, pairs, unimp)
        summary["unimp"] = {"users": len(answers), "model": str(unimp or "shipped")} | (
            {"skipped": why_not} if why_not else {}
        )
        page = render_page(ds, generations, records, answers, why_not)
        atomic_write_text(out / "index.html", page)
        page_path = str(out / "index.html")
        summary["generated"] = {"users": len(pairs), "images_per_user": images_per_user, "page": page_path}
        artifacts |= {"page": out / "index.html", "records": out / "generated" / "records.jsonl"}
    write_json(out / "summary.json", summary)
    artifacts["summary"] = out / "summary.json"
    config = dataclasses.asdict(cfg) | {"demo_users": demo_users, "images_per_user": images_per_user, "steps": steps}
    write_run_manifest(out, "tailorgen demo", config, seed, artifacts)
    return summary


def unimp_answers(ds: Dataset, pairs, model_dir) -> tuple[dict[str, dict], str | None]:
    """Per demo user, the unified model's answers: top-5, a search (their last query, else the
    target's category), the target's predicted rating and explanation, and (a model that draws) four
    images for the target's category guided by the history. A model trained on another catalog
    cannot answer here: then no answers and the reason."""
    from tailorgen.unified import UniMP

    try:
        model = UniMP(ds, model_dir)
    except (ValueError, OSError) as e:
        return {}, str(e)
    queries = {}
    if ds.queries is not None:
        for q in sorted(ds.queries.to_pylist(), key=lambda q: q["timestamp"]):
            queries[q["user_id"]] = q["query"]
    recs = model.recommend([u for u, _ in pairs], k=5)
    out = {}
    for (user, item), top in zip(pairs, recs, strict=True):
        query = queries.get(user) or ds.item(item).get("category") or "item"
        expected, dist = model.rate(user, item)
        out[user] = {
            "recommend": top,
            "query": query,
            "search": model.search(user, query, k=5),
            "rating": expected,
            "distribution": dist.tolist(),
            "explanation": model.explain(user, item),
        }
        if model.model.config.image_codebook:
            keywords = str(ds.item(item).get("category") or "")
            out[user]["imagine"] = {"keywords": keywords, "images": model.imagine(user, keywords, n=4).images}
    return out, None


def _img(image: Image.Image, title: str = "") -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" title="{html.escape(title)}" alt="{html.escape(title)}">'


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
section { border-top: 1px solid #ccc; padding: 1em 0; }
img { width: 96px; height: 96px; image-rendering: pixelated; margin: 2px; border: 1px solid #ddd; }
.row { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 4px; }
.label { font-weight: 600; margin: .6em 0 .2em; }
.tag { background: #eef; border-radius: 4px; padding: 1px 6px; margin-right: 4px; }
figure { margin: 0 4px; text-align: center; font-size: 11px; }
.out img { width: 128px; height: 128px; border: 2px solid #4a4; }
"""


def _unimp_html(ds: Dataset, user: str, item: str, answers: dict[str, dict], why_not: str | None) -> str:
    if why_not:
        return f"<div class='label'>unified model (UniMP)</div><p>not shown: {html.escape(why_not)}</p>"
    a = answers[user]

    def ranked(items):
        return "".join(
            f"<figure>{_img(ds.load_image(i), i)}<figcaption>{html.escape(i)} {s:.2f}</figcaption></figure>"
            for i, s in items
        )

    dist = ", ".join(f"{p:.2f}" for p in a["distribution"])
    return (
        "<div class='label'>unified model (UniMP): next items (log-probabilities)</div>"
        f"<div class='row'>{ranked(a['recommend'])}</div>"
        f"<div class='label'>search: &ldquo;{html.escape(a['query'])}&rdquo;</div>"
        f"<div class='row'>{ranked(a['search'])}</div>"
        f"<div class='label'>predicted rating of {html.escape(item)}</div><p>{a['rating']:.2f} (P(1..5) = {dist})</p>"
        f"<div class='label'>explanation</div><p class='explanation'>{html.escape(a['explanation'])}</p>"
        + _imagined_html(a.get("imagine"))
    )


def _imagined_html(imagined: dict | None) -> str:
    if not imagined:
        return ""
    images = "".join(f"<figure class='imagined'>{_img(im, 'drawn')}</figure>" for im in imagined["images"])
    return (
        f"<div class='label'>drawn for the user (image tokens): &ldquo;{html.escape(imagined['keywords'])}&rdquo;</div>"
        f"<div class='row'>{images}</div>"
    )


def render_page(
    ds: Dataset, generations, records: list[dict], answers: dict[str, dict] | None = None, why_not: str | None = None
) -> str:
    """One self-contained HTML page (images inlined) with every I-AM-G step and the unified model's
    answers, one section per user."""
    answers = answers or {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tailorgen demo: I-AM-G</title>",
        f"<style>{PAGE_STYLE}</style></head><body>",
        "<h1>Personalized generation (I-AM-G) on the demo shop</h1>",
        "<p>Per user: the history they interacted with (oldest first), the interest tags mined from it, "
        "the target item, its rewritten text, the retrieved neighbours, and the generated images; then "
        "what the unified model (UniMP) answers for the same user: next items, a search, the target's "
        "rating and an explanation.</p>",
    ]
    for g, rec in zip(generations, records):
        r = g.request
        hist = "".join(_img(ds.load_image(i), i) for i in r.history[-16:])
        tags = "".join(f"<span class='tag'>{html.escape(t)}</span>" for t in r.user_tags)

        def neighbours(nb):
            return "".join(
                f"<figure>{_img(ds.load_image(i), i)}<figcaption>{html.escape(i)} {s:.2f}</figcaption></figure>"
                for i, s in nb
            )

        outs = "".join(_img(im, f"image {k}") for k, im in enumerate(g.images))
        parts.append(
            f"<section><h2>user {html.escape(r.user_id)}</h2>"
            f"<div class='label'>history ({len(r.history)} items, last 16 shown)</div><div class='row'>{hist}</div>"
            f"<div class='label'>interest tags</div><div>{tags or '(none beyond the item)'}</div>"
            f"<div class='label'>target item {html.escape(r.item_id)}</div>"
            f"<div class='row'>{_img(ds.load_image(r.item_id), r.item_id)}"
            f"<p>{html.escape(r.item_text)}</p></div>"
            f"<div class='label'>rewritten text ({html.escape(r.rewrite.backend)})</div>"
            f"<p>{html.escape(r.rewrite.text)}</p>"
            f"<div class='label'>retrieved by text</div><div class='row'>{neighbours(r.text_neighbours)}</div>"
            f"<div class='label'>retrieved by image</div><div class='row'>{neighbours(r.image_neighbours)}</div>"
            f"<div class='label'>personalized images (seed {g.seed})</div><div class='row out'>{outs}</div>"
            f"{_unimp_html(ds, r.user_id, r.item_id, answers, why_not)}"
            f"<details><summary>record</summary><pre>{html.escape(json.dumps(rec, indent=1))}</pre></details>"
            "</section>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
