"""What a study's votes say: per compared pair of arms, win rates; over all arms, Bradley-Terry
scores; both with bootstrap intervals over votes.

Bradley-Terry (P(i beats j) = sigmoid(s_i - s_j)) is a logistic regression without intercept on
the difference of the two arms' indicators, so scikit-learn fits it. A weak L2 penalty (C = 10,
a Gaussian prior on the scores) keeps the scores finite when one arm has won every vote, which
small studies often show. Scores are centred (mean 0). "Neither" votes are counted and left out
of both, as a tie says nothing about which is better.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

BOOTSTRAP = 1000
PRIOR_C = 10.0


def decisive(votes: list[dict]) -> list[tuple[str, str]]:
    """(winner arm, loser arm) of every vote that picked a side."""
    out = []
    for v in votes:
        if v["choice"] in ("left", "right"):
            win, lose = (v["left_arm"], v["right_arm"]) if v["choice"] == "left" else (v["right_arm"], v["left_arm"])
            out.append((win, lose))
    return out


def bradley_terry(outcomes: list[tuple[str, str]], arms: list[str]) -> np.ndarray:
    """Centred scores of ``arms`` from (winner, loser) outcomes."""
    if not outcomes:
        return np.zeros(len(arms))
    index = {a: k for k, a in enumerate(arms)}
    # Each outcome enters twice, once each way round, so both classes exist and the fit is symmetric.
    x = np.zeros((2 * len(outcomes), len(arms)))
    y = np.zeros(2 * len(outcomes))
    for r, (win, lose) in enumerate(outcomes):
        x[2 * r, index[win]], x[2 * r, index[lose]], y[2 * r] = 1, -1, 1
        x[2 * r + 1, index[win]], x[2 * r + 1, index[lose]] = -1, 1
    # Entering each outcome twice doubles the likelihood; halving C keeps the prior's weight against it.
    scores = LogisticRegression(C=PRIOR_C / 2, fit_intercept=False, max_iter=1000).fit(x, y).coef_[0]
    return scores - scores.mean()


def _interval(samples: np.ndarray) -> list[float]:
    return [round(float(q), 4) for q in np.percentile(samples, [2.5, 97.5], axis=0)]


def study_results(votes: list[dict], arms: list[str], pairs: list[tuple[str, str]], seed: int = 0) -> dict:
    """Win rates per compared pair and Bradley-Terry scores, with 95% bootstrap intervals over votes."""
    rng = np.random.default_rng(seed)
    out: dict = {"votes": len(votes), "neither": sum(v["choice"] == "neither" for v in votes), "pairs": []}
    outcomes = decisive(votes)
    for a, b in pairs:
        mine = [1.0 if win == a else 0.0 for win, lose in outcomes if {win, lose} == {a, b}]
        ties = sum(v["choice"] == "neither" and {v["left_arm"], v["right_arm"]} == {a, b} for v in votes)
        row = {"a": a, "b": b, "decisive": len(mine), "a_wins": int(sum(mine)), "neither": ties}
        if mine:
            m = np.asarray(mine)
            boots = m[rng.integers(0, len(m), (BOOTSTRAP, len(m)))].mean(1)
            row |= {"a_win_rate": round(float(m.mean()), 4), "a_win_rate_ci": _interval(boots)}
        out["pairs"].append(row)
    scores = bradley_terry(outcomes, arms)
    out["bradley_terry"] = {a: round(float(s), 4) for a, s in zip(arms, scores, strict=True)}
    if outcomes:
        boots = np.stack([bradley_terry([outcomes[i] for i in rng.integers(0, len(outcomes), len(outcomes))], arms)
                          for _ in range(200)])  # fmt: skip
        out["bradley_terry_ci"] = {a: _interval(boots[:, k]) for k, a in enumerate(arms)}
        out["bootstrap"] = {"win_rates": BOOTSTRAP, "bradley_terry": 200}
    return out
