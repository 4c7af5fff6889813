"""Screenshots of the web page at desktop and phone width, for docs/screenshots/.

    .venv/bin/python benchmarks/screenshots.py                 # the demo collection (make demo)
    .venv/bin/python benchmarks/screenshots.py --collection DIR --out /tmp/shots

Serves the collection on a free 127.0.0.1 port, drives Debian's chromium with Playwright
(never `playwright install`), runs a text search, asks the dog chat about a Stanford Dogs photo
when ../shared/data has one, in English and in Chinese (the page's language follows the
browser's, set here per context), and saves `desktop-{en,zh}.png`, `phone-{en,zh}.png` and
`phone-chat-{en,zh}.png`. Run it by hand when the page changes; the tests do not regenerate
these files.

Flickr8k and Stanford Dogs photos are not committed to this repository (README, "Data"), so
by default every photo on the page is blurred beyond recognition before the picture is taken:
the screenshots show the layout, scores and captions, not the datasets' images. `--no-blur`
keeps them sharp, for a look on your own machine. Chinese text needs a CJK font: when
`fc-list :lang=zh` finds none, the script installs `fonts-noto-cjk` with apt-get (as root, or
through sudo), so that the zh pictures show glyphs rather than boxes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


#: What each language's pictures ask: a text search, a chat question, a question on the photo.
WORDS = {
    "en": {
        "query": "a dog running through the grass",
        "ask": "Is a golden retriever good with kids?",
        "photo": "What breed is this?",
    },
    "zh": {
        "query": "一只在草地上奔跑的狗",
        "ask": "金毛寻回犬适合有孩子的家庭吗？",
        "photo": "这是什么品种？",
    },
}
LOCALES = {"en": "en-US", "zh": "zh-CN"}


def has_cjk_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    return bool(found.stdout.strip())


def ensure_cjk_font() -> None:
    """Install fonts-noto-cjk (apt) when no font covers Chinese: chromium would draw boxes."""
    if has_cjk_font():
        return
    apt = ["apt-get", "install", "-y", "--no-install-recommends", "fonts-noto-cjk"]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            sys.exit("no CJK font: install one as root (apt-get install fonts-noto-cjk)")
        apt = ["sudo", *apt]
    print("no CJK font found: installing fonts-noto-cjk (apt-get)…", flush=True)
    if subprocess.run(apt).returncode != 0 or not has_cjk_font():
        sys.exit("could not install a CJK font: apt-get install fonts-noto-cjk, then rerun")


def wait_until(page, expression: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Poll from Python: the page's CSP forbids the eval() that wait_for_function uses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        time.sleep(0.1)


def thumbnails_loaded(page) -> None:  # type: ignore[no-untyped-def]
    # the cards' images load lazily (on scroll); a full-page picture needs them all now
    page.evaluate("document.querySelectorAll('.card img').forEach(i => { i.loading = 'eager'; })")
    wait_until(
        page,
        "[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)",
    )


#: Applied before each picture: the pixels of dataset photos must not end up in the repository.
BLUR_CSS = ".card img, .preview img, .bubble img, .chip img { filter: blur(14px) saturate(0.8); }"


def blur(page, enabled: bool) -> None:  # type: ignore[no-untyped-def]
    if enabled:
        page.add_style_tag(content=BLUR_CSS)
        time.sleep(0.3)


def dog_photo(breed: str) -> Path | None:
    labels = DATA / "stanford_dogs" / "labels.tsv"
    if not labels.is_file():
        return None
    for line in labels.read_text(encoding="utf-8").splitlines()[1:]:
        name, _, label = line.split("\t")
        if label == breed:
            return DATA / "stanford_dogs" / "images" / name
    return None


def ready(page) -> None:  # type: ignore[no-untyped-def]
    wait_until(page, "document.getElementById('stats').textContent.length > 0")


def ask(page, question: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#question", question)
    page.click("#ask-button")
    page.wait_for_selector(".bubble.answer", timeout=120_000)
    time.sleep(0.3)  # the scroll after the answer


def desktop(browser, url: str, lang: str, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """A text search, and a question about a breed named in it."""
    # bypass_csp: the page's policy (rightly) refuses the blur style injected below
    context = browser.new_context(
        viewport={"width": 1280, "height": 960}, bypass_csp=True, locale=LOCALES[lang]
    )
    page = context.new_page()
    page.goto(url)
    ready(page)
    page.fill("#q", args.query or WORDS[lang]["query"])
    page.press("#q", "Enter")
    page.wait_for_selector(".card", timeout=300_000)  # a first zh query loads its tower
    thumbnails_loaded(page)
    if not page.is_hidden("#chat"):
        ask(page, WORDS[lang]["ask"])
    blur(page, not args.no_blur)
    page.screenshot(path=str(args.out / f"desktop-{lang}.png"))
    context.close()


def phone(browser, url: str, lang: str, dog: Path | None, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """A dog photo dropped in (similar images), then asked about in the chat's sheet."""
    context = browser.new_context(
        viewport={"width": 375, "height": 812},
        device_scale_factor=2,
        is_mobile=True,
        bypass_csp=True,
        locale=LOCALES[lang],
    )
    page = context.new_page()
    page.goto(url)
    ready(page)
    if dog is not None:
        page.set_input_files("#file", str(dog))
    else:
        page.fill("#q", args.query or WORDS[lang]["query"])
        page.press("#q", "Enter")
    page.wait_for_selector(".card", timeout=300_000)  # a first zh query loads its tower
    thumbnails_loaded(page)
    blur(page, not args.no_blur)
    page.screenshot(path=str(args.out / f"phone-{lang}.png"))
    if dog is not None and page.is_visible("#chat-open"):
        page.click("#chat-open")
        ask(page, WORDS[lang]["photo"])
        blur(page, not args.no_blur)
        page.screenshot(path=str(args.out / f"phone-chat-{lang}.png"))
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", type=Path, default=REPO / ".venv" / "demo-collection")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--query", default=None, help="the text search (default: per language)")
    parser.add_argument("--breed", default="golden_retriever", help="Stanford Dogs label")
    parser.add_argument("--lang", choices=["en", "zh"], action="append", help="default: both")
    parser.add_argument("--no-blur", action="store_true", help="keep the photos sharp")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium: apt-get install chromium (or make setup)")
    langs = args.lang or ["en", "zh"]
    if "zh" in langs:
        ensure_cjk_font()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from crossmodal.web.server import build_app, check_port
    from crossmodal.web.settings import WebSettings

    app = build_app(args.collection, None, WebSettings())
    port = 8765
    check_port("127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/"
    args.out.mkdir(parents=True, exist_ok=True)
    dog = dog_photo(args.breed)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
            for lang in langs:
                desktop(browser, url, lang, args)
                phone(browser, url, lang, dog, args)
            print(f"saved screenshots in {args.out}")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
