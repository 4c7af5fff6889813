"""The page in both languages, the chat's scrolling, the phone layout and the modes' inputs
(issue 14), in Debian's chromium against a live server (fixtures of test_browser)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from crossmodal.web.service import dogs_available
from tests.web.conftest import LiveServer
from tests.web.test_browser import (  # noqa: F401 - fixtures and helpers of the page tests
    CHROMIUM,
    TIMEOUT_MS,
    browser,
    open_page,
    photo,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: `make setup` installs it (apt-get install chromium)",
)
needs_dogs = pytest.mark.skipif(not dogs_available(), reason="the dog edition is not installed")

#: Words of the page's English interface, written here by hand (not read from i18n.js), so
#: that a label hard-coded in English anywhere fails the Chinese page.
ENGLISH_UI = [
    "Text → Image",
    "Text → Text",
    "Image → Image",
    "Image → Text",
    "Search",
    "Describe a photo",
    "Drop a photo",
    "choose a file",
    "Clear",
    "Load more",
    "best first",
    "Score",
    "cosine",
    "Scales differ",
    "Ask about dogs",
    "Breeds, care",
    "Send",
    "New conversation",
    "Generate",
    "Web image search",
    "Image",
    "Video",
    "animate",
    "Search the web",
    "Needs a key",
    "Type a few words",
    "What breed",
    "images",
    "captions",
    "model:",
    "Language",
    "Photo attached",
    "Remove the photo",
    "Close the chat",
    "Your question",
    "The server refused",
]
#: ... and of the Chinese one, which must not show on the English page.
CHINESE_UI = [
    "文字",
    "图片",
    "搜索",
    "拖到",
    "选择文件",
    "清除",
    "加载更多",
    "最相似",
    "分数",
    "余弦",
    "问问狗狗",
    "发送",
    "新对话",
    "生成",
    "网络搜图",
    "视频",
    "需要密钥",
    "请输入",
    "描述",
    "模型",
    "语言",
    "照片",
    "移除",
    "关闭",
    "你的问题",
    "服务器",
]
#: Latin words the Chinese page may show: names, not words of the interface.
LATIN_ALLOWED = {
    "crossmodal",
    "EN",
    "MB",
    "docs",
    "dogs",
    "md",
    "chat",
    "image",
    "video",
    "web_search",
    "serve",
    "GPS",  # the filter row's names of things
    "jpg",
    "png",
}

#: Every text a person reads on the page (visible text nodes, and the placeholder, title,
#: aria-label and alt of rendered elements), leaving out data marked translate="no"
#: (captions, file names, the chat's questions and answers) and the language buttons.
UI_TEXTS = """(() => {
  const skip = (el) => !el || el.closest('[translate="no"], #lang-switch, #stats')
    || !el.checkVisibility();
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    if (text && !skip(node.parentElement)) out.push(text);
  }
  for (const el of document.body.querySelectorAll('*')) {
    if (skip(el)) continue;
    for (const name of ['placeholder', 'title', 'aria-label', 'alt']) {
      const value = el.getAttribute(name);
      if (value) out.push(value);
    }
  }
  const stats = document.getElementById('stats').textContent;  // numbers and a model name
  out.push(stats.replace(/(model: |模型：)\\S+/, '$1'));
  return out;
})()"""


def untranslated(texts: list[str], lang: str) -> list[str]:
    """The texts that are in the other language."""
    bad = []
    for text in texts:
        if lang == "zh":
            words = set(re.findall(r"[A-Za-z_]{2,}", text)) - LATIN_ALLOWED
            if any(s in text for s in ENGLISH_UI) or words:
                bad.append(text)
        elif any(s in text for s in CHINESE_UI) or re.search(r"[\u4e00-\u9fff]", text):
            bad.append(text)
    return bad


def new_page(browser, width: int = 1280, height: int = 900, **options):  # type: ignore[no-untyped-def]  # noqa: F811
    options.setdefault("locale", "en-US")
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.problems = problems  # type: ignore[attr-defined]
    return context, pg


@pytest.fixture()
def desk(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]  # noqa: F811
    context, pg = new_page(browser)
    yield pg
    context.close()


@pytest.fixture()
def phone(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]  # noqa: F811
    context, pg = new_page(browser, 375, 812, device_scale_factor=2, is_mobile=True)
    yield pg
    context.close()


def ask(pg, question: str) -> None:  # type: ignore[no-untyped-def]
    before = pg.evaluate("document.querySelectorAll('.bubble.answer, .bubble.error').length")
    pg.fill("#question", question)
    pg.click("#ask-button")
    wait_until(
        pg,
        f"document.querySelectorAll('.bubble.answer, .bubble.error').length > {before}",
        60,
    )


def test_language_switch_changes_every_visible_label(desk, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    open_page(desk, live_server)
    assert desk.evaluate("document.documentElement.lang") == "en"
    desk.click("#search-button")  # an error of the page's own: "type a few words"
    wait_until(desk, "!document.getElementById('message').hidden")
    desk.fill("#q", "stripes")
    desk.press("#q", "Enter")
    desk.wait_for_selector(".card")
    wait_until(desk, "document.getElementById('summary').textContent.length > 0")
    texts = desk.evaluate(UI_TEXTS)
    assert "Search" in texts and any("best first" in t for t in texts), texts
    assert not untranslated(texts, "en")

    desk.click('#lang-switch [data-lang="zh"]')
    zh = desk.evaluate(UI_TEXTS)
    assert desk.evaluate("document.documentElement.lang") == "zh-CN"
    assert "搜索" in zh and any("最相似" in t for t in zh), zh
    assert not untranslated(zh, "zh"), untranslated(zh, "zh")
    # a refusal of the server: its reason as it wrote it, after a translated prefix
    desk.evaluate("document.getElementById('q').removeAttribute('maxlength')")
    desk.fill("#q", "x" * 1001)
    desk.click("#search-button")
    wait_until(desk, "document.getElementById('message').textContent.includes('q:')")
    assert str(desk.text_content("#message")).startswith("服务器拒绝了请求")

    # remembered: a reload stays in Chinese; back to English leaves no Chinese behind
    desk.reload()
    wait_until(desk, "document.getElementById('stats').textContent.length > 0")
    assert desk.text_content("#search-button") == "搜索"
    desk.click('#lang-switch [data-lang="en"]')
    assert not untranslated(desk.evaluate(UI_TEXTS), "en")
    assert not desk.problems


def test_default_language_is_the_browsers(browser, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    context, pg = new_page(browser, locale="zh-CN")
    try:
        open_page(pg, live_server)
        assert pg.text_content("#search-button") == "搜索"
        assert pg.get_attribute('#lang-switch [data-lang="zh"]', "aria-checked") == "true"
        assert "张图片" in str(pg.text_content("#stats"))
    finally:
        context.close()


@needs_dogs
def test_fact_labels_are_readable_names_in_the_chosen_language(
    desk, live_server: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    open_page(desk, live_server)
    desk.wait_for_selector("#chat:not([hidden])")
    ask(desk, "Is a golden retriever good with kids?")
    facts = str(desk.text_content(".bubble.answer:last-child .facts"))
    assert "Golden Retriever · good with children" in facts, facts
    assert "golden_retriever" not in facts
    desk.click('#lang-switch [data-lang="zh"]')
    facts = str(desk.text_content(".bubble.answer:last-child .facts"))
    assert "金毛寻回犬 · 与孩子相处：好" in facts, facts
    assert not untranslated(desk.evaluate(UI_TEXTS), "zh")


def answer_in_view(pg) -> dict:  # type: ignore[no-untyped-def]
    return pg.evaluate(
        """(() => {
          const log = document.getElementById('chat-log').getBoundingClientRect();
          const all = document.querySelectorAll('#chat-log .bubble.answer');
          const last = all[all.length - 1].getBoundingClientRect();
          const el = document.getElementById('chat-log');
          return {logTop: log.top, logBottom: log.bottom, top: last.top, bottom: last.bottom,
                  overflow: el.scrollHeight > el.clientHeight + 1,
                  hasFacts: !!all[all.length - 1].querySelector('.facts li')};
        })()"""
    )


@needs_dogs
def test_chat_shows_the_whole_last_answer(desk, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    open_page(desk, live_server)
    desk.wait_for_selector("#chat:not([hidden])")
    questions = [
        "Is a golden retriever good with kids?",
        "How big is a Beagle?",
        "Does a Husky shed a lot?",
        "Is a Pug good for an apartment?",
        "How much exercise does a Border Collie need?",
    ]
    for question in questions:
        ask(desk, question)
        box = answer_in_view(desk)
        if box["overflow"]:
            break
    assert box["overflow"], "the log never filled: the test would prove nothing"
    assert box["hasFacts"], box
    # the newest answer, fact list included, lies inside the log's viewport
    assert box["bottom"] <= box["logBottom"] + 1 and box["top"] >= box["logTop"] - 1, box
    assert not desk.problems


def test_phone_reaches_the_chat_without_scrolling_past_the_results(  # type: ignore[no-untyped-def]
    phone, live_server: LiveServer
) -> None:
    open_page(phone, live_server)
    if not dogs_available():
        pytest.skip("the dog edition is not installed: no chat")
    phone.set_input_files("#file", str(photo(live_server)))
    phone.wait_for_selector(".card")
    results_bottom = phone.evaluate(
        "document.getElementById('results').getBoundingClientRect().bottom"
    )
    assert results_bottom > 812  # the results run past the screen
    assert phone.is_hidden("#chat")  # a sheet, until asked for
    button = phone.evaluate(
        "(() => { const r = document.getElementById('chat-open').getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom}; })()"
    )
    assert button["top"] >= 0 and button["bottom"] <= 812, button  # on screen, always
    phone.click("#chat-open")
    view = phone.evaluate(
        """(() => {
          const q = document.getElementById('question').getBoundingClientRect();
          const chip = document.getElementById('chat-photo');
          return {scrollY: window.scrollY, top: q.top, bottom: q.bottom,
                  chip: chip.checkVisibility() && chip.getBoundingClientRect().bottom <= 812};
        })()"""
    )
    assert view["scrollY"] == 0, view  # nothing was scrolled past
    assert view["top"] >= 0 and view["bottom"] <= 812, view  # the question box is on screen
    assert view["chip"], view  # and the uploaded photo is shown next to it
    ask(phone, "这是什么品种？")
    box = answer_in_view(phone)
    assert box["bottom"] <= box["logBottom"] + 1 and box["bottom"] <= 812, box
    phone.click("#chat-close")
    assert phone.is_hidden("#chat") and phone.is_visible("#chat-open")
    assert not phone.problems


@needs_dogs
def test_chat_photo_chip_can_be_removed(desk, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    open_page(desk, live_server)
    desk.set_input_files("#file", str(photo(live_server)))
    desk.wait_for_selector("#chat-photo:not([hidden])")
    desk.click("#chat-photo-remove")
    assert desk.is_hidden("#chat-photo")
    with desk.expect_request(lambda r: r.url.endswith("/api/dogs/chat")) as sent:
        desk.fill("#question", "Is a Beagle good with kids?")
        desk.click("#ask-button")
    body = sent.value.post_data_buffer or b""
    assert b'name="file"' not in body  # the removed photo did not go with the question
    desk.wait_for_selector(".bubble.answer")


def test_modes_dim_what_does_not_apply_and_group_captions(desk, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    open_page(desk, live_server, "?k=100")  # more captions than photos: some must share one
    hints = {}
    for mode in ("t2i", "t2t"):
        desk.click(f'[data-mode="{mode}"]')
        hints[mode] = desk.text_content("#mode-hint")
    assert "words and each photo" in hints["t2i"] and "each caption" in hints["t2t"]
    assert all("Scales differ" in h for h in hints.values())
    desk.set_input_files("#file", str(photo(live_server)))
    desk.wait_for_selector(".card")
    assert desk.is_visible("#preview-img")
    assert "inactive" in str(desk.get_attribute("#search-form", "class"))
    # text -> text: the uploaded photo does not apply, and is not shown
    desk.fill("#q", "stripes")
    desk.click('[data-mode="t2t"]')
    wait_until(desk, "document.getElementById('summary').textContent.includes('captions')")
    assert desk.is_hidden("#preview") and "inactive" in str(
        desk.get_attribute("#dropzone", "class")
    )
    # image -> text: one card per photo, its captions under it
    desk.click('[data-mode="i2t"]')
    wait_until(desk, "document.querySelector('.card.group') !== null")
    assert desk.is_visible("#preview-img")
    groups = desk.eval_on_selector_all(
        ".card", "els => els.map(e => [e.dataset.id, e.querySelectorAll('.caption-row').length])"
    )
    ids = [i for i, _ in groups]
    assert len(ids) == len(set(ids)), ids  # no photo twice
    captions = sum(n for _, n in groups)
    assert f"{captions} of" in str(desk.text_content("#summary"))
    if desk.evaluate("state.stats.texts > state.stats.images"):  # Flickr8k: 5 captions a photo
        assert any(n > 1 for _, n in groups), groups
    assert not desk.problems
