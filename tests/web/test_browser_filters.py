"""The page's filter row in Debian's chromium against a live server (fixtures of
test_browser): a folder filter narrows text and image searches, "load more" keeps it, a bad
value shows the server's reason, and the row is worded in both languages."""

from __future__ import annotations

import pytest

from tests.web.conftest import LiveServer
from tests.web.test_browser import (  # noqa: F401 - fixtures and helpers of the page tests
    CHROMIUM,
    browser,
    cards,
    message,
    open_page,
    page,
    photo,
    wait_until,
)
from tests.web.test_browser_i18n import UI_TEXTS, untranslated

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: `make setup` installs it (apt-get install chromium)",
)


def _summary(pg) -> str:  # type: ignore[no-untyped-def]
    return str(pg.text_content("#summary"))


def test_folder_filter_narrows_every_search(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    open_page(page, live_server, "?k=3")
    page.fill("#q", "stripes")
    page.press("#q", "Enter")
    page.wait_for_selector(".card")
    page.click("#filters summary")
    page.fill("#f-in", "d1")  # make_photos: p001, p004, p007, p010
    page.press("#f-in", "Tab")  # a typed value applies when the field is left
    wait_until(page, "document.getElementById('summary').textContent.includes('of 4 images')")
    assert "(1 on)" in str(page.text_content("#filter-count"))
    page.click("#more")  # the next page keeps the filter
    wait_until(page, "document.querySelectorAll('.card').length === 4")
    assert page.is_hidden("#more")
    # an uploaded photo searches with the filter too
    page.set_input_files("#file", str(photo(live_server)))
    wait_until(page, "document.querySelectorAll('.card').length === 3")
    assert "of 4 images" in _summary(page)
    col = live_server.server.config.app.state.service.collection
    assert all(col.get(int(card["id"])).relpath.startswith("d1/") for card in cards(page))
    # a value the server refuses: its reason, in the CLI's words
    page.fill("#f-min-size", "huge")
    page.press("#f-min-size", "Tab")
    assert "--min-size 'huge': not a size" in message(page)
    page.click("#filter-clear")
    wait_until(page, "document.getElementById('message').hidden")
    assert str(page.text_content("#filter-count")) == ""


def test_the_filter_row_in_both_languages(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    open_page(page, live_server)
    page.click("#filters summary")
    page.fill("#f-camera", "x")
    page.press("#f-camera", "Tab")
    texts = page.evaluate(UI_TEXTS)
    assert "Camera" in texts and not untranslated(texts, "en")
    page.click('#lang-switch [data-lang="zh"]')
    zh = page.evaluate(UI_TEXTS)
    assert "相机" in zh and "清除筛选" in zh, zh
    assert not untranslated(zh, "zh"), untranslated(zh, "zh")
    page.click('#lang-switch [data-lang="en"]')
