"""HTML reports people can read: metric tables with intervals, paired tests, plots, example images.

A report is made from one or more run folders that a benchmark wrote: each holds one record in
the common layout (``*_benchmark.json``, :mod:`tailorgen.evaluation.runner`), whatever the
benchmark, its tasks, methods and metrics (labels from :mod:`tailorgen.evaluation.registry`).
It is one self-contained HTML file (plots and images inlined) plus ``report.json`` with every
number it shows.
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
from tailorgen.evaluation.registry import METRICS, MetricInfo  # noqa: E402
from tailorgen.evaluation.runner import find_record, read_record  # noqa: E402
from tailorgen.evaluation.stats import per_user_breakdown  # noqa: E402

NO_VALUE = {"mean": 0.0, "ci_low": None, "ci_high": None}  # a bar of zero height without an interval
STYLE = (
    "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:right}th:first-child,td:first-child{text-align:left}small{color:#666}"
    "img.grid{image-rendering:pixelated;max-width:100%}</style>"
)


def load_run(run_dir: str | Path) -> dict:
    """The record in a run folder, with ``run_dir`` added; I-AM-G runs from before the common layout are read too."""
    path = find_record(run_dir)
    raw = read_json(path)
    if "results" not in raw and "paired_tests" in raw:
        from tailorgen.evaluation.iamg_legacy import upgrade_legacy_record

        record = upgrade_legacy_record(raw)
    else:
        record = read_record(path)
    record["run_dir"] = str(run_dir)
    return record


def _info(metric: str) -> MetricInfo:
    """The registry's description; a metric it lacks (a record from elsewhere) is shown by its name."""
    return METRICS.get(metric) or MetricInfo(metric, metric, metric, "neither")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def metric_plot(runs: list[dict], task: str, metric: str) -> str:
    """Bar chart of one metric per method and run, with 95% bootstrap intervals; base64 PNG."""
    methods = runs[0]["tasks"][task]["methods"]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(methods), 2.8))
    width = 0.8 / len(runs)
    for r, run in enumerate(runs):
        results = run["results"][task]
        if not any(metric in results[m] for m in methods):
            continue  # e.g. a run on a dataset without ground truth
        means, low, high = [], [], []
        for m in methods:
            s = results[m].get(metric, NO_VALUE)  # a method without this metric (the original has no diversity)
            means.append(s["mean"])
            low.append(s["mean"] - (s["ci_low"] if s["ci_low"] is not None else s["mean"]))
            high.append((s["ci_high"] if s["ci_high"] is not None else s["mean"]) - s["mean"])
        xs = [i + (r - (len(runs) - 1) / 2) * width for i in range(len(methods))]
        seeds = ", ".join(map(str, run.get("seeds", [])))
        ax.bar(xs, means, width, yerr=[low, high], capsize=3, label=f"seed {seeds}")
    ax.set_xticks(range(len(methods)), methods)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_title(metric, fontsize=9)
    if len(runs) > 1:
        ax.legend(fontsize=7)
    return _png(fig)


def per_user(run: dict, task: str) -> dict[str, dict]:
    """The task's headline metric per unit group (the first id column, e.g. user) and method, from per-unit values."""
    values = run.get("per_unit", {}).get(task)
    ids = run["tasks"][task].get("units") or {}
    if not values or not ids:
        return {}
    groups = next(iter(ids.values()))
    metric = run["tasks"][task]["primary_metric"]
    methods = [m for m in run["tasks"][task]["methods"] if metric in values.get(m, {})]
    if not methods:
        return {}
    by_method = {m: per_user_breakdown(values[m][metric], groups[: len(values[m][metric])]) for m in methods}
    first = by_method[methods[0]]
    return {u: {"items": first[u]["count"]} | {m: by_method[m][u]["mean"] for m in methods} for u in first}


