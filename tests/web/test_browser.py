"""The page in a real browser: Playwright drives Debian's chromium against a live uvicorn.

`make setup` installs chromium (apt) when it is missing; without it these tests skip. Never
`playwright install`: it downloads a browser build, which this project cannot fetch.
"""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossmodal.web.service import dogs_available
from tests.conftest import STANFORD_DOGS
from tests.web.conftest import CAPTIONS, LiveServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: `make setup` installs it (apt-get install chromium)",
)
playwright_api = pytest.importorskip("playwright.sync_api")

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, live_server: LiveServer) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    # a CSP violation or a script error would show up here, not as a failed assertion
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    pg.problems = problems  # type: ignore[attr-defined]
    yield pg
    context.close()


def wait_until(pg, expression: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:  # type: ignore[no-untyped-def]
    """Poll a JS expression from here: Playwright's wait_for_function evaluates strings with
    eval() in the page, which the page's Content-Security-Policy (rightly) forbids."""
    deadline = time.monotonic() + timeout_s
    while not pg.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {expression}")
        time.sleep(0.05)


def open_page(pg, server: LiveServer, query: str = "") -> None:  # type: ignore[no-untyped-def]
    pg.goto(server.url + "/" + query)
    wait_until(pg, "document.getElementById('stats').textContent.length > 0")


def photo(server: LiveServer) -> Path:
    col = server.server.config.app.state.service.collection
    return Path(col.get(1).path)


def cards(pg) -> list[dict]:  # type: ignore[no-untyped-def]
    return pg.eval_on_selector_all(
        ".card",
        """els => els.map(e => ({
            id: e.dataset.id,
            score: e.querySelector('.card-score').textContent,
            text: (e.querySelector('.card-text') || {}).textContent || '',
            img: e.querySelector('img').getAttribute('src'),
        }))""",
    )


def message(pg) -> str:  # type: ignore[no-untyped-def]
    pg.wait_for_selector("#message:not([hidden])")
    return str(pg.text_content("#message"))


def test_text_query_shows_cards_and_loads_more(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    open_page(page, live_server, "?k=5")
    page.fill("#q", "a dog running on the grass")
    page.press("#q", "Enter")
    page.wait_for_selector(".card")
    first = cards(page)
    assert len(first) == 5
    assert all(c["img"].startswith("/api/thumbnail/") and float(c["score"]) for c in first)
    # thumbnails really load (naturalWidth > 0 once decoded)
    wait_until(
        page,
        "[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)",
    )
    assert "of" in str(page.text_content("#summary"))
    page.click("#more")
    wait_until(page, "document.querySelectorAll('.card').length === 10")
    assert len({c["id"] for c in cards(page)}) == 10
    assert not page.problems


def test_upload_with_file_picker_finds_similar_images(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    open_page(page, live_server)
    page.set_input_files("#file", str(photo(live_server)))
    page.wait_for_selector(".card")
    assert page.get_attribute('[data-mode="i2i"]', "aria-checked") == "true"
    assert page.is_visible("#preview") and page.is_visible("#preview-img")
    top = cards(page)[0]
    assert top["id"] == "1" and float(top["score"]) > 0.99  # the image itself ranks first
    # image -> text: the cards now show captions
    page.click('[data-mode="i2t"]')
    wait_until(page, "document.querySelector('.card .card-text') !== null")
    wait_until(page, "document.getElementById('summary').textContent.includes('captions')")
    texts = [c["text"] for c in cards(page)]
    assert texts and all(t for t in texts)
    stats = live_server.server.config.app.state.service.collection.stats()
    if stats["images"] == 12:  # without Flickr8k every caption is one of ours
        assert set(texts) <= set(CAPTIONS)
    assert not page.problems


def test_synthetic_drop_searches_with_the_dropped_image(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    open_page(page, live_server)
    data = base64.b64encode(photo(live_server).read_bytes()).decode()
    page.evaluate(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'dropped.jpg', {type: 'image/jpeg'}));
            const zone = document.getElementById('dropzone');
            const init = {dataTransfer: dt, bubbles: true, cancelable: true};
            zone.dispatchEvent(new DragEvent('dragover', init));
            zone.dispatchEvent(new DragEvent('drop', init));
        }""",
        data,
    )
    page.wait_for_selector(".card")
    assert cards(page)[0]["id"] == "1"
    assert page.text_content("#preview-name") == "dropped.jpg"
    assert not page.problems


def test_click_a_card_searches_by_that_image(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    open_page(page, live_server)
    page.fill("#q", "stripes")
    page.click("#search-button")
    page.wait_for_selector(".card")
    clicked = cards(page)[2]["id"]
    with page.expect_response(lambda r: "/api/search/by-id/" in r.url) as info:
        page.click(f'.card[data-id="{clicked}"]')
    assert info.value.status == 200
    wait_until(page, f"!document.querySelector('.card[data-id=\"{clicked}\"]')")
    page.wait_for_selector(".card")
    assert clicked not in {c["id"] for c in cards(page)}  # the image itself is left out
    assert page.get_attribute('[data-mode="i2i"]', "aria-checked") == "true"
    assert page.is_visible("#preview-img")


def test_non_image_upload_shows_the_reason(page, live_server: LiveServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    open_page(page, live_server)
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is a text file with a .jpg name")
    page.set_input_files("#file", str(fake))
    text = message(page)
    assert "not an image" in text
    assert "error" in str(page.get_attribute("#message", "class"))
    assert page.query_selector(".card") is None


def test_empty_query_and_server_refusals_are_shown(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    open_page(page, live_server)
    page.click("#search-button")
    assert "Type a few words" in message(page)
    # past the input's maxlength: the server's refusal is shown as it wrote it
    page.evaluate("document.getElementById('q').removeAttribute('maxlength')")
    page.fill("#q", "x" * 1001)
    page.click("#search-button")
    wait_until(page, "document.getElementById('message').textContent.includes('q:')")


def test_phone_width_has_no_horizontal_scroll(browser, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(
        viewport={"width": 375, "height": 812},
        device_scale_factor=2,
        is_mobile=True,
        locale="en-US",
    )
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    try:
        open_page(pg, live_server)
        pg.fill("#q", "a long query " * 10)
        pg.press("#q", "Enter")
        pg.wait_for_selector(".card")
        pg.set_input_files("#file", str(photo(live_server)))
        pg.wait_for_selector("#preview:not([hidden])")
        pg.wait_for_selector(".card")
        widths = pg.evaluate(
            "({scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth,"
            " grid: document.getElementById('results').getBoundingClientRect().right})"
        )
        assert widths["scroll"] <= widths["inner"], widths
        assert widths["grid"] <= widths["inner"], widths
        columns = pg.evaluate(
            "getComputedStyle(document.getElementById('results'))"
            ".gridTemplateColumns.split(' ').length"
        )
        assert columns == 2
    finally:
        context.close()


def _dog_photo() -> Path:
    labels = STANFORD_DOGS / "labels.tsv"
    if not labels.is_file():
        pytest.skip(f"../shared/data not found: no Stanford Dogs at {STANFORD_DOGS}")
    for line in labels.read_text(encoding="utf-8").splitlines()[1:]:
        name, _, breed = line.split("\t")
        if breed == "Chihuahua" and (STANFORD_DOGS / "images" / name).is_file():
            return STANFORD_DOGS / "images" / name
    pytest.skip("no Chihuahua photo in ../shared/data/stanford_dogs")


@pytest.mark.skipif(not dogs_available(), reason="the dog edition is not installed")
def test_chat_answers_a_chinese_question_about_the_uploaded_photo(  # type: ignore[no-untyped-def]
    page, live_server: LiveServer
) -> None:
    dog = _dog_photo()
    open_page(page, live_server)
    page.wait_for_selector("#chat:not([hidden])")
    page.set_input_files("#file", str(dog))
    page.wait_for_selector(".card")
    assert page.is_visible("#chat-photo")  # the chip: this photo goes with the next question
    page.fill("#question", "这是什么品种？")
    with page.expect_response(lambda r: r.url.endswith("/api/dogs/chat"), timeout=60_000) as info:
        page.click("#ask-button")
    body = info.value.json()
    assert info.value.status == 200 and body["lang"] == "zh" and body["breeds"], body
    page.wait_for_selector(".bubble.answer")
    answer = str(page.text_content(".bubble.answer"))
    assert "Chihuahua" in answer and "吉娃娃" in answer, answer
    assert page.query_selector(".bubble.answer .facts li") is not None
    assert "recognised as Chihuahua" in str(page.text_content(".bubble.answer .facts"))
    # sent: the chip stays (the server keeps the photo for follow-ups) and says so
    assert "about this photo" in str(page.text_content("#chat-photo"))
    assert not page.problems
