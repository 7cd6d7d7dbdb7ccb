"""Sampling image codes from the unified model: classifier-free guidance, temperature, top-k/top-p, a KV cache.

Why a loop of our own rather than ``generate``: guidance needs the conditional and unconditional
prompts in one batch, sharing each step's forward pass (transformers' decoder-only guidance runs a
second model call per step), and reinforcement learning (Generate, Not Recommend) needs each
token's log-probability under exactly the distribution it was sampled from, guidance and
truncation included. The warpers are transformers' own; the cache is the LM's ``past_key_values``.

Per step, over the image codes only (no other token can stand inside an image span):
    cond, uncond = log_softmax(logits restricted to codes) for the two prompts
    guided = uncond + guidance * (cond - uncond)        (guidance 1: the conditional model alone)
    sample from softmax(top_p(top_k(guided / temperature)))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import TopKLogitsWarper, TopPLogitsWarper

from tailorgen.training import require

MIN_TEMPERATURE = 0.01


@dataclass(frozen=True)
class SamplingSettings:
    guidance: float = 3.0
    # Below MIN_TEMPERATURE sampling is already greedy in all but name, and dividing guided
    # log-probabilities by a smaller number overflows float32 (inf - inf: NaN probabilities).
    temperature: float = 1.0
    top_k: int = 256
    top_p: float = 1.0

    def __post_init__(self):
        require(self.guidance >= 0, "guidance", self.guidance, "a number >= 0 (1: no guidance)")
        require(self.temperature >= MIN_TEMPERATURE, "temperature", self.temperature, f"a number >= {MIN_TEMPERATURE}")
        require(self.top_k >= 0, "top_k", self.top_k, "an integer >= 0 (0: no top-k)")
        require(0 < self.top_p <= 1, "top_p", self.top_p, "a number in (0, 1]")


@dataclass
class Prompt:
    """Left-padded prompt embeddings (B, L, H) and their attention mask (B, L)."""

    embeds: torch.Tensor
    mask: torch.Tensor


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _pad_left(a: Prompt, length: int) -> Prompt:
    extra = length - a.embeds.shape[1]
    if extra == 0:
        return a
    pad = a.embeds.new_zeros(a.embeds.shape[0], extra, a.embeds.shape[2])
    return Prompt(torch.cat([pad, a.embeds], 1), torch.cat([a.mask.new_zeros(a.mask.shape[0], extra), a.mask], 1))


@torch.no_grad()  # not inference_mode: RL reuses the codes and log-probabilities in autograd
def sample_codes(
    lm,
    cond: Prompt,
    uncond: Prompt | None,
    code_ids: torch.Tensor,
    n_tokens: int,
    settings: SamplingSettings = SamplingSettings(),
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_tokens`` codes per prompt row: (B, n_tokens) code indices (positions in ``code_ids``) and
    their log-probabilities under the distribution each was drawn from. ``uncond`` (same B) is
    needed when ``settings.guidance != 1``."""
    guided = settings.guidance != 1.0
    require(not guided or uncond is not None, "uncond", None, "a prompt when guidance != 1")
    b = cond.embeds.shape[0]
    if guided:
        length = max(cond.embeds.shape[1], uncond.embeds.shape[1])
        cond, uncond = _pad_left(cond, length), _pad_left(uncond, length)
        prompt = Prompt(torch.cat([cond.embeds, uncond.embeds]), torch.cat([cond.mask, uncond.mask]))
    else:
        prompt = cond
    code_ids = code_ids.to(prompt.embeds.device)
    warpers = [TopKLogitsWarper(settings.top_k)] if settings.top_k else []
    warpers += [TopPLogitsWarper(settings.top_p)] if settings.top_p < 1 else []
    mask, positions = prompt.mask, _positions(prompt.mask)
    out = lm(inputs_embeds=prompt.embeds, attention_mask=mask, position_ids=positions, use_cache=True,
             logits_to_keep=1)  # fmt: skip
    codes, logps = [], []
    embedding = lm.get_input_embeddings()
    for _ in range(n_tokens):
        scores = torch.log_softmax(out.logits[:, -1, code_ids].float(), -1)
        if guided:
            c, u = scores[:b], scores[b:]
            scores = u + settings.guidance * (c - u)
        scores = scores / settings.temperature
        for warp in warpers:
            scores = warp(None, scores)
        logp = torch.log_softmax(scores, -1)
        pick = torch.multinomial(logp.exp(), 1, generator=generator)  # (b, 1)
        codes.append(pick[:, 0])
        logps.append(logp.gather(1, pick)[:, 0])
        if len(codes) == n_tokens:
            break
        token = code_ids[pick]  # (b, 1)
        if guided:
            token = torch.cat([token, token])
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
        positions = positions[:, -1:] + 1
        out = lm(inputs_embeds=embedding(token), attention_mask=mask, position_ids=positions,
                 past_key_values=out.past_key_values, use_cache=True)  # fmt: skip
    return torch.stack(codes, 1), torch.stack(logps, 1)


def guided_log_probs(
    lm, cond: Prompt, uncond: Prompt | None, code_ids: torch.Tensor, codes: torch.Tensor, settings: SamplingSettings
) -> torch.Tensor:
    """Log-probabilities (B, T) of ``codes`` (indices into ``code_ids``) under the distribution
    ``sample_codes`` draws from, by one teacher-forced pass per prompt, with gradients (for RL).
    Truncation (top-k/top-p) is not differentiable here: it must be off (``top_k`` 0, ``top_p`` 1)."""
    require(settings.top_k == 0 and settings.top_p == 1.0, "top_k", (settings.top_k, settings.top_p),
            "0 and top_p 1 (no truncation) for log-probabilities with gradients")  # fmt: skip
    code_ids = code_ids.to(cond.embeds.device)

    def scores(prompt: Prompt) -> torch.Tensor:
        x = torch.cat([prompt.embeds, lm.get_input_embeddings()(code_ids[codes])], 1)
        mask = torch.cat([prompt.mask, torch.ones_like(codes, dtype=prompt.mask.dtype)], 1)
        logits = lm(inputs_embeds=x, attention_mask=mask, position_ids=_positions(mask)).logits
        return torch.log_softmax(logits[:, prompt.embeds.shape[1] - 1 : -1][..., code_ids].float(), -1)

    mixed = scores(cond)
    if settings.guidance != 1.0:
        u = scores(uncond)
        mixed = u + settings.guidance * (mixed - u)
    logp = torch.log_softmax(mixed / settings.temperature, -1)
    return logp.gather(2, codes[..., None])[..., 0]