def _per_user_html(run: dict, task: str, rows: dict[str, dict]) -> str:
    methods = [m for m in next(iter(rows.values())) if m != "items"]
    unit = html.escape(run["tasks"][task].get("unit", "unit"))
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    body = "".join(
        f"<tr><td>{html.escape(str(u))}</td><td>{r['items']}</td>"
        + "".join(f"<td>{r[m]:.3f}</td>" for m in methods)
        + "</tr>"
        for u, r in rows.items()
    )
    label = _info(run["tasks"][task]["primary_metric"]).label
    return (
        f"<details><summary>Per {unit}: {html.escape(label)} ({len(rows)} {unit}s)</summary>"
        f"<table><tr><th>{unit}</th><th>items</th>{head}</tr>{body}</table></details>"
    )


def _cell(s: dict | None) -> str:
    if s is None:
        return "n/a"
    if s["ci_low"] is None:
        return f"{s['mean']:.3f}"
    return f"{s['mean']:.3f} <small>[{s['ci_low']:.3f}, {s['ci_high']:.3f}]</small>"


def _run_header_html(run: dict) -> str:
    seeds = ", ".join(map(str, run.get("seeds", [])))
    checkpoints = ", ".join(
        f"{html.escape(k)} <code>{html.escape(str(v))[:24]}</code>" for k, v in run.get("checkpoints", {}).items()
    )
    return (
        f"<h2>{html.escape(run['run_dir'])}: {html.escape(run['benchmark'])} benchmark, seed {seeds}</h2>"
        f"<p>{html.escape(run.get('what') or '')}</p>"
        f"<p>dataset {html.escape(str(run.get('dataset')))}; checkpoints: {checkpoints}</p>"
    )


def _results_html(run: dict, task: str) -> str:
    spec, results = run["tasks"][task], run["results"][task]
    units = len(next(iter(spec["units"].values()))) if spec.get("units") else None
    size = f", {units} {html.escape(spec.get('unit', 'unit'))}s" if units else ""
    head = "".join(
        f"<th title='{html.escape(_info(m).label)}'>{html.escape(_info(m).column)}</th>" for m in spec["metrics"]
    )
    rows = "".join(
        f"<tr><td>{html.escape(method)}</td>"
        + "".join(f"<td>{_cell(results[method].get(m))}</td>" for m in spec["metrics"])
        + "</tr>"
        for method in spec["methods"]
    )
    return f"<h3>Task {html.escape(task)}{size}</h3><table><tr><th>method</th>{head}</tr>{rows}</table>"


def _paired_html(run: dict, task: str) -> str:
    """One table of the task's paired tests, the headline metric's first."""
    paired = run["paired"].get(task, {})
    primary = run["tasks"][task]["primary_metric"]
    if not paired:
        return ""
    order = [primary, *(m for m in paired if m != primary)]
    rows = []
    for metric in (m for m in order if m in paired):
        for key, t in paired[metric].items():
            on = metric + (f" vs {t['b_metric']}" if t.get("b_metric") else "")
            rows.append(
                f"<tr><td>{html.escape(key)}</td><td>{html.escape(on)}</td><td>{t['diff']:+.3f} "
                f"<small>[{t['ci_low']:+.3f}, {t['ci_high']:+.3f}]</small></td>"
                f"<td>{t['p']:.2g}</td><td>{t['ttest_p']:.2g}</td><td>{t['n']}</td></tr>"
            )
    return (
        f"<h3>Paired tests (headline: {html.escape(_info(primary).label)})</h3>"
        "<table><tr><th>comparison</th><th>metric</th><th>mean difference [95% CI]</th><th>Wilcoxon p</th>"
        f"<th>paired t p</th><th>n</th></tr>{''.join(rows)}</table>"
    )


def _image_quality_html(quality: dict) -> str:
    parts = [
        f"<h3>Image quality against {quality['reference_images']} catalog images (image-encoder features; "
        "lower is better; the original items are the floor)</h3>"
        "<table><tr><th>method</th><th>KID (std over subsets)</th><th>FID</th></tr>"
    ]
    for m, q in quality["methods"].items():
        fid_cell = f"{q['fid']:.2f}" if q["fid"] is not None else "n/a <small>(fewer images than dimensions)</small>"
        parts.append(
            f"<tr><td>{html.escape(m)}</td><td>{q['kid']:.4f} <small>({q['kid_std']:.4f})</small></td>"
            f"<td>{fid_cell}</td></tr>"
        )
    return "".join(parts) + "</table>"


