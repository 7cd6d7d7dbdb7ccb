"""The user's accent colour, read from the pixels of the items they interacted with.

The tags and the frozen image encoder name a garment's main colour and pattern, not its second
(accent) colour: the encoder's zero-shot accuracy on it is 1% (chance 8%), and a shop text's
colour words do not say which colour is the accent. Yet users care about it as much as about
the main colour. This module reads it off the pixels, without labels:

- ``main_and_accent``: per image, the garment's main colour, its accent colour and the accent's
  share of the garment;
- ``history_accent``: per user, the accent their history shows most, recency-weighted like the
  interest profile, or "none" when mostly single-colour items win. Accents are grouped by
  distance, not by a palette, so it works on any catalog whose images show a garment on a plain
  background.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# main (3) + accent (3) + share (1)
SUMMARY_DIM = 7
# accent colour (3) + has an accent (1) + the winning group's share of the history's weight (1)
HISTORY_ACCENT_DIM = 5
# Off-main distance that marks an accent pixel for ``history_accent``. The shade fit leaves a solid
# garment's pixels within a few levels of its main colour, so 0.2 (about 25 of 255 per channel)
# still ignores shading: on a shop's 2,000 images it read the second colour right in 82% (95% of
# checks, dots, stripes and zigzags; gradients fade into a tint and are mostly missed), against
# 73% at 0.35, ``main_and_accent``'s default tolerance.
ACCENT_TOL = 0.2


def main_and_accent(images: torch.Tensor, tol: float = 0.35, accent_tol: float | None = None) -> torch.Tensor:
    """(B, 3, S, S) images in [-1, 1] -> (B, 7): the garment's main colour, its accent colour, the accent's share.

    ``tol`` separates garment from background and, unless ``accent_tol`` is given, accent from main.

    The background is what the border shows; the garment is every other pixel, eroded by one so
    edges blended with the background do not count; its main colour is the per-channel median;
    accent pixels are garment pixels that no shade (x0.7 to x1.4) of the main colour explains.
    Colours are in [-1, 1]; an image without accent pixels gets a zero accent colour. Why not a
    colour histogram: a second colour on a quarter of the fabric is there too, but mixed with the
    main colour's cells and split by shading, and nothing linear separates it (docs/benchmarks.md,
    attempt 7's probes). Gradients fade into a tint of the second colour and are mostly missed.
    """
    x = (images.float() + 1) / 2  # [0, 1]
    b = x.shape[0]
    pixels = x.flatten(2)  # (B, 3, N)
    mask, accent, main = _garment_and_accent(x, tol, accent_tol)
    n_garment = mask.sum(1).clamp_min(1)
    n_accent = accent.sum(1)
    accent_colour = (pixels * accent[:, None]).sum(2) / n_accent.clamp_min(1)[:, None]
    accent_colour = torch.where(n_accent[:, None] > 0, accent_colour * 2 - 1, 0.0)
    share = (n_accent / n_garment).reshape(b, 1)
    return torch.cat([main * 2 - 1, accent_colour, share], dim=1)


def _garment_and_accent(x: torch.Tensor, tol: float, accent_tol: float | None):
    """(B, 3, S, S) images in [0, 1] -> garment and accent masks (B, S*S) and the main colour (B, 3)."""
    border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    garment = (x - background).norm(dim=1, keepdim=True) > tol
    garment = -F.max_pool2d(-garment.float(), 3, stride=1, padding=1) > 0.5  # erode by one pixel
    pixels = x.flatten(2)  # (B, 3, N)
    mask = garment.flatten(1)  # (B, N)
    main = pixels.masked_fill(~mask[:, None], float("nan")).nanmedian(dim=2).values.nan_to_num(0.0)  # (B, 3)
    scale = ((pixels * main[:, :, None]).sum(1) / (main * main).sum(1, keepdim=True).clamp_min(1e-6)).clamp(0.7, 1.4)
    off_main = (pixels - scale[:, None] * main[:, :, None]).norm(dim=1) > (tol if accent_tol is None else accent_tol)
    return mask, mask & off_main, main


def accent_pixels(images: torch.Tensor, tol: float = 0.35, accent_tol: float = ACCENT_TOL) -> torch.Tensor:
    """(B, 3, S, S) images in [-1, 1] -> (B, S, S): True where a pixel shows the accent (``main_and_accent``)."""
    x = (images.float() + 1) / 2
    return _garment_and_accent(x, tol, accent_tol)[1].view(x.shape[0], *x.shape[2:])


def history_accent(
    summaries: np.ndarray, weights: np.ndarray, min_share: float = 0.1, radius: float = 0.3
) -> np.ndarray:
    """The accent a history shows most: (N, 7) ``main_and_accent`` rows and (N,) weights -> (5,).

    An image counts as single-colour when its accent covers less than ``min_share`` of the garment
    (solid garments show a few percent at ``ACCENT_TOL``, from shading and edges). Each accented image supports every
    accent within ``radius`` (Euclidean, colours in [-1, 1]: under the gap between the nearest two
    colours a shop uses, navy and black, and over the spread shading gives one colour); the
    best-supported accent wins if its weight beats the single-colour images' weight, and the
    result is the weighted mean colour of its group. Returns [accent colour (3; zeros for none),
    1 if an accent won else 0, the winner's share of the total weight]. An empty history gives zeros.
    On a shop's 300 users (summaries at ``ACCENT_TOL``, recency half-life 10) the winner is the
    second colour the user's history shows most (recency-weighted truth) for 72%; a linear probe
    on the history CNN of the shipped generator read it at 31%, and counting the truth over the
    last 8 items gives 70% (docs/benchmarks.md, attempt 9).
    """
    summaries, weights = np.asarray(summaries, np.float32), np.asarray(weights, np.float32)
    out = np.zeros(HISTORY_ACCENT_DIM, np.float32)
    total = float(weights.sum())
    if len(summaries) == 0 or total <= 0:
        return out
    accented = summaries[:, 6] >= min_share
    none_weight = float(weights[~accented].sum())
    if accented.any():
        colours, w = summaries[accented, 3:6], weights[accented]
        near = np.linalg.norm(colours[:, None] - colours[None], axis=-1) < radius  # (M, M)
        support = near.astype(np.float32) @ w
        best = int(np.argmax(support))  # first (oldest) of equals wins a tie: deterministic
        if support[best] > none_weight:
            group = near[best]
            out[:3] = (w[group, None] * colours[group]).sum(0) / w[group].sum()
            out[3] = 1.0
            out[4] = support[best] / total
            return out
    out[4] = none_weight / total
    return out
