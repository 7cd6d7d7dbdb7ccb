"""`tailorgen bench ...`: the benchmarks that back the figures in docs/benchmarks.md."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main
from tailorgen.cli.config_options import ConfigCommand
from tailorgen.cli.generate import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLER_NAMES
from tailorgen.cli.options import device_option


@main.group()
def bench() -> None:
    """Benchmarks on the simulated shop, with bootstrap confidence intervals and paired tests."""


def iamg_bench_options(fn):
    """The options ``tailorgen bench iamg`` and ``tailorgen scale bench iamg`` share."""
    options = [
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Shop seed (and the users and targets drawn)."),
        click.option("--users", type=click.IntRange(min=2), default=100, show_default=True, help="Held-out users."),
        click.option("--steps", type=int, default=DEFAULT_STEPS, show_default=True, help="Denoising steps."),
        click.option("--sampler", type=click.Choice(SAMPLER_NAMES), default=DEFAULT_SAMPLER, show_default=True,
                     help="The generator's sampler (see `tailorgen generate --help`)."),
        click.option("--guidance", type=float, default=2.0, show_default=True, help="Classifier-free guidance scale."),
        click.option("--work-dir", type=click.Path(file_okay=False), default="runs/work", show_default=True,
                     help="Where the benchmark shop is built (reused when it exists)."),
        click.option("--out", type=click.Path(file_okay=False), default=None,
                     help="Also write iamg_benchmark.json (the run's record: every number, per user too) "
                     "and iamg_examples.png."),
        click.option("--generator", "generator_path", type=click.Path(file_okay=False), default=None,
                     help="Generator pipeline folder (default: the shipped one)."),
        click.option("--judge", "judge_path", type=click.Path(file_okay=False), default=None,
                     help="Judge checkpoint folder (default: the shipped one)."),
        click.option("--dataset", type=click.Path(exists=True, file_okay=False), default=None,
                     help="Benchmark on this dataset instead of a shop; without ground truth only the "
                     "embedding-based metrics are computed (the table says which are not, and why)."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print the run's record (the common benchmark layout) as JSON instead of a table."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


@bench.command("iamg")
@iamg_bench_options
def bench_iamg(
    seed, users, steps, sampler, guidance, work_dir, out, generator_path, judge_path, dataset, as_json
) -> None:
    """Compare the original item, plain generation, rewrite only, retrieval only and full I-AM-G.

    For each of USERS held-out users and a target item they never saw, each method makes one
    image from the same noise. The judge reads its attributes and the oracle scores them for
    the user (personalization gain over the original item) and for another user (control).
    Also: fidelity (category kept), history similarity, text alignment, novelty, and per-stage
    latency. Any seed works; the documented figures name theirs.
    """
    from tailorgen.evaluation.bench_iamg import IAMGBenchConfig, format_table, run_iamg_benchmark

    cfg = IAMGBenchConfig(seed=seed, users=users, steps=steps, sampler=sampler, guidance=guidance)
    result = run_iamg_benchmark(
        cfg, work_dir=work_dir, out=out, generator=generator_path, judge=judge_path, dataset=dataset
    )
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))


@bench.command("shop")
@click.option("--seed", "seeds", type=int, multiple=True,
              help="Shop seed; repeat for several (default: the documented seed 0).")  # fmt: skip
@click.option("--held-out", is_flag=True,
              help="Also run the held-out scenario seeds (101, 102, 103) that nothing was tuned on.")  # fmt: skip
@click.option(
    "--users",
    type=click.IntRange(min=2),
    default=100,
    show_default=True,
    help="Held-out users per shop (the shop has 300). 100 take about 75 s a seed on 2 cores at the default sampler"
    " once the seed's shop is built (DDIM at 25 steps: 6 min or more), 300 about three times that; a lead of 0.2"
    " in gain is found about 3 times in 4 with 300 users, 1 in 3 with 100 (docs/benchmarks.md).",
)
@click.option("--steps", type=int, default=DEFAULT_STEPS, show_default=True, help="Denoising steps.")
@click.option("--sampler", type=click.Choice(SAMPLER_NAMES), default=DEFAULT_SAMPLER, show_default=True,
              help="The generator's sampler (see `tailorgen generate --help`).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False), default="runs/bench/shop", show_default=True)
@click.option("--work-dir", type=click.Path(file_okay=False), default="runs/work", show_default=True)
@click.option("--generator", "generator_path", type=click.Path(file_okay=False), default=None,
              help="Generator pipeline folder (default: the shipped one).")  # fmt: skip
@click.option("--judge", "judge_path", type=click.Path(file_okay=False), default=None,
              help="Judge checkpoint folder (default: the shipped one).")  # fmt: skip
def bench_shop(seeds, held_out, users, steps, sampler, out, work_dir, generator_path, judge_path) -> None:
    """The standard shop benchmark: `bench iamg` on each seed, then one HTML report for all of them.

    Prints each seed's table and leaves OUT/iamg-seedS/ (every number, per user too, and an image
    grid), OUT/report.html and OUT/report.json. The report says which seeds it used and which of
    them are held out.
    """
    from tailorgen.evaluation.bench_iamg import IAMGBenchConfig, format_table
    from tailorgen.evaluation.bench_shop import DEFAULT_SEED, HELD_OUT_SEEDS, run_shop_benchmark, seeds_note

    chosen = list(dict.fromkeys([*(seeds or [DEFAULT_SEED]), *(HELD_OUT_SEEDS if held_out else [])]))
    base = IAMGBenchConfig(steps=steps, sampler=sampler)
    results, _ = run_shop_benchmark(chosen, out, users, work_dir, generator_path, judge_path, base=base)
    for result in results:
        click.echo(format_table(result) + "\n")
    click.echo(f"{seeds_note(chosen)} Report: {out}/report.html")


@main.command("eval")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="runs/report", show_default=True)
def eval_cmd(run_dirs, out) -> None:
    """Compare benchmark runs (folders written by `tailorgen bench ... --out DIR`) in an HTML report.

    Any benchmark's run folder works: each holds one record in the common layout
    (*_benchmark.json). Writes OUT/report.html (per task, metric tables with 95% intervals and
    paired tests; latency, plots across runs, example images) and OUT/report.json with every
    number it shows. The runs must compare the same tasks and methods.
    """
    from tailorgen.evaluation.report import write_report

    numbers = write_report(list(run_dirs), out)
    click.echo(f"compared {len(numbers['runs'])} run(s): open {out}/report.html")


@bench.command(
    "unimp", cls=ConfigCommand, config="tailorgen.evaluation.bench_unimp:UniMPBenchConfig", run_options=False
)
@click.option("--dataset", type=click.Path(exists=True, file_okay=False), default=None,
              help="Benchmark on this dataset (an imported MovieLens or Amazon one) instead of a shop.")  # fmt: skip
@click.option("--work-dir", type=click.Path(file_okay=False), default="runs/work", show_default=True,
              help="Where the shop is built and the models kept (reused while their config holds).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Also write unimp_benchmark.json (every number, per user too) and report.html.")  # fmt: skip
@device_option(help="Where the unified models train and answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON instead of a table.")
def bench_unimp(dataset, work_dir, out, device, as_json, cfg) -> None:
    """UniMP against the field's baselines, leave-one-out, on every user of a shop (or DATASET).

    Recommendation over the whole catalog (HR/NDCG/MRR at 3, 5, 10; against most-popular, SASRec
    and GRU4Rec from cornac), search (against MiniLM dense retrieval and BM25), rating (RMSE, MAE;
    against user/item means and matrix factorization), explanation (BLEU-4, unigram precision,
    ROUGE; on a shop also the oracle's factual score; against the user's most similar review and
    an attribute template). `unimp-single` is the same recipe trained on one task. Intervals are
    95% bootstrap; paired tests are Wilcoxon over users. The models train on first use (about
    10 minutes each on 2 cores at the defaults) and are reused after.
    """
    from tailorgen.evaluation.bench_unimp import format_table, run_unimp_benchmark

    record = run_unimp_benchmark(cfg, work_dir=work_dir, out=out, dataset=dataset, device=device)
    if out:
        from tailorgen.evaluation.report import write_report

        write_report([out], out)
    click.echo(json.dumps(record, indent=2) if as_json else format_table(record))


@bench.command("vq")
@click.option("--vq", "vq_path", type=click.Path(file_okay=False), default=None,
              help="Tokenizer folder (default: the shipped one, src/tailorgen/assets/vq).")  # fmt: skip
@click.option("--seed", type=int, default=9001, show_default=True,
              help="Shop seed; 9001 is one no model was trained or tuned on.")  # fmt: skip
@click.option("--items", type=click.IntRange(min=1), default=2000, show_default=True, help="Items of that shop.")
@click.option("--work-dir", type=click.Path(file_okay=False), default="runs/work", show_default=True,
              help="Where the shop is built (reused when it exists).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Also write vq_quality.json and vq_reconstructions.png "
                   "(originals above their reconstructions).")  # fmt: skip
@click.option("--judge", "judge_path", type=click.Path(file_okay=False), default=None,
              help="Judge checkpoint folder (default: the shipped one).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a table.")
def bench_vq(vq_path, seed, items, work_dir, out, judge_path, as_json) -> None:
    """What the VQ image tokenizer's codes keep: the judge on originals and on their reconstructions.

    Per attribute (category, colour, pattern, second colour): the judge's accuracy on the
    originals and on decode(encode(image)), and their ratio (target: >= 0.97 for category,
    colour and pattern); PSNR of the reconstructions. About a minute on 2 cores at the defaults.
    """
    from tailorgen.evaluation.vq_quality import format_table, run_vq_quality

    result = run_vq_quality(vq_path, judge_path, seed=seed, items=items, work_dir=work_dir, out=out)
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))


@bench.command("gnr", cls=ConfigCommand, config="tailorgen.evaluation.bench_gnr:GNRBenchConfig", run_options=False)
@click.option("--dataset", type=click.Path(exists=True, file_okay=False), default=None,
              help="Benchmark on this simulated shop instead of building one (it needs the oracle).")  # fmt: skip
@click.option("--work-dir", type=click.Path(file_okay=False), default="runs/work", show_default=True,
              help="Where the shop is built and the models kept (reused while their config holds).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Also write gnr_benchmark.json, the RL curves (gnr_rl_curves.png) and report.html.")  # fmt: skip
@device_option(help="Where the models train and generate.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON instead of a table.")
def bench_gnr(dataset, work_dir, out, device, as_json, cfg) -> None:
    """Generate, Not Recommend: drawn next items against recommended ones, in each test user's future.

    Trains (or reuses) the multi-task UniMP model, the preference reward and GNR (SFT, then RL; the
    judge and the oracle watch RL on users the reward never saw, and are never read by it). For
    each leave-one-out test user, from their training history: the oracle's utility at the time of
    their held-out interaction of what the judge reads on GNR's items, against GNR before RL, UniMP's
    and SASRec's top recommendations, the best catalog item for the user, and GNR's items for another
    user; similarity to the user's future against their past; validity, novelty and diversity.
    """
    from tailorgen.evaluation.bench_gnr import format_table, run_gnr_benchmark

    record = run_gnr_benchmark(cfg, work_dir=work_dir, out=out, dataset=dataset, device=device)
    if out:
        from tailorgen.evaluation.report import write_report

        write_report([out], out)
    click.echo(json.dumps(record, indent=2) if as_json else format_table(record))
