"""Sampling image codes from the unified model: classifier-free guidance, temperature, top-k/top-p, a KV cache.

The KV cache is transformers' ``StaticCache`` (``DecodeStep``): written in place, so the 256th step
costs what the first does, where a ``DynamicCache`` copies the whole cache at every step; and its
shapes never change, so ``torch.compile`` traces a step once per batch size and length bucket
(``DecodeStep(compile=True)``).

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
from torch.overrides import TorchFunctionMode
from transformers import StaticCache, TopKLogitsWarper, TopPLogitsWarper

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


class _LinearAsReduction(TorchFunctionMode):
    """Inside a compiled decoding step, ``linear`` on a few rows as a multiply and a sum, which
    inductor fuses into one vectorized loop.

    A step multiplies 2 rows (a guided image) by each weight matrix. On this project's 2-core AMD
    machine torch's BLAS runs such 2-row products at 11-18 GFLOP/s (28 products of 2 rows by a
    192x576 matrix: 1.16 ms), while the fused multiply-and-sum takes 0.34 ms, as fast as OpenBLAS
    through NumPy (0.28 ms); docs/benchmarks.md, "A token-generated image", has the figures. Only
    while tracing (``DecodeStep._reduced_logits``): eagerly it would materialize rows x out x in products.
    """

    MAX_ROWS = 16  # a batch of 64 guided images (128 rows) ran slower as reductions than through BLAS

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.nn.functional.linear:
            names = ("input", "weight", "bias")
            bound = dict(zip(names, args)) | kwargs  # F.linear(input, weight, bias=None), by position or name
            x, weight, bias = bound["input"], bound["weight"], bound.get("bias")
            if x.shape[:-1].numel() <= self.MAX_ROWS:
                y = (x.unsqueeze(-2) * weight).sum(-1)
                return y if bias is None else y + bias
        return func(*args, **kwargs)


class DecodeStep:
    """The LM's logits over the image codes for the next token of each row, over a static KV cache.

    Only the codes' rows of the output layer are computed (1,024 of the vocabulary's 4,057 in the
    embedded model). The cache's length is rounded up to ``BUCKET`` tokens and the cache is reused
    while the rows and that length stay the same, so a compiled step is traced once per batch size
    and length bucket (about 30 s on 2 cores) rather than once per prompt length.
    """

    BUCKET = 128

    def __init__(self, lm, code_ids: torch.Tensor, compile: bool = False):
        self.lm = lm
        head = lm.get_output_embeddings()
        code_ids = code_ids.to(head.weight.device)
        # A copy, taken now: a step kept across calls (compile_sampler) does not see later training,
        # while sample_codes without a step (RL's rollouts) builds a fresh one each call.
        self.weight = head.weight[code_ids].detach()
        self.bias = None if head.bias is None else head.bias[code_ids].detach()
        # The LM's parameters are read at every call, but dynamo no longer checks the modules'
        # attributes (that cost 0.29 ms a step, a third of it): a module replaced or moved after the
        # first call goes unnoticed, so a compiled step belongs to one model as it is now.
        unguarded = {"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe}
        self._forward = (
            torch.compile(self._reduced_logits, dynamic=False, options=unguarded) if compile else self._logits
        )
        self._cache, self._shape = None, None

    def start(self, rows: int, length: int) -> tuple[StaticCache, int]:
        """An empty cache for ``rows`` sequences of at least ``length`` tokens, and its length."""
        shape = (rows, -(-length // self.BUCKET) * self.BUCKET)
        if shape != self._shape:
            self._cache, self._shape = StaticCache(config=self.lm.config, max_cache_len=shape[1]), shape
        else:
            self._cache.reset()
        return self._cache, shape[1]

    def prompt(self, embeds, mask, positions, cache) -> torch.Tensor:
        """The prompts' pass (eager: its length varies), filling the cache; the codes' logits after it."""
        return self._logits(embeds, mask, positions, cache)

    def __call__(self, embeds, mask, positions, cache) -> torch.Tensor:
        return self._forward(embeds, mask, positions, cache)

    def _reduced_logits(self, embeds, mask, positions, cache) -> torch.Tensor:
        if not torch.compiler.is_compiling():  # dynamo fell back to eager (its recompile limit): plain products
            return self._logits(embeds, mask, positions, cache)
        with _LinearAsReduction():
            return self._logits(embeds, mask, positions, cache)

    def _logits(self, embeds, mask, positions, cache) -> torch.Tensor:
        hidden = self.lm.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                       past_key_values=cache, use_cache=True).last_hidden_state  # fmt: skip
        return torch.nn.functional.linear(hidden[:, -1], self.weight, self.bias)


@torch.no_grad()  # not inference_mode: RL reuses the codes and log-probabilities in autograd
def sample_codes(
    lm,
    cond: Prompt,
    uncond: Prompt | None,
    code_ids: torch.Tensor,
    n_tokens: int,
    settings: SamplingSettings = SamplingSettings(),
    generator: torch.Generator | None = None,
    step: DecodeStep | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_tokens`` codes per prompt row: (B, n_tokens) code indices (positions in ``code_ids``) and
    their log-probabilities under the distribution each was drawn from. ``uncond`` (same B) is
    needed when ``settings.guidance != 1``. ``step``: a (compiled) decoding step to reuse."""
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
    step = step or DecodeStep(lm, code_ids)
    rows, length = prompt.mask.shape
    cache, cache_length = step.start(rows, length + n_tokens)
    # the mask covers the whole cache from the start: causal attention hides the slots not yet written
    mask = torch.cat([prompt.mask, prompt.mask.new_ones(rows, cache_length - length)], 1)
    positions = _positions(prompt.mask)
    logits = step.prompt(prompt.embeds, mask[:, :length], positions, cache)
    positions = positions[:, -1:]
    codes, logps = [], []
    embedding = lm.get_input_embeddings()
    for _ in range(n_tokens):
        scores = torch.log_softmax(logits.float(), -1)
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
        positions = positions + 1
        logits = step(embedding(token), mask, positions, cache)
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
