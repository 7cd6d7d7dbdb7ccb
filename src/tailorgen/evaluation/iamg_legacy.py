"""I-AM-G runs written before the common record layout, read into it with the same numbers.

docs/benchmarks.md cites runs whose ``iamg_benchmark.json`` has the old layout (``summary``,
``paired_tests``, ``paired_metric``, ``per_unit`` by method, and ``shop``, ``image_quality``,
``latency_seconds``, ``not_computed`` at the top); `tailorgen eval` and the table scripts read
them through :func:`upgrade_legacy_record`.
"""

from __future__ import annotations

from tailorgen.evaluation.bench_iamg import BENCHMARK, EXAMPLES_FILE, INTENDED_VS_MISMATCHED, METRIC_NAMES, TASK
from tailorgen.evaluation.runner import Comparison, paired_entry


def upgrade_legacy_record(old: dict) -> dict:
    """An I-AM-G record in the old layout, in the common one (:mod:`tailorgen.evaluation.runner`)."""
    if "paired_tests" not in old or "summary" not in old:
        raise ValueError("not an I-AM-G benchmark record: it has neither the common layout nor the old one")
    primary = old.get("paired_metric", "gain_intended")
    paired: dict[str, dict] = {}
    for name, t in old["paired_tests"].items():
        if name == "full_intended_vs_mismatched":
            c = INTENDED_VS_MISMATCHED
        else:
            a, b = name.split("_vs_")
            c = Comparison(a, b, primary)
        paired.setdefault(c.metric, {})[c.key] = paired_entry(c, t)
    units = old.get("per_unit", {})
    extras = {k: old.get(k) for k in ("not_computed", "image_quality", "latency_seconds")}
    return {
        "benchmark": BENCHMARK,
        "what": old.get("what"),
        "created": old.get("created"),
        "dataset": old.get("shop"),
        "config": old["config"],
        "seeds": [old["config"]["seed"]],
        "tasks": {
            TASK: {
                "methods": old["methods"],
                "metrics": list(METRIC_NAMES),
                "primary_metric": primary,
                "unit": "user",
                "units": {k: units[k] for k in ("user_id", "item_id") if k in units},
            }
        },
        "results": {TASK: old["summary"]},
        "paired": {TASK: paired},
        "extras": extras | {"examples": EXAMPLES_FILE},
        "checkpoints": old.get("checkpoints", {}),
        "seconds": old.get("seconds"),
        "versions": old.get("versions", {}),
        "per_unit": {TASK: {m: units[m] for m in old["methods"] if m in units}},
    }
