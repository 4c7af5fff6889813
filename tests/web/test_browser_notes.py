"""A result card's descriptions in Chromium: why it matched, the panel that lists a photo's
texts ("auto" on generated ones) and adds / removes an annotation, in both languages."""

from __future__ import annotations

import pytest

from tests.web.conftest import TOKEN, LiveServer
from tests.web.test_browser import (  # noqa: F401 - fixtures and helpers of the page tests
    CHROMIUM,
    browser,
    cards,
    open_page,
    page,
    wait_until,
)
from tests.web.test_browser_i18n import UI_TEXTS, untranslated

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: `make setup` installs it (apt-get install chromium)",
)


def test_card_says_why_and_edits_annotations(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    open_page(page, live_server)
    page.fill("#q", "a red striped card")
    page.press("#q", "Enter")
    page.wait_for_selector(".card .matched-line")
    first = page.locator(".card").first
    matched = page.locator(".card .matched-text").all_text_contents()
    assert "a red striped card on a table" in matched, matched
    before = [c["id"] for c in cards(page)]

    first.locator(".card-notes summary").click()  # opens the panel, searches nothing
    wait_until(page, "document.querySelectorAll('.card-notes[open] .notes-list li').length > 0")
    assert [c["id"] for c in cards(page)] == before
    kinds = first.locator(".notes-list .note-kind").all_text_contents()
    assert "caption" in kinds

    first.locator(".notes-input").fill("")
    first.locator(".notes-token").fill(TOKEN)
    first.locator(".notes-add").click()
    wait_until(page, "!document.querySelector('.card-notes[open] .notes-error').hidden")
    assert "empty annotation" in str(first.locator(".notes-error").text_content())

    first.locator(".notes-input").fill("Max at grandma's farm")
    first.locator(".notes-add").click()
    wait_until(page, "[...document.querySelectorAll('.card-notes[open] .note-text')]"
                     ".some(e => e.textContent === \"Max at grandma's farm\")")  # fmt: skip
    assert first.locator(".notes-token").is_hidden()  # kept for this tab

    page.click('#lang-switch [data-lang="zh"]')
    zh = page.evaluate(UI_TEXTS)
    assert "你的注释" in zh and not untranslated(zh, "zh"), untranslated(zh, "zh")
    page.click('#lang-switch [data-lang="en"]')

    first.locator(".note-remove").click()
    wait_until(page, "![...document.querySelectorAll('.card-notes[open] .note-text')]"
                     ".some(e => e.textContent === \"Max at grandma's farm\")")  # fmt: skip
    # the refused empty note is logged by the browser as a failed load; nothing else may be
    assert [p for p in page.problems if "422" not in p] == []  # type: ignore[attr-defined]
