"""HTML reports people can read: metric tables with intervals, plots, and the example images.

A report is made from one or more run directories that a benchmark wrote (``iamg_benchmark.json``
and its ``iamg_examples.png``). It is one self-contained HTML file (plots and images inlined) plus
``report.json`` with every number it shows.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

from tailorgen.common import atomic_write_text, read_json, write_json  # noqa: E402
from tailorgen.evaluation.stats import per_user_breakdown  # noqa: E402

RESULT_FILE = "iamg_benchmark.json"
NO_VALUE = {"mean": 0.0, "ci_low": None, "ci_high": None}  # a bar of zero height without an interval
METRICS = {
    "gain_intended": "personalization gain, intended user (oracle utility, judge-read attributes)",
    "gain_mismatched": "gain for a mismatched user (control)",
    "fidelity": "fidelity: judge reads the target's category",
    "history_similarity": "history similarity (cosine to the user's history images)",
    "text_alignment": "text alignment (100 x max(cos, 0) to the rewritten text)",
    "novelty": "novelty: not a near-copy of a catalog item",
    "diversity": "diversity: mean pairwise cosine distance among one user's images",
}


def load_run(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / RESULT_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{run_dir} holds no {RESULT_FILE}; make one with `tailorgen bench iamg --out {run_dir}`"
        )
    result = read_json(path)
    result["run_dir"] = str(run_dir)
    return result


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def metric_plot(runs: list[dict], metric: str) -> str:
    """Bar chart of one metric per method and run, with 95% bootstrap intervals; base64 PNG."""
    methods = runs[0]["methods"]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(methods), 2.8))
    width = 0.8 / len(runs)
    for r, run in enumerate(runs):
        if not any(metric in run["summary"][m] for m in methods):
            continue  # a run on a dataset without ground truth
        means, low, high = [], [], []
        for m in methods:
            s = run["summary"][m].get(metric, NO_VALUE)  # "original" has no diversity
            means.append(s["mean"])
            low.append(s["mean"] - (s["ci_low"] if s["ci_low"] is not None else s["mean"]))
            high.append((s["ci_high"] if s["ci_high"] is not None else s["mean"]) - s["mean"])
        xs = [i + (r - (len(runs) - 1) / 2) * width for i in range(len(methods))]
        ax.bar(xs, means, width, yerr=[low, high], capsize=3, label=f"seed {run['config']['seed']}")
    ax.set_xticks(range(len(methods)), methods)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_title(metric, fontsize=9)
    if len(runs) > 1:
        ax.legend(fontsize=7)
    return _png(fig)


def per_user(run: dict) -> dict[str, dict]:
    """The paired metric per user and method (mean over the user's items), from the run's per-unit numbers."""
    units = run.get("per_unit")
    if not units:
        return {}
    metric = run.get("paired_metric", "gain_intended")
    by_method = {m: per_user_breakdown(units[m][metric], units["user_id"]) for m in run["methods"]}
    return {
        u: {"items": by_method[run["methods"][0]][u]["count"]} | {m: by_method[m][u]["mean"] for m in run["methods"]}
        for u in by_method[run["methods"][0]]
    }


def _per_user_html(run: dict, rows: dict[str, dict]) -> str:
    metric = run.get("paired_metric", "gain_intended")
    head = "".join(f"<th>{html.escape(m)}</th>" for m in run["methods"])
    body = "".join(
        f"<tr><td>{html.escape(str(u))}</td><td>{r['items']}</td>"
        + "".join(f"<td>{r[m]:.3f}</td>" for m in run["methods"])
        + "</tr>"
        for u, r in rows.items()
    )
    return (
        f"<details><summary>Per user: {html.escape(METRICS[metric])} ({len(rows)} users)</summary>"
        f"<table><tr><th>user</th><th>items</th>{head}</tr>{body}</table></details>"
    )


def _cell(s: dict | None) -> str:
    if s is None:
        return "n/a"
    if s["ci_low"] is None:
        return f"{s['mean']:.3f}"
    return f"{s['mean']:.3f} <small>[{s['ci_low']:.3f}, {s['ci_high']:.3f}]</small>"


def render_report(runs: list[dict], note: str | None = None) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tailorgen evaluation report</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th:first-child,td:first-child{text-align:left}small{color:#666}"
        "img.grid{image-rendering:pixelated;max-width:100%}</style></head><body>",
        "<h1>I-AM-G evaluation report</h1>",
        "<p>Each number is a mean over users with its 95% percentile-bootstrap interval. "
        "Methods share the starting noise per (user, item), so differences are paired.</p>",
    ]
    if note:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for run in runs:
        cfg = run["config"]
        parts.append(
            f"<h2>{html.escape(run['run_dir'])}: shop seed {cfg['seed']}, {run['users']} users</h2>"
            f"<p>shop {html.escape(run['shop'])}; checkpoints: "
            + ", ".join(
                f"{html.escape(k)} <code>{html.escape(str(v))[:24]}</code>" for k, v in run["checkpoints"].items()
            )
            + "</p>"
        )
        parts.append("<table><tr><th>method</th>" + "".join(f"<th>{m}</th>" for m in METRICS) + "</tr>")
        for method in run["methods"]:
            cells = "".join(f"<td>{_cell(run['summary'][method].get(m))}</td>" for m in METRICS)
            parts.append(f"<tr><td>{html.escape(method)}</td>{cells}</tr>")
        parts.append("</table>")
        for metric, why in run.get("not_computed", {}).items():
            parts.append(f"<p>n/a {html.escape(metric)}: {html.escape(why)}.</p>")
        paired = run.get("paired_metric", "gain_intended")
        parts.append(f"<h3>Paired tests on {html.escape(METRICS[paired])}</h3>")
        parts.append("<table><tr><th>comparison</th><th>mean difference [95% CI]</th><th>Wilcoxon p</th>"
                     "<th>paired t p</th><th>n</th></tr>")  # fmt: skip
        for name, t in run["paired_tests"].items():
            parts.append(
                f"<tr><td>{html.escape(name)}</td><td>{t['mean_diff']:+.3f} "
                f"<small>[{t['ci_low']:+.3f}, {t['ci_high']:+.3f}]</small></td>"
                f"<td>{t['wilcoxon_p']:.2g}</td><td>{t['ttest_p']:.2g}</td><td>{t['n']}</td></tr>"
            )
        parts.append("</table>")
        quality = run.get("image_quality")
        if quality:
            parts.append(
                f"<h3>Image quality against {quality['reference_images']} catalog images (image-encoder features; "
                "lower is better; the original items are the floor)</h3>"
                "<table><tr><th>method</th><th>KID (std over subsets)</th><th>FID</th></tr>"
            )
            for m, q in quality["methods"].items():
                fid_cell = (
                    f"{q['fid']:.2f}" if q["fid"] is not None else "n/a <small>(fewer images than dimensions)</small>"
                )
                parts.append(
                    f"<tr><td>{html.escape(m)}</td><td>{q['kid']:.4f} <small>({q['kid_std']:.4f})</small></td>"
                    f"<td>{fid_cell}</td></tr>"
                )
            parts.append("</table>")
        rows = per_user(run)
        if rows:
            parts.append(_per_user_html(run, rows))
        lat = run["latency_seconds"]
        stages = ", ".join(
            f"{html.escape(s)} {v:.3f} s ({100 * lat['share'][s]:.0f}%)" for s, v in lat["stages"].items()
        )
        parts.append(f"<p>Latency of one personalized image: {lat['total']:.2f} s: {stages}.</p>")
        grid = Path(run["run_dir"]) / "iamg_examples.png"
        if grid.exists():
            data = base64.b64encode(grid.read_bytes()).decode()
            parts.append(
                "<h3>Examples (one row per user: original, then each method)</h3>"
                f"<img class='grid' src='data:image/png;base64,{data}' alt='examples'>"
            )
    parts.append("<h2>Metrics across runs</h2>")
    for metric, label in METRICS.items():
        if not any(metric in run["summary"][m] for run in runs for m in run["methods"]):
            continue
        parts.append(
            f"<figure><img src='data:image/png;base64,{metric_plot(runs, metric)}' alt='{metric}'>"
            f"<figcaption>{html.escape(label)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dirs: list[str | Path], out: str | Path, note: str | None = None) -> dict:
    """Write OUT/report.html and OUT/report.json from benchmark run directories; returns the JSON.

    ``note`` is a sentence shown at the top (the shop benchmark says which seeds it used).
    """
    if not run_dirs:
        raise ValueError("give at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    methods = {tuple(r["methods"]) for r in runs}
    if len(methods) > 1:
        raise ValueError(f"the runs compare different methods ({sorted(methods)}); report them separately")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.html", render_report(runs, note))
    numbers = {
        "note": note,
        "runs": [
            {
                k: r.get(k)
                for k in (
                    "run_dir",
                    "config",
                    "users",
                    "summary",
                    "paired_tests",
                    "paired_metric",
                    "not_computed",
                    "image_quality",
                    "latency_seconds",
                )
            }
            | {"per_user": {str(u): row for u, row in per_user(r).items()}}
            for r in runs
        ],
    }
    write_json(out / "report.json", numbers)
    return numbers
