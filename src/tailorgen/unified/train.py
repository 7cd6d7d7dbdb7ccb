"""Multi-task SFT of the unified model (``tailorgen train unimp DATASET --out DIR``).

The recipe follows the UniMP reference: every task's examples pooled, so tasks are mixed in
proportion to their size; the loss only on answer spans (the task's answer and every history
item's id, rating and review), the task's answer weighted by its task weight (recommendation 2,
the others 1) and every token by the focal term ``(1 - p)^2``. ``tasks`` with one task trains
the "specialized" model the paper compares against, with the same recipe.

Image generation (the reference's fifth task) writes the target image's VQ codes. Its keywords are
drawn afresh each time an example is drawn (``unified.keywords``), and for classifier-free guidance
the history, or history and keywords both, are dropped at random. A dataset without images trains
the other tasks and says so in the report.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tailorgen.data import Dataset
from tailorgen.training import (
    CHECKPOINT_EVERY,
    TrainingRun,
    data_hashes,
    require,
    set_lr,
    setting,
    setup,
    warmup_cosine,
)
from tailorgen.unified.batch import ImageFeatures, collate
from tailorgen.unified.content import ItemContent, has_image, item_content
from tailorgen.unified.item_ids import SCHEMES, ItemIdentifiers
from tailorgen.unified.keywords import Keywords
from tailorgen.unified.model import UnifiedConfig, UnifiedModel, load_base_tokenizer, small_llama_config
from tailorgen.unified.serialize import IMAGE_TASKS, PROMPTS, TASKS, Example, Serializer
from tailorgen.unified.tasks import HOLDOUTS, TaskSplit, build_task_split
from tailorgen.unified.tokenizer import PieceEncoder, extend_tokenizer, train_tokenizer
from tailorgen.unified.vq import VQImageTokenizer


@dataclass
class UniMPTrainConfig:
    tasks: tuple[str, ...] = setting(TASKS, "Tasks to train on (one task: the specialized model).")
    task_mixing: float = setting(
        1.0,
        "How tasks mix: each task is drawn with probability proportional to its size to this power "
        "(1: in proportion to size, as the reference; 0.5: square root; 0: every task equally often).",
    )
    task_weights: tuple[float, ...] = setting(
        (2.0, 1.0, 1.0, 1.0, 1.0), f"Loss weight of each task's answer, in the order {TASKS}."
    )
    vq: str | None = setting(
        None, "VQ image tokenizer folder whose codes image_generation writes (default: the shipped one)."
    )
    drop_history: float = setting(0.1, "Image generation: share of examples whose history is dropped (guidance).")
    drop_all: float = setting(0.1, "Image generation: share whose history and keywords are both dropped (guidance).")
    holdout: str = setting(
        "last", "last: hold out each user's last interaction and query (the benchmark's test); none: train on all."
    )
    id_scheme: str = setting(
        "token", "How items are named: token (one token per item) or semantic (residual k-means codes)."
    )
    id_levels: int = setting(3, "Semantic ids: residual k-means levels (a collision code follows).")
    codebook_size: int = setting(32, "Semantic ids: codes per level.")
    images: bool = setting(True, "Feed each item's image embedding into its <image> slot (false: text only).")
    max_history: int = setting(5, "History items serialized before the task (the reference trains with 5).")
    max_length: int = setting(640, "Tokens per sequence at most (the oldest history is cut first).")
    bpe_vocab: int = setting(1024, "Byte-level BPE vocabulary learned from the dataset's texts (embedded LM).")
    hidden: int = setting(192, "Width of the embedded LM.")
    layers: int = setting(4, "Transformer layers of the embedded LM.")
    heads: int = setting(4, "Attention heads of the embedded LM.")
    base_model: str | None = setting(
        None,
        "A pretrained causal LM (transformers folder or .gguf file) to adapt with LoRA instead of the embedded LM.",
    )
    lora_rank: int = setting(8, "LoRA rank on the pretrained LM's attention (with base_model).")
    init_items_from_content: bool = setting(True, "Start each item token's embedding from its text+image embedding.")
    steps: int = setting(1500, "Optimizer steps.")
    batch_size: int = setting(16, "Sequences per step.")
    lr: float = setting(1e-3, "Peak learning rate (linear warm-up, then cosine).")
    warmup_steps: int = setting(200, "Warm-up steps.")
    weight_decay: float = setting(0.01, "AdamW weight decay.")
    focal_gamma: float = setting(2.0, "Focal term (1 - p)^gamma on every answer token (0: plain cross-entropy).")
    seed: int = setting(0, "Seed of initialization, batch order and the semantic ids' k-means.")
    threads: int = setting(2, "CPU threads.")

    def __post_init__(self):
        unknown = [t for t in self.tasks if t not in TASKS]
        require(not unknown and len(self.tasks) > 0, "tasks", self.tasks, ", ".join(TASKS))
        require(len(self.task_weights) == len(TASKS), "task_weights", self.task_weights, f"{len(TASKS)} numbers")
        require(self.holdout in HOLDOUTS, "holdout", self.holdout, ", ".join(HOLDOUTS))
        require(self.id_scheme in SCHEMES, "id_scheme", self.id_scheme, ", ".join(SCHEMES))
        require(self.hidden % self.heads == 0, "hidden", self.hidden, "a multiple of heads")
        require(0 <= self.task_mixing <= 1, "task_mixing", self.task_mixing, "a number from 0 to 1")
        require(self.steps >= 1, "steps", self.steps, "at least 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "at least 1")
        drops = (self.drop_history, self.drop_all)
        require(min(drops) >= 0 and sum(drops) < 1, "drop_history", drops, "shares >= 0 that sum below 1")


@dataclass
class Prepared:
    dataset: Dataset
    split: TaskSplit
    content: ItemContent
    serializer: Serializer
    encoder: PieceEncoder
    images: ImageFeatures
    examples: list[Example]
    tasks: tuple[str, ...]  # the config's tasks that this dataset can train (no images: no image tasks)
    keywords: Keywords
    vq: VQImageTokenizer | None = None


def corpus(content: ItemContent, split: TaskSplit, keywords: Keywords) -> list[str]:
    """The texts the tokenizer learns from: item texts, prompts, the training part's reviews (every
    history chunk holds them, whatever the tasks), training queries and the items' keywords."""
    texts = list(content.texts.values()) + list(PROMPTS.values()) + ["Query:", "Keywords:"]
    texts += [e.review for history in split.train_histories.values() for e in history if e.review]
    texts += [keywords.all(i) for i in content.item_ids]
    return texts + [ex.query for ex in split.train.get("search", []) if ex.query]


