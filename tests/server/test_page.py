"""The search and stats pages in a real headless Chromium (Debian's, driven by Playwright).

Screenshots are saved to tests/artifacts/ (git-ignored): search-page.png with a document open, stats-page.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.server.conftest import RunningServer, scifact_queries

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# Headless and quiet: without the background-networking flags Chromium keeps calling home on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions"]


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), "scripts/test installs Debian's chromium; run it, or apt-get install chromium"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            context.close()


def test_type_a_query_see_relevant_results_and_open_one(browser_page, server: RunningServer,
                                                         scifact_slice: Path) -> None:
    page = browser_page
    # A test query that the engine answers well (most do; some SciFact claims defeat any retriever).
    text, relevant = next((text, relevant) for _, text, relevant in scifact_queries(scifact_slice)
                          if relevant & {hit["doc_id"] for hit in server.search(text, k=3).body["hits"]})
    page.goto(server.url + "/")
    page.fill("#query", text)
    page.press("#query", "Enter")
    page.wait_for_selector("#results li.hit")
    hits = page.locator("#results li.hit")
    assert hits.count() == 10
    shown = [hits.nth(i).get_attribute("data-doc-id") for i in range(hits.count())]
    assert relevant & set(shown[:3]), (text, shown)
    assert "results (hybrid" in page.inner_text("#status")
    assert page.locator("#results li.hit").first.locator(".scores").inner_text().startswith("retrieval ")
    assert page.locator("#results mark").count() > 0  # query words highlighted in the snippets

    first_title = hits.first.locator(".hit-title").inner_text()
    hits.first.locator(".hit-title").click()
    page.wait_for_selector("#document:not([hidden])")
    assert page.inner_text("#document-title") == first_title
    opened = server.request("GET", f"/api/documents/{shown[0]}").body
    assert page.inner_text("#document-text").split()[:8] == opened["text"].split()[:8]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search-page.png"), full_page=True)


def test_modes_and_links_carry_the_query(browser_page, server: RunningServer) -> None:
    page = browser_page
    page.goto(server.url + "/?q=vitamin%20D&mode=bm25")
    page.wait_for_selector("#results li.hit")
    assert page.input_value("#query") == "vitamin D" and page.input_value("#mode") == "bm25"
    assert "(bm25" in page.inner_text("#status")


def test_stats_page_draws_the_figures(browser_page, server: RunningServer) -> None:
    page = browser_page
    server.search("vitamin D deficiency", k=3)
    page.goto(server.url + "/stats")
    page.wait_for_selector("#over-time svg rect")
    cards = page.inner_text("#cards")
    assert "queries" in cards and "documents" in cards
    assert page.locator("#latency svg rect").count() >= 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stats-page.png"), full_page=True)
