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
def demo(tiny_generator, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    args = ["demo", "--out", str(out), "--items", "200", "--users", "40", "--demo-users", "2", "--images", "2"]
    res = CliRunner().invoke(main, [*args, "--steps", "2", "--generator", str(tiny_generator[0])])
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
    assert len(page.images) >= 2 * (1 + 2 + 2) and page.height > 900