def image_codes(vq: VQImageTokenizer, dataset: Dataset, progress: bool) -> dict[str, list[int]]:
    """Each item image's VQ codes in raster order (items without an image have none)."""
    from tqdm.auto import tqdm

    items = [i for i, ok in zip(dataset.items.column("item_id").to_pylist(), has_image(dataset), strict=True) if ok]
    out: dict[str, list[int]] = {}
    for s in tqdm(range(0, len(items), 256), desc="image codes", unit="batch", disable=not progress, leave=False):
        part = items[s : s + 256]
        codes = vq.encode([dataset.load_image(i) for i in part]).reshape(len(part), -1)
        out |= {i: c.tolist() for i, c in zip(part, codes, strict=True)}
    return out


def item_identifiers(cfg: UniMPTrainConfig, content: ItemContent) -> ItemIdentifiers:
    if cfg.id_scheme == "token":
        return ItemIdentifiers.tokens(content.item_ids)
    return ItemIdentifiers.semantic(content.item_ids, content.vectors, cfg.id_levels, cfg.codebook_size, cfg.seed)


def prepare(
    cfg: UniMPTrainConfig, dataset_dir: str | Path, progress: bool = True, content: ItemContent | None = None
) -> Prepared:
    """``content``: the items' texts and embeddings computed elsewhere (``ItemContent.save``), else here."""
    dataset = Dataset.load(dataset_dir)
    has_images = any(has_image(dataset))
    tasks = tuple(t for t in cfg.tasks if t not in IMAGE_TASKS or has_images)
    split = build_task_split(dataset, tasks, cfg.holdout)
    if content is None:
        content = item_content(dataset, with_images=cfg.images, progress=progress)
    elif not cfg.images and content.has_images:
        content = content.text_only()
    ids, keywords = item_identifiers(cfg, content), Keywords.of(dataset)
    vq = codes = None
    if any(t in IMAGE_TASKS for t in tasks):
        vq = VQImageTokenizer.from_pretrained(cfg.vq)
        codes = image_codes(vq, dataset, progress)
        for t in set(tasks) & set(IMAGE_TASKS):
            split.train[t] = [ex for ex in split.train.get(t, []) if ex.target in codes]
    n_codes = vq.codebook_size if vq else 0
    if cfg.base_model:
        tokenizer = extend_tokenizer(load_base_tokenizer(cfg.base_model), ids.all_tokens(), n_codes)
    else:
        tokenizer = train_tokenizer(corpus(content, split, keywords), ids.all_tokens(), cfg.bpe_vocab, n_codes)
    serializer = Serializer(content.texts, ids, cfg.max_history, with_images=content.has_images, image_codes=codes)
    examples = [ex for task in tasks for ex in split.train[task]]
    if not examples:
        raise ValueError(f"{dataset_dir}: no training examples for tasks {cfg.tasks}")
    images = ImageFeatures(content.item_ids, content.image_vectors, dim=content.image_dim)
    encoder = PieceEncoder(tokenizer)
    return Prepared(dataset, split, content, serializer, encoder, images, examples, tasks, keywords, vq)


