"""The unified model's image generation, measured (``tailorgen bench unimp --tasks image_generation``).

Per held-out test user (the first ``image_users`` of them), at the time of their held-out next
interaction, two requests built from that item's true attributes (what a user would type):

- ``image_generation``: keywords = its category, colour and pattern. ``keyword_match`` is the share
  of images on which the judge reads all three as asked; ``catalog`` is the same read on the item's
  real image (the target: at least 90% of it), ``catalog-vq`` on its VQ round trip (the ceiling of
  any image drawn in those codes).
- ``image_generation_personalization``: keywords = its category only. ``utility_open`` is the
  oracle's utility, for the user at that time, of what the judge reads for the attributes the
  keywords leave open (colour, pattern, second colour). Controls: the same model with the history
  dropped (``unimp-no-history``), the images made for another user (``mismatched``), a random
  catalog item of the asked category (``random-item``) and the real next item (``catalog``).

Also per unit: similarity to the user's history images, novelty (not a near-copy of a catalog
item) and diversity among the user's ``n`` images (the shop's image encoder); KID against catalog
images and the latency of one image on this machine in the extras. The judge and the oracle are
instruments here and nothing else.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from tailorgen.evaluation.metrics import diversity, history_similarity_per_unit, novelty
from tailorgen.evaluation.runner import Task, against
from tailorgen.unified.sample import SamplingSettings
from tailorgen.unified.serialize import Example

ASKED = ("category", "colour", "pattern")
OPEN = ("colour", "pattern", "secondary_colour")
MATCH_METRICS = ("keyword_match", "history_similarity", "novelty", "diversity")
OPEN_METRICS = ("utility_open", "history_similarity", "novelty", "diversity")


@dataclasses.dataclass
class Requests:
    tests: list[Example]  # the held-out image-generation examples (history before the target)
    truth: list[dict]  # the target's true visual attributes
    times: list[float]  # the target's interaction time (the oracle's "now")


def requests(run, limit: int) -> Requests:
    from tailorgen.world import Oracle

    oracle = Oracle.load(run.ds.root)
    tests = run.split.test["image_generation"][:limit]
    truth = [oracle.item_attributes(ex.target, visual_only=True) for ex in tests]
    times = [float(run.split.history_times[ex.user][len(ex.history)]) for ex in tests]
    return Requests(tests, truth, times)


def asking(tests: Sequence[Example], truth: Sequence[dict], attributes: Sequence[str]) -> list[Example]:
    """Each test example as a request whose keywords are the target's values of ``attributes`` (tag order)."""
    return [dataclasses.replace(ex, query=" ".join(t[a] for a in attributes)) for ex, t in zip(tests, truth)]


def draw(unimp, examples: Sequence[Example], n: int, seed: int, settings: SamplingSettings) -> list[list]:
    codes, _ = unimp.decoder.imagine(examples, n, settings, seed)
    images = unimp.model.vq.to_pil(unimp.decoder.pixels(codes))
    return [images[b * n : (b + 1) * n] for b in range(len(examples))]


@dataclasses.dataclass
class Instruments:
    """What reads and scores images: the judge, the oracle, the shop's image encoder, the catalog's embeddings."""

    judge: object
    oracle: object
    encoder: object
    catalog: np.ndarray  # (items, D), in run.item_ids order
    histories: list[np.ndarray]  # per request, the history images' embeddings

    def reads(self, images: list[list]) -> list[list[dict]]:
        flat = self.judge.read([im for ims in images for im in ims])
        starts = np.cumsum([0] + [len(ims) for ims in images])
        return [flat[a:b] for a, b in zip(starts[:-1], starts[1:])]

    def per_unit(self, images: list[list]) -> dict[str, np.ndarray]:
        """History similarity, novelty and diversity, each a mean over one request's images."""
        emb = [self.encoder.encode(ims) for ims in images]
        hist = [history_similarity_per_unit(e, [h] * len(e)).mean() for e, h in zip(emb, self.histories)]
        return {
            "history_similarity": np.array(hist),
            "novelty": np.array([novelty(e, self.catalog, reduce="none").mean() for e in emb]),
            "diversity": np.array([diversity(e) if len(e) > 1 else np.nan for e in emb]),
        }

    def utility(self, image_reads: list[list[dict]], users: Sequence[str], times: Sequence[float]) -> np.ndarray:
        """Per request, the mean oracle utility of the open attributes the judge read on its images."""
        return np.array([
            np.mean([self.oracle.utility(u, {a: r[a] for a in OPEN}, t) for r in rs])
            for u, rs, t in zip(users, image_reads, times)
        ])  # fmt: skip