def _run_html(run: dict) -> list[str]:
    """A run's section: header; per task its results, paired tests and per-unit table; then the extras the
    report knows (metrics not computed, image quality, latency, example images)."""
    extras = run.get("extras", {})
    parts = [_run_header_html(run)]
    for task in run["tasks"]:
        parts += [_results_html(run, task), _paired_html(run, task)]
        if rows := per_user(run, task):
            parts.append(_per_user_html(run, task, rows))
    for metric, why in (extras.get("not_computed") or {}).items():
        parts.append(f"<p>n/a {html.escape(metric)}: {html.escape(why)}.</p>")
    if extras.get("image_quality"):
        parts.append(_image_quality_html(extras["image_quality"]))
    if lat := extras.get("latency_seconds"):
        stages = ", ".join(
            f"{html.escape(s)} {v:.3f} s ({100 * lat['share'][s]:.0f}%)" for s, v in lat["stages"].items()
        )
        parts.append(f"<p>Latency of one personalized output: {lat['total']:.2f} s: {stages}.</p>")
    grid = Path(run["run_dir"]) / extras["examples"] if extras.get("examples") else None
    if grid is not None and grid.exists():
        data = base64.b64encode(grid.read_bytes()).decode()
        parts.append(
            "<h3>Examples (one row per unit: each method's output)</h3>"
            f"<img class='grid' src='data:image/png;base64,{data}' alt='examples'>"
        )
    return parts


def _plots_html(runs: list[dict]) -> list[str]:
    parts = ["<h2>Metrics across runs</h2>"]
    for task, spec in runs[0]["tasks"].items():
        for metric in spec["metrics"]:
            if not any(metric in run["results"][task][m] for run in runs for m in run["tasks"][task]["methods"]):
                continue
            parts.append(
                f"<figure><img src='data:image/png;base64,{metric_plot(runs, task, metric)}' alt='{metric}'>"
                f"<figcaption>{html.escape(task)}: {html.escape(_info(metric).label)}</figcaption></figure>"
            )
    return parts


def render_report(runs: list[dict], note: str | None = None) -> str:
    benchmarks = ", ".join(dict.fromkeys(r["benchmark"] for r in runs))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>tailorgen evaluation report</title>{STYLE}"
        "</head><body>",
        f"<h1>Evaluation report: {html.escape(benchmarks)}</h1>",
        "<p>Each number is a mean over units (users, requests) with its 95% percentile-bootstrap interval. "
        "Methods run on the same units (and the same starting noise where they draw any), so differences "
        "are paired.</p>",
    ]
    if note:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for run in runs:
        parts += _run_html(run)
    parts += _plots_html(runs)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dirs: list[str | Path], out: str | Path, note: str | None = None) -> dict:
    """Write OUT/report.html and OUT/report.json from benchmark run folders; returns the JSON.

    ``note`` is a sentence shown at the top (the shop benchmark says which seeds it used).
    """
    if not run_dirs:
        raise ValueError("give at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    compared = {tuple((t, tuple(s["methods"])) for t, s in r["tasks"].items()) for r in runs}
    if len(compared) > 1:
        raise ValueError(f"the runs compare different tasks or methods ({sorted(compared)}); report them separately")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.html", render_report(runs, note))
    numbers = {
        "note": note,
        "runs": [
            {k: r.get(k) for k in ("run_dir", "benchmark", "config", "seeds", "results", "paired", "extras")}
            | {"tasks": {t: {k: v for k, v in s.items() if k != "units"} for t, s in r["tasks"].items()}}
            | {"per_user": {t: {str(u): row for u, row in per_user(r, t).items()} for t in r["tasks"]}}
            for r in runs
        ],
    }
    write_json(out / "report.json", numbers)
    return numbers