def build_model(cfg: UniMPTrainConfig, prep: Prepared) -> UnifiedModel:
    tok = prep.encoder.tokenizer
    config = UnifiedConfig(
        image_dim=prep.images.dim,
        with_images=prep.serializer.with_images,
        max_history=cfg.max_history,
        max_length=cfg.max_length,
        text_config={}
        if cfg.base_model
        else small_llama_config(len(tok), cfg.hidden, cfg.layers, cfg.heads, cfg.max_length),
        base_model=cfg.base_model,
        lora_rank=cfg.lora_rank if cfg.base_model else 0,
        image_codebook=prep.vq.codebook_size if prep.vq else 0,
        image_tokens=prep.vq.tokens_per_image if prep.vq else 0,
    )
    if cfg.base_model:
        return UnifiedModel.from_base(config, tok, prep.serializer.ids, prep.vq)
    model = UnifiedModel.from_config(config, tok, prep.serializer.ids, prep.vq)
    # generate()'s defaults come from here: Llama's (bos 1, eos 2) are byte tokens of this BPE.
    model.lm.generation_config.update(bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if cfg.init_items_from_content and cfg.id_scheme == "token":
        init_item_embeddings(model, prep.content)
    return model


def init_item_embeddings(model: UnifiedModel, content: ItemContent) -> None:
    """Each item token starts at its content embedding, projected to the LM's width by PCA and
    scaled to the other embeddings' norm: items that look alike start alike (and, tied, are
    scored alike), so an item seen rarely as an answer still gets a sensible score."""
    emb = model.lm.get_input_embeddings().weight
    x = content.vectors - content.vectors.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[: emb.shape[1]].T
    proj = proj / (np.linalg.norm(proj, axis=1, keepdims=True) + 1e-8)
    if proj.shape[1] < emb.shape[1]:  # fewer items (or content dimensions) than the LM is wide
        proj = np.pad(proj, ((0, 0), (0, emb.shape[1] - proj.shape[1])))
    rows = model.tokenizer.convert_tokens_to_ids([model.ids.name(i)[0] for i in content.item_ids])
    with torch.no_grad():
        scale = emb.norm(dim=1).mean()
        emb[rows] = torch.from_numpy(proj.astype(np.float32)) * scale


def draw_batch(prep: Prepared, cfg: UniMPTrainConfig, rng: np.random.Generator) -> list[Example]:
    """``batch_size`` training examples. At ``task_mixing`` 1 a uniform draw from every task's examples
    pooled (so tasks mix in proportion to their size); otherwise a task first, by size^task_mixing."""
    if cfg.task_mixing == 1.0:
        picked = [prep.examples[i] for i in rng.integers(0, len(prep.examples), cfg.batch_size)]
    else:
        tasks = [t for t in prep.tasks if prep.split.train[t]]
        p = np.array([len(prep.split.train[t]) for t in tasks], np.float64) ** cfg.task_mixing
        chosen = rng.choice(len(tasks), size=cfg.batch_size, p=p / p.sum())
        picked = [prep.split.train[tasks[t]][rng.integers(len(prep.split.train[tasks[t]]))] for t in chosen]
    return [image_request(ex, prep.keywords, cfg, rng) if ex.task in IMAGE_TASKS else ex for ex in picked]


def image_request(ex: Example, keywords: Keywords, cfg: UniMPTrainConfig, rng: np.random.Generator) -> Example:
    """An image-generation example as a request: keywords drawn from the target's words; for
    classifier-free guidance, the history dropped (``drop_history``) or both dropped (``drop_all``)."""
    u = rng.random()
    words = "" if u < cfg.drop_all else keywords.draw(ex.target, rng)
    history = () if u < cfg.drop_all + cfg.drop_history else ex.history
    return dataclasses.replace(ex, history=history, query=words)


def train_unimp(
    cfg: UniMPTrainConfig,
    dataset_dir: str | Path,
    out: str | Path,
    progress: bool = True,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    stop_after: int | None = None,
    content: ItemContent | None = None,
) -> dict:
    """Train on ``dataset_dir``'s training part; save the model to ``out`` (resumable).

    ``content`` (optional) holds the items' texts and embeddings computed on another machine, for
    one (a lent GPU) that has the dataset's tables but not the encoders' weights.
    """
    t0 = time.perf_counter()
    device = setup(cfg.seed, cfg.threads, device)
    prep = prepare(cfg, dataset_dir, progress, content)
    model = build_model(cfg, prep).to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]  # with a base LM: LoRA, new tokens, projector
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    weights = dict(zip(TASKS, cfg.task_weights, strict=True))
    data = {"dataset": {"path": str(dataset_dir), "hashes": data_hashes(dataset_dir)}}
    run = TrainingRun(
        out,
        cfg,
        cfg.steps,
        seed=cfg.seed,
        device=device,
        data=data,
        checkpoint_every=checkpoint_every,
        stop_after=stop_after,
        progress=progress,
        desc="train unimp",
    )
    run.track(model=model, optimizer=opt, rng=rng)
    prep_seconds = time.perf_counter() - t0
    pad = prep.encoder.tokenizer.pad_token_id
    for step in run:
        set_lr(opt, warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.steps))
        picked = draw_batch(prep, cfg, rng)
        encoded = [prep.encoder.encode(prep.serializer.pieces(ex), cfg.max_length) for ex in picked]
        batch = collate(encoded, pad, prep.images, [weights[ex.task] for ex in picked]).to(device)
        loss = model(batch.input_ids, batch.attention_mask, batch.image_features, batch.weights, cfg.focal_gamma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        run.log(loss)
    model.cpu().eval()
    with run.output() as tmp:
        model.save_pretrained(tmp)
        return run.write_report(
            tmp,
            what="tailorgen unified model (UniMP)",
            curve_every=max(1, cfg.steps // 50),
            parameters=sum(p.numel() for p in model.parameters()),
            prep_seconds=round(prep_seconds, 1),
            examples={t: len(prep.split.train[t]) for t in prep.tasks},
            tasks_skipped={t: "the dataset has no item images" for t in cfg.tasks if t not in prep.tasks},
            held_out_users=len(prep.split.test.get("recommendation", [])),
            images=prep.serializer.with_images,
        )