def instruments(run, req: Requests) -> Instruments:
    from tailorgen.encoders import default_encoder
    from tailorgen.evaluation.judge import Judge
    from tailorgen.world import Oracle

    encoder = default_encoder("image")
    catalog = encoder.encode([run.ds.load_image(i) for i in run.item_ids])
    row = {i: k for k, i in enumerate(run.item_ids)}
    histories = [catalog[[row[e.item] for e in ex.history]] for ex in req.tests]
    return Instruments(Judge(), Oracle.load(run.ds.root), encoder, catalog, histories)


def iamg_requests(generator, examples: Sequence[Example]) -> list:
    """The image-generation requests as I-AM-G requests. I-AM-G personalizes an item, so each
    request's item (its anchor) is the catalog item whose text is nearest its keywords (MiniLM; the
    target and the history left out), and the keywords replace that item's text. The anchor's own
    tags still go into the rewrite, and its image embedding and pixels are conditions too, so where
    its colour or pattern differs from the keywords it pulls the image its way. The target is also
    kept out of the retrieved neighbours, so its image reaches I-AM-G by no path."""
    ctx = generator.context
    queries = ctx.text_encoder.encode([ex.query for ex in examples])
    left_out = [{ex.target, *(e.item for e in ex.history)} for ex in examples]
    anchors = [row[0][0] for row in ctx.text_retriever.retrieve_vectors(queries, 1, exclude=left_out)]
    pairs = [(ex.user, a) for ex, a in zip(examples, anchors, strict=True)]
    histories = [[e.item for e in ex.history] for ex in examples]
    targets = [{ex.target} for ex in examples]
    return ctx.requests(pairs, histories, exclude=targets, item_texts=[ex.query for ex in examples])


def draw_iamg(generator, examples: Sequence[Example], n: int, seed: int) -> list[list]:
    requests = iamg_requests(generator, examples)
    pairs = [(r.user_id, r.item_id) for r in requests]
    return [g.images for g in generator.generate_batch(pairs, n=n, seed=seed, requests=requests)]


def generate(run, req: Requests, settings: SamplingSettings) -> dict[str, dict[str, list[list]]]:
    """Request kind ("asked", "open") -> method -> per request, ``image_n`` images."""
    cfg = run.cfg
    kinds = {"asked": asking(req.tests, req.truth, ASKED), "open": asking(req.tests, req.truth, ("category",))}
    models = {m: u for m, u in _unified(run).items() if u.model.config.image_codebook}
    out: dict[str, dict[str, list[list]]] = {k: {} for k in kinds}
    for m, unimp in models.items():
        for kind, exs in kinds.items():
            out[kind][m] = draw(unimp, exs, cfg.image_n, cfg.seed, settings)
            if m == "unimp":  # the same model, the same keywords, no history: the personalization control
                blind = [dataclasses.replace(ex, history=()) for ex in exs]
                out[kind]["unimp-no-history"] = draw(unimp, blind, cfg.image_n, cfg.seed, settings)
    if cfg.image_iamg:
        from tailorgen.generation.iamg import IAMGGenerator

        generator = IAMGGenerator(run.ds)  # the shipped diffusion generator and its default sampler
        for kind, exs in kinds.items():
            out[kind]["iamg"] = draw_iamg(generator, exs, cfg.image_n, cfg.seed)
    return out


