"""Answers from the unified model, constrained to what a task can answer.

- Items (recommendation, search). One token per item: the next-token distribution restricted to
  the item tokens *is* the exact ranking of the whole catalog (a beam search over names one token
  long would return the same top-k), so every item gets a score. Semantic ids: constrained beam
  search through transformers' ``generate``, whose ``prefix_allowed_tokens_fn`` walks a trie of the
  real items' code sequences, so it can only name items that exist; items a task leaves out (the
  user's history) are cut at the last code. The UniMP reference decodes unconstrained over the
  whole vocabulary and exact-matches the target, so it can name items that do not exist.
- Ratings: the expected value of the distribution over ``<rate_1>``..``<rate_5>``.
- Explanations: greedy decoding with every special token suppressed but ``<|endofchunk|>``.
- Images: the VQ codes of one image, sampled with classifier-free guidance against the same prompt
  with no history and no keywords (``unified.sample``), then the VQ decoder's pixels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from tailorgen.unified.baselines.recommend import top_k
from tailorgen.unified.batch import ImageFeatures, collate
from tailorgen.unified.item_ids import IdTrie
from tailorgen.unified.model import UnifiedModel
from tailorgen.unified.sample import DecodeStep, Prompt, SamplingSettings, sample_codes
from tailorgen.unified.serialize import Example, Serializer
from tailorgen.unified.tokenizer import PieceEncoder
from tailorgen.unified.vocab import END_OF_CHUNK, RATING_TOKENS, RATINGS


class Decoder:
    """A loaded model with what it needs to read examples: serializer, piece encoder, image features."""

    def __init__(self, model: UnifiedModel, serializer: Serializer, images: ImageFeatures, progress: bool = False):
        self.model, self.serializer, self.images, self.progress = model, serializer, images, progress
        self.encoder = PieceEncoder(model.tokenizer)
        tok = model.tokenizer
        names = [tok.convert_tokens_to_ids(list(model.ids.name(i))) for i in model.ids.item_ids]
        self.trie = IdTrie(names, model.ids.item_ids)
        self.single_token = model.ids.scheme == "token"
        self.item_token_ids = torch.tensor([n[0] for n in names]) if self.single_token else None
        self.rating_ids = torch.tensor(tok.convert_tokens_to_ids(list(RATING_TOKENS)))
        self.eoc_id = tok.convert_tokens_to_ids(END_OF_CHUNK)
        self.step: DecodeStep | None = None  # None: a fresh eager step (and cache) for every batch

    def compile_sampler(self) -> None:
        """Compile the image-code decoding step (``torch.compile``), and keep it and its KV cache
        between calls: each new batch size (or prompt length bucket) traces again, about 30 s on 2 cores."""
        self.step = DecodeStep(self.model.lm, self.model.image_code_ids, compile=True)

    def _batches(self, n: int, size: int, desc: str):
        from tqdm.auto import tqdm

        starts = range(0, n, size)
        return tqdm(starts, desc=desc, unit="batch", disable=not self.progress or len(starts) < 2, leave=False)

    def _encoded(self, examples: Sequence[Example]):
        return [
            self.encoder.encode(self.serializer.pieces(ex, with_answer=False), self.model.config.max_length)
            for ex in examples
        ]

    @torch.inference_mode()
    def last_logits(self, examples: Sequence[Example]) -> torch.Tensor:
        """Next-token logits after each example's prompt (its ``<answer>``), (B, vocab)."""
        batch = collate(self._encoded(examples), self.model.tokenizer.pad_token_id, self.images).to(self.model.device)
        hidden = self.model.hidden_states(batch.input_ids, batch.attention_mask, batch.image_features)
        last = hidden[torch.arange(len(examples)), batch.lengths - 1]
        return self.model.logits(last).float().cpu()

    def item_scores(self, examples: Sequence[Example], batch_size: int = 64) -> np.ndarray:
        """(B, n_items) log-probabilities of naming each item of the model's table (one-token ids)."""
        if not self.single_token:
            raise ValueError("item_scores needs one-token item ids; semantic ids are ranked by rank_items")
        out = []
        for s in self._batches(len(examples), batch_size, "rank items"):
            logits = self.last_logits(examples[s : s + batch_size])
            out.append(torch.log_softmax(logits, -1)[:, self.item_token_ids].numpy())
        return np.concatenate(out)

    def rank_items(
        self, examples: Sequence[Example], k: int = 10, exclude: Sequence[Sequence[str]] | None = None
    ) -> list[list[tuple[str, float]]]:
        """The top ``k`` real items for each example, best first, with scores (log-probabilities)."""
        if self.single_token:
            scores, ids = self.item_scores(examples), self.model.ids
            top = top_k(scores, ids.item_ids, k, exclude)
            return [[(i, float(scores[b, ids.position[i]])) for i in row] for b, row in enumerate(top)]
        out = []
        for s in self._batches(len(examples), 16, "beam search"):
            part = examples[s : s + 16]
            excluded = [set(exclude[s + b]) if exclude else set() for b in range(len(part))]
            out += self._beam(part, k, excluded)
        return out

    @torch.inference_mode()
    def _beam(self, examples: Sequence[Example], k: int, exclude: list[set[str]]) -> list[list[tuple[str, float]]]:
        embeds, mask = self._prompt_embeds(examples)
        length, beams = self.trie.length, max(k, 10)

        def allowed(row: int, prefix: torch.Tensor) -> list[int]:
            prefix = prefix.tolist()
            nxt = self.trie.allowed(prefix)
            skip = exclude[row]  # generate passes the example index (batch_id), not the beam row
            if len(prefix) == length - 1 and skip:
                nxt = [t for t in nxt if self.trie.item([*prefix, t]) not in skip]
            return nxt or [self.eoc_id]

        out = self.model.lm.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=length, num_beams=beams,
            num_return_sequences=beams, prefix_allowed_tokens_fn=allowed, do_sample=False, length_penalty=0.0,
            early_stopping=True, return_dict_in_generate=True, output_scores=True,
            pad_token_id=self.model.tokenizer.pad_token_id, eos_token_id=None,
        )  # fmt: skip
        seqs, scores = out.sequences.tolist(), out.sequences_scores.tolist()
        ranked: list[list[tuple[str, float]]] = []
        for b in range(len(examples)):
            found: dict[str, float] = {}
            for seq, score in zip(seqs[b * beams : (b + 1) * beams], scores[b * beams : (b + 1) * beams], strict=True):
                item = self.trie.item(seq[-length:])
                if item is not None and item not in exclude[b] and item not in found:
                    found[item] = float(score)
            ranked.append(list(found.items())[:k])
        return ranked

    def prompt(self, examples: Sequence[Example]) -> Prompt:
        """The examples' prompts as sampling reads them (with gradients where they are enabled: RL)."""
        return Prompt(*self._prompt_embeds(examples))

    def _prompt_embeds(self, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt embeddings, as ``generate`` continues each row from its end."""
        encoded = self._encoded(examples)
        length = max(len(e.input_ids) for e in encoded)
        pad = self.model.tokenizer.pad_token_id
        ids = torch.full((len(encoded), length), pad)
        mask = torch.zeros((len(encoded), length), dtype=torch.long)
        for b, e in enumerate(encoded):
            ids[b, length - len(e.input_ids) :] = torch.from_numpy(e.input_ids)
            mask[b, length - len(e.input_ids) :] = 1
        feats = self.images([i for e in encoded for i in e.images])
        ids, mask = ids.to(self.model.device), mask.to(self.model.device)
        return self.model.embed(ids, feats.to(self.model.device)), mask

    def rate(self, examples: Sequence[Example], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Expected ratings (B,) and the distributions over 1..5 (B, 5)."""
        probs = []
        for s in self._batches(len(examples), batch_size, "rate"):
            logits = self.last_logits(examples[s : s + batch_size])[:, self.rating_ids]
            probs.append(torch.softmax(logits, -1).numpy())
        p = np.concatenate(probs)
        return p @ np.asarray(RATINGS, np.float64), p

    @torch.inference_mode()
    def explain(self, examples: Sequence[Example], max_new_tokens: int = 64, batch_size: int = 32) -> list[str]:
        texts = []
        for s in self._batches(len(examples), batch_size, "explain"):
            texts += self._write(self.prompt(examples[s : s + batch_size]), max_new_tokens)
        return texts

    @torch.inference_mode()
    def name_drawn(self, examples: Sequence[Example], codes: torch.Tensor, max_new_tokens: int = 48) -> list[str]:
        """The text the model writes after each example's prompt and the image codes it drew (B, T)."""
        prompt = self.prompt(examples)
        drawn = self.model.lm.get_input_embeddings()(self.model.image_code_ids.to(self.model.device)[codes])
        mask = torch.cat([prompt.mask, prompt.mask.new_ones(codes.shape)], 1)
        return self._write(Prompt(torch.cat([prompt.embeds, drawn], 1), mask), max_new_tokens)

    def _write(self, prompt: Prompt, max_new_tokens: int) -> list[str]:
        """Greedy text after each prompt, every added token (structure, ratings, names, codes) suppressed
        but the chunk's end."""
        tok = self.model.tokenizer
        suppress = sorted((set(tok.get_added_vocab().values()) | set(tok.all_special_ids)) - {self.eoc_id})
        out = self.model.lm.generate(
            inputs_embeds=prompt.embeds, attention_mask=prompt.mask, max_new_tokens=max_new_tokens, do_sample=False,
            suppress_tokens=suppress, eos_token_id=self.eoc_id, pad_token_id=tok.pad_token_id,
        )  # fmt: skip
        return [tok.decode(seq, skip_special_tokens=True).strip() for seq in out.tolist()]

    def imagine(
        self,
        examples: Sequence[Example],
        n: int = 4,
        settings: SamplingSettings = SamplingSettings(),
        seed: int = 0,
        batch_size: int = 64,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images per image-generation example: codes (B, n, tokens) and their log-probabilities.

        Row ``b * n + j`` is drawn from a generator seeded with ``seed`` for its batch, so the same
        request, seed and batch size give the same images."""
        model = self.model
        if not model.config.image_codebook or model.vq is None:
            raise ValueError("this unified model draws no images (trained without image_generation)")
        rows = [ex for ex in examples for _ in range(n)]
        codes, logps = [], []
        for k, s in enumerate(self._batches(len(rows), batch_size, "imagine")):
            part = rows[s : s + batch_size]
            cond = self.prompt(part)
            blank = [dataclasses.replace(ex, history=(), query="") for ex in part]
            uncond = self.prompt(blank) if settings.guidance != 1 else None
            gen = torch.Generator(model.device).manual_seed(seed + k)
            c, lp = sample_codes(
                model.lm, cond, uncond, model.image_code_ids, model.config.image_tokens, settings, gen, self.step
            )
            codes.append(c.cpu())
            logps.append(lp.cpu())
        shape = (len(examples), n, model.config.image_tokens)
        return torch.cat(codes).reshape(shape), torch.cat(logps).reshape(shape)

    def pixels(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (..., tokens) -> images (N, 3, H, W) in [0, 1], through the model's VQ decoder."""
        return self.model.vq.decode(codes.reshape(-1, codes.shape[-1]))
