"""The web page of `tailorgen serve`, in headless Chromium against the real server."""

from __future__ import annotations

import os
from pathlib import Path

from tailorgen.data import Dataset

SCREENSHOT = os.environ.get("TAILORGEN_SCREENSHOT")  # set to a path to keep the page's picture (docs)


def _images_loaded(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(
        selector, "els => els.map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.getBoundingClientRect().width}))"
    )


def test_a_user_sees_history_interests_answers_and_made_images(server, browser, small_shop):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_selector("#recommend figure", timeout=60_000)
    page.wait_for_function("document.querySelector('#explanation').textContent.length > 0", timeout=60_000)
    user = page.eval_on_selector("#user", "s => s.value")
    history = Dataset(small_shop).user_histories()[user]
    assert page.locator("#history figure").count() == min(len(history), 50)
    assert page.locator("#interests .tag").count() > 0
    assert page.locator("#recommend figure").count() == 10
    assert "predicted rating" in page.inner_text("#rating")

    page.click("#personalize")
    page.wait_for_selector("#personalized figure.made img", timeout=120_000)
    page.fill("#keywords", "dress red")
    page.click("#imagine-form button")
    page.wait_for_selector("#imagined figure.made img", timeout=120_000)
    page.click("#generate")
    page.wait_for_selector("#generated figure.made img", timeout=120_000)
    page.click("#search-form button")
    page.wait_for_selector("#search figure", timeout=60_000)
    page.wait_for_load_state("networkidle")
    for row in ("#history", "#recommend", "#personalized", "#imagined", "#generated", "#search"):
        images = _images_loaded(page, f"{row} img")
        assert images and all(i["ok"] and i["w"] > 0 for i in images), (row, images)
    assert page.locator("#personalized figure").count() == 4
    assert not errors, errors
    if SCREENSHOT:
        page.screenshot(path=str(Path(SCREENSHOT)), full_page=True)
    page.close()