def score_image_generation(run) -> None:
    """Generate, judge, score; adds the tasks ``image_generation`` and ``image_generation_personalization``."""
    cfg, ds = run.cfg, run.ds
    req = requests(run, cfg.image_users)
    settings = SamplingSettings(guidance=cfg.image_guidance)
    tools = instruments(run, req)
    images = generate(run, req, settings)
    real = [[ds.load_image(ex.target)] for ex in req.tests]
    units = {"user_id": [ex.user for ex in req.tests], "item_id": [ex.target for ex in req.tests]}

    match = {m: {"keyword_match": _match(tools.reads(ims), req.truth)} | tools.per_unit(ims)
             for m, ims in images["asked"].items()}  # fmt: skip
    match["catalog"] = {"keyword_match": _match(tools.reads(real), req.truth)}
    vq = run.methods.unified["unimp"].model.vq  # the ceiling of drawing in its codes: the real image, round-tripped
    round_trip = [vq.to_pil(vq.reconstruct(ims)) for ims in real]
    match["catalog-vq"] = {"keyword_match": _match(tools.reads(round_trip), req.truth)}
    run.add(_task("image_generation", match, MATCH_METRICS, "keyword_match", units), match)

    rng = np.random.default_rng([cfg.seed, 91])
    partner = np.roll(np.arange(len(req.tests)), 1 + int(rng.integers(len(req.tests) - 1)))  # nobody is their own
    by_category = _items_by_category(tools.oracle, run.item_ids)
    controls = {
        "mismatched": [images["open"]["unimp"][p] for p in partner],  # made for another user, scored for this one
        "random-item": [[ds.load_image(rng.choice(by_category[t["category"]]))] for t in req.truth],
        "catalog": real,
    }
    users = units["user_id"]
    personal = {m: {"utility_open": tools.utility(tools.reads(ims), users, req.times)} | tools.per_unit(ims)
                for m, ims in images["open"].items()}  # fmt: skip
    personal |= {m: {"utility_open": tools.utility(tools.reads(ims), users, req.times)} for m, ims in controls.items()}
    run.add(_task("image_generation_personalization", personal, OPEN_METRICS, "utility_open", units), personal)

    judged = [*images["asked"].items(), ("catalog", real), ("catalog-vq", round_trip)]
    per_attribute = {m: _per_attribute(tools.reads(ims), req.truth) for m, ims in judged}
    run.extras["image_generation"] = {
        "settings": dataclasses.asdict(settings),
        "images_per_request": cfg.image_n,
        "per_attribute_match": per_attribute,
        "kid": _kid(ds, run.item_ids, images["asked"], req, cfg.seed, tools.encoder),
        "latency_seconds": _latency(run.methods.unified["unimp"], asking(req.tests, req.truth, ASKED), settings),
    }
    run.extras["image_examples"] = [{"user": ex.user, "keywords": " ".join(t[a] for a in ASKED)}
                                    for ex, t in zip(req.tests[:8], req.truth[:8])]  # fmt: skip
    run.images = {"asked": {"target": real, **images["asked"]}}  # the report's grid: the real item first


def _task(name: str, values: dict, metrics: Sequence[str], primary: str, units: dict) -> Task:
    return Task(name, tuple(values), metrics, primary, tuple(against("unimp", values, (primary,))), units=units)


def _unified(run) -> dict:
    from tailorgen.evaluation.bench_unimp import unified_for

    return unified_for(run.methods, "image_generation")


def _match(image_reads: list[list[dict]], truth: Sequence[dict]) -> np.ndarray:
    return np.array([np.mean([all(r[a] == t[a] for a in ASKED) for r in rs]) for rs, t in zip(image_reads, truth)])


def _per_attribute(image_reads: list[list[dict]], truth: Sequence[dict]) -> dict[str, float]:
    return {
        a: round(float(np.mean([np.mean([r[a] == t[a] for r in rs]) for rs, t in zip(image_reads, truth)])), 4)
        for a in ASKED
    }


def _items_by_category(oracle, item_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in item_ids:
        out.setdefault(oracle.item_attributes(i, visual_only=True)["category"], []).append(i)
    return out


def _kid(ds, item_ids, generated: dict, req: Requests, seed: int, encoder) -> dict:
    """KID (mean, std over subsets) of each method's images against catalog images that are not targets."""
    from tailorgen.encoders.image import ShopImageEncoder
    from tailorgen.evaluation.image_quality import as_feature_module, kid

    if not isinstance(encoder, ShopImageEncoder):
        return {"not_computed": "KID uses tailorgen's own image encoder as the feature network"}
    targets = {ex.target for ex in req.tests}
    pool = [i for i in item_ids if i not in targets]
    picked = np.random.default_rng([seed, 78]).choice(len(pool), size=min(500, len(pool)), replace=False)
    reference = [ds.load_image(pool[j]) for j in sorted(picked)]
    features = as_feature_module(encoder)
    out = {}
    for m, images in generated.items():
        flat = [im for ims in images for im in ims]
        mean, std = kid(reference, flat, features, subset_size=min(100, len(flat), len(reference)), seed=seed)
        out[m] = {"kid": round(float(mean), 5), "kid_std": round(float(std), 5)}
    return out


def _latency(unimp, examples: Sequence[Example], settings: SamplingSettings, n: int = 10) -> dict:
    """One image for one request (a batch of one), timed after a warm-up; and images per second in batches."""
    unimp.decoder.imagine(examples[:1], 1, settings)
    times = []
    for ex in examples[1 : n + 1]:
        t0 = time.perf_counter()
        codes, _ = unimp.decoder.imagine([ex], 1, settings)
        unimp.decoder.pixels(codes)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    batch = list(examples[:64])
    unimp.decoder.pixels(unimp.decoder.imagine(batch, 1, settings)[0])
    return {
        "one_image_median": round(float(np.median(times)), 3),
        "images_per_second_batched": round(len(batch) / (time.perf_counter() - t0), 1),
    }
