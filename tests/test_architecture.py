"""The import graph: each stage imports only stages upstream of it, and the judge stays in evaluation."""

import ast
from pathlib import Path

import tailorgen

SRC = Path(tailorgen.__file__).parent

# Upstream first. A module may import its own stage and any stage before it.
STAGES = [
    "common",
    "data",
    "world",
    "training",
    "encoders",
    "retrieval",
    "interests",
    "fusion",
    "generation",
    "unified",
    "evaluation",
    "scale",
    "service",
    "demo",
    "cli",
]


def _modules():
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        yield ".".join(("tailorgen", *rel.parts)), path


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("tailorgen.")}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_every_module_belongs_to_a_known_stage():
    unknown = [m for m, _ in _modules() if m not in ("tailorgen.__init__",) and _stage(m) is None]
    assert not unknown, f"add these to a stage (and to docs/ARCHITECTURE.md): {unknown}"


def test_stages_import_only_upstream_stages():
    violations = []
    for module, path in _modules():
        own = _stage(module)
        if own is None:
            continue
        for imported in _imports(path):
            other = _stage(imported)
            if other and STAGES.index(other) > STAGES.index(own):
                violations.append(f"{module} imports {imported} ({other} is downstream of {own})")
    assert not violations, "\n".join(violations)


def test_the_judge_is_never_imported_by_a_stage_that_trains_or_generates():
    # Only evaluation itself, and the user-facing layers that run evaluations, may use the judge.
    allowed = {"evaluation", "service", "cli", "demo"}
    offenders = [
        module
        for module, path in _modules()
        if _stage(module) not in allowed and any(i.startswith("tailorgen.evaluation") for i in _imports(path))
    ]
    assert not offenders, (
        f"these modules import the judge/evaluation, which must never be a training signal: {offenders}"
    )


def test_the_checker_sees_violations(tmp_path):
    # Guard against a test that cannot fail: the parser must find a downstream import.
    f = tmp_path / "m.py"
    f.write_text("from tailorgen.evaluation.judge import Judge\nimport tailorgen.data\n")
    assert _imports(f) == {"tailorgen.evaluation.judge", "tailorgen.evaluation.judge.Judge", "tailorgen.data"}
