"""Open tailorgen's HTML pages in a real browser (headless Chromium driven by Playwright).

The pages are what people look at, so the tests check what a browser makes of them, not only the
markup: every image decodes, nothing logs an error, and the layout has the size it should.
Chromium comes from Debian (`chromium-headless-shell`, installed by `make system-deps`); Playwright
only drives it, so nothing is downloaded at test time.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_NAMES = ("chromium-headless-shell", "chromium")


def find_chromium() -> str | None:
    explicit = os.environ.get("TAILORGEN_CHROMIUM")
    if explicit:
        return explicit
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


@dataclass
class RenderedPage:
    title: str
    images: list[dict]  # src kind, complete, natural width/height, rendered width
    console_errors: list[str]
    page_errors: list[str]
    counts: dict[str, int]  # CSS selector -> number of matches
    height: int


def render(browser, path: Path, selectors: tuple[str, ...] = ()) -> RenderedPage:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console_errors: list[str] = []
    page_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    page.goto(path.resolve().as_uri(), wait_until="load")
    images = page.evaluate(
        """Array.from(document.images).map(i => ({
            src: i.src.slice(0, 22), complete: i.complete,
            natural_width: i.naturalWidth, natural_height: i.naturalHeight,
            width: i.getBoundingClientRect().width}))"""
    )
    counts = {s: page.locator(s).count() for s in selectors}
    height = page.evaluate("document.documentElement.scrollHeight")
    title = page.title()
    page.close()
    return RenderedPage(title, images, console_errors, page_errors, counts, height)


def assert_page_renders(page: RenderedPage) -> None:
    """Every image decoded and laid out with a size, and no script or console error."""
    assert page.images, "the page shows no images"
    broken = [im for im in page.images if not (im["complete"] and im["natural_width"] > 0 and im["width"] > 0)]
    assert not broken, f"{len(broken)} of {len(page.images)} images did not render: {broken[:3]}"
    assert not page.page_errors and not page.console_errors, (page.page_errors, page.console_errors)
