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


# The layers that run evaluations for a person; every other stage trains or generates.
EVALUATING = {"evaluation", "service", "cli", "demo"}
# And one module of a stage that otherwise generates: the benchmark run as map-reduce on Dask
# (it trains nothing; scale's encode, index and generate stay under the rule).
EVALUATING_MODULES = {"tailorgen.scale.bench"}
# The shop's hidden ground truth: its oracle (a user's true utility) and its truth/ folder.
ORACLE = ("tailorgen.world.oracle", "tailorgen.world.Oracle")


def test_the_judge_and_the_oracle_are_never_imported_by_a_stage_that_trains_or_generates():
    """Neither the judge nor the oracle is ever a training signal, a reward or a selection criterion.

    That holds for every model tailorgen trains, and for the learned preference reward of
    "Generate, Not Recommend" above all: a reward model lives in a stage that trains, so it can
    never be the judge or the oracle, nor read either.
    """
    offenders = []
    for module, path in _modules():
        stage = _stage(module)
        if stage in EVALUATING or module in EVALUATING_MODULES:
            continue
        for imported in _imports(path):
            judge = imported.startswith("tailorgen.evaluation")
            oracle = imported.startswith(ORACLE) and stage != "world"
            if judge or oracle:
                offenders.append(f"{module} imports {imported}")
    assert not offenders, (
        "the judge and the oracle are for evaluation only, never a training signal or reward:\n" + "\n".join(offenders)
    )


def _reads_truth(path: Path) -> bool:
    """Whether a module names the truth/ folder in a string: a path into the shop's hidden ground truth."""
    for node in ast.walk(ast.parse(path.read_text())):
        text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
        if text == "truth" or text.startswith("truth/"):
            return True
    return False


def test_only_world_and_evaluation_read_the_shops_ground_truth():
    # Generic code asks world.knowledge_for(dataset) for what a shop knows (its vocabulary,
    # counterfactual renders); only the simulator itself and the evaluation read truth/. The data
    # schema names the folder, and the store only checks that it is there (Dataset.has_ground_truth).
    allowed = {"world", "evaluation", "tailorgen.data.schema", "tailorgen.data.store"}
    offenders = [m for m, path in _modules() if not {_stage(m), m} & allowed and _reads_truth(path)]
    assert not offenders, f"these modules read truth/ directly; go through world.knowledge: {offenders}"


def test_the_checker_sees_violations(tmp_path):
    # Guard against a test that cannot fail: the parser must find a downstream import and a truth/ path.
    f = tmp_path / "m.py"
    f.write_text("from tailorgen.evaluation.judge import Judge\nimport tailorgen.data\n")
    assert _imports(f) == {"tailorgen.evaluation.judge", "tailorgen.evaluation.judge.Judge", "tailorgen.data"}
    f.write_text("from tailorgen.world import Oracle\nroot = dataset / 'truth' / 'items.parquet'\n")
    assert "tailorgen.world.Oracle" in _imports(f) and _reads_truth(f)
    f.write_text("text = 'the truth is out there'\n")
    assert not _reads_truth(f)
