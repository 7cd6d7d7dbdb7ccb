import json
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from browser import assert_page_renders, render
from tailorgen.cli import main


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections = 0
        self.images = []

    def handle_starttag(self, tag, attrs):
        self.sections += tag == "section"
        if tag == "img":
            self.images.append(dict(attrs)["src"])


@pytest.fixture(scope="module")
def demo(tiny_generator, tiny_vq, tmp_path_factory):
    from tailorgen.unified.train import UniMPTrainConfig, train_unimp
    from tailorgen.world import WorldConfig
    from tailorgen.world.build import ensure_shop

    out = tmp_path_factory.mktemp("demo") / "demo"
    # The shipped unified model answers for the default demo shop only: train a tiny one on this one.
    shop = ensure_shop(out / "shop", WorldConfig(n_items=200, n_users=40, seed=0), progress=False)
    tiny = dict(steps=10, batch_size=4, hidden=32, layers=1, heads=2, bpe_vocab=300, threads=1)
    train_unimp(UniMPTrainConfig(**tiny, vq=str(tiny_vq)), shop, out.parent / "unimp", progress=False)
    args = ["demo", "--out", str(out), "--items", "200", "--users", "40", "--demo-users", "2", "--images", "2"]
    res = CliRunner().invoke(
        main, [*args, "--steps", "2", "--generator", str(tiny_generator[0]), "--unimp", str(out.parent / "unimp")]
    )
    return out, res


def test_demo_runs_the_pipeline_and_writes_a_page(demo):
    out, res = demo
    assert res.exit_code == 0, res.output
    assert "index.html" in res.output
    for name in ("samples.png", "history_lengths.png", "summary.json", "manifest.json", "index.html"):
        assert (out / name).exists(), name
    page = _Collect()
    page.feed((out / "index.html").read_text())
    assert page.sections == 2
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    records = [json.loads(line) for line in (out / "generated" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(len(r["images"]) == 2 for r in records)
    text = (out / "index.html").read_text()
    for r in records:
        assert r["user_id"] in text and r["item_id"] in text
        # The test generator reads the history accent (the recipe's spec), so each record carries it.
        assert len(r["history_accent"]) == 5
    assert text.count("class='explanation'") == 2 and "unified model (UniMP)" in text
    assert text.count("class='imagined'") == 2 * 4  # four images drawn per user
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["demo_users"] == 2 and "page" in manifest["artifacts"]


def test_the_demo_page_renders_in_a_browser(demo, browser):
    out, res = demo
    assert res.exit_code == 0, res.output
    page = render(browser, out / "index.html", selectors=("section", "section h2", "section .tag"))
    assert_page_renders(page)
    assert page.title.startswith("tailorgen demo")
    assert page.counts["section"] == page.counts["section h2"] == 2 and page.counts["section .tag"] > 0
    # Per user: history images, the target item, its neighbours and the generated images, all decoded.
    assert len(page.images) >= 2 * (1 + 2 + 2 + 5 + 5) and page.height > 900  # + UniMP's top-5 and search
