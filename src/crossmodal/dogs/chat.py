"""Grounded, multi-turn dog chat: knowledge-base facts (and a photo's breed) + a chat model.

Each turn:

1. a generation request ("画一只在雪地里的萨摩耶", "make a video of this dog running") goes to
   the text->image / video provider; with no key the reply says which variable to set and
   offers the closest photos of the collection instead, labelled as not generated;
2. any other message is answered by `qa.answer` (rules over breeds.json): its facts, and for a
   photo the recognised breed and its confidence, are the grounding. A photo sent in an earlier
   turn stays the subject, so "它多大了会长大？" in turn two is about the dog of turn one;
3. with a chat provider configured (GLM-4 / GLM-4V or any OpenAI-compatible server), the facts,
   the rule-based draft and the conversation so far go to the model, which must answer from the
   facts only; the reply ends with the facts line either way. Without one, the rule-based answer
   is the reply and `needs_key` lists what a key would add.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossmodal.dogs.qa import Answer, answer
from crossmodal.dogs.qa_text import breed_display, facts_line, value_text
from crossmodal.errors import ImageLoadError
from crossmodal.providers import (
    GeneratedMedia,
    ProviderError,
    ProviderNotConfigured,
    ProvidersConfig,
    chat_provider,
    image_generator,
    load_config,
    video_generator,
)

__all__ = [
    "ChatReply",
    "ChatSession",
    "SessionStore",
    "chat_turn",
    "generation_request",
    "stream_turn",
]

MAX_HISTORY = 12  # messages (6 turns) sent back to the model

_VIDEO_WORDS = re.compile(r"视频|动画|短片|\bvideos?\b|\bclips?\b|\banimat\w*|\bmovie\b", re.I)
_GEN = re.compile(
    r"^\s*(请|帮我|给我|麻烦)?\s*(画|绘制|生成|做|制作|创作)|画一|生成一|做一个?.{0,12}视频|"
    r"\b(draw|paint|sketch|generate|create|make|render)\b.{0,40}"
    r"\b(image|picture|photo|drawing|painting|video|clip|animation|illustration)s?\b|"
    r"^\s*(draw|paint|sketch)\b",
    re.I,
)
_THIS_DOG = re.compile(r"这只|这条|它|图里|照片里|\b(this|that|my) (dog|puppy|one)\b|\bit\b", re.I)


def generation_request(message: str) -> str | None:
    """'image' or 'video' when the message asks to generate one, else None."""
    if not _GEN.search(message):
        return None
    return "video" if _VIDEO_WORDS.search(message) else "image"


@dataclass
class ChatSession:
    """One conversation: its messages and the photo it is about (if any)."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    history: list[dict[str, str]] = field(default_factory=list)
    image: bytes | None = None

    def add(self, role: str, text: str) -> None:
        self.history.append({"role": role, "content": text})
        del self.history[: max(0, len(self.history) - 2 * MAX_HISTORY)]


@dataclass
class ChatReply:
    text: str
    lang: str
    kind: str  # "answer" | "generated" | "generation_unavailable" | "generation_failed"
    intent: str = ""
    breeds: list[str] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    provider: str | None = None  # the chat model that wrote `text`, None: the rules did
    needs_key: list[str] = field(default_factory=list)
    media: dict[str, Any] | None = None
    photos: list[dict[str, Any]] = field(default_factory=list)  # collection photos offered
    session_id: str = ""
    notice: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


#: what each missing key would add, said once per reply when no provider is configured
_KEY_FEATURES = {
    "chat": ("free-form chat (GLM-4)", "自由对话（GLM-4）", "CROSSMODAL_ZHIPU_API_KEY"),
    "image": ("text->image (CogView-3)", "文生图（CogView-3）", "CROSSMODAL_ZHIPU_API_KEY"),
    "video": ("video (CogVideoX)", "视频生成（CogVideoX）", "CROSSMODAL_ZHIPU_API_KEY"),
    "web_search": (
        "web image search (Baidu)",
        "网络以图搜图（百度）",
        "CROSSMODAL_BAIDU_API_KEY + CROSSMODAL_BAIDU_SECRET_KEY",
    ),
}


def missing_features(config: ProvidersConfig) -> list[str]:
    summary = config.summary()
    return [name for name in _KEY_FEATURES if not summary.get(name)]


_SYSTEM = {
    "en": (
        "You are a dog-breed assistant in a multi-turn chat. Answer the user's latest message "
        "from the knowledge-base facts given with it (and the photo's recognised breed, when "
        "there is one); do not add facts, numbers or breeds that are not there. If the facts "
        "say something is not known, say you do not know it. Answer in English, in at most 5 "
        "sentences."
    ),
    "zh": (
        "你是多轮对话中的犬种助手。请依据随消息给出的知识库事实（以及照片识别出的犬种）回答用户最新的"
        "问题；不得添加事实中没有的信息、数字或犬种。如果事实表明某项信息未知，就说不知道。"
        "请用简体中文回答，不超过5句话。"
    ),
}


def _grounding(message: str, result: Answer, lang: str) -> str:
    facts = [
        f"{_display_fact(f, lang)}" for f in result.facts if f.field not in ("description",)
    ] or ["(none)"]
    lines = "\n".join(f"- {f}" for f in facts)
    return f"{message}\n\n[Knowledge-base facts]\n{lines}\n\n[Rule-based draft]\n{_draft(result)}"


def _display_fact(f: Any, lang: str) -> str:
    from crossmodal.dogs.qa import default_kb

    name = breed_display(default_kb(), f.breed, lang) if f.breed else ""
    value = f.value if f.field == "passage" else value_text(f, lang)
    return f"{name} {f.field}: {value}".strip()


def _draft(result: Answer) -> str:
    from crossmodal.dogs.qa import default_kb

    line = facts_line(result.facts, default_kb(), result.lang)
    return result.text.removesuffix(line).rstrip() if line else result.text


#: longest side of the photo a conversation keeps (the recogniser looks at 300 px or less):
#: a server holds many conversations, and a phone photo is several MB
KEEP_PIXELS = 1024


def _compact(image: bytes) -> bytes:
    """The photo as a JPEG of at most KEEP_PIXELS a side (as sent when it cannot be read:
    reading it then raises the clear error)."""
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(image)) as img:
            if max(img.size) <= KEEP_PIXELS and img.format == "JPEG":
                return image
            img.thumbnail((KEEP_PIXELS, KEEP_PIXELS))
            out = BytesIO()
            img.convert("RGB").save(out, format="JPEG", quality=90)
            return out.getvalue()
    except (OSError, Image.DecompressionBombError):
        return image


def _rules(session: ChatSession, message: str, image: bytes | None, lang: str | None) -> Answer:
    from io import BytesIO

    from PIL import Image

    photo = image if image is not None else session.image
    picture = None
    if photo is not None:
        try:
            picture = Image.open(BytesIO(photo))
            picture.load()
        except (OSError, Image.DecompressionBombError):
            session.image = None
            raise ImageLoadError(
                "the photo could not be read as an image (JPEG, PNG, WebP)"
            ) from None
    result = answer(message, image=picture, lang=lang, use_llm=False)
    if result.intent == "needs_subject" and photo is None and session.history:
        result.text += (
            " (我没有这段对话里的照片；请上传一张。)"
            if result.lang == "zh"
            else " (There is no photo in this conversation yet; upload one.)"
        )
    return result


def _messages(
    session: ChatSession, message: str, result: Answer, image: bytes | None, lang: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": _SYSTEM.get(lang, _SYSTEM["en"])}]
    out.extend(session.history[-2 * MAX_HISTORY :])
    user: dict[str, Any] = {"role": "user", "content": _grounding(message, result, lang)}
    if image is not None:
        user["image"] = image  # the vision model sees the photo of this turn
    out.append(user)
    return out


def chat_turn(
    session: ChatSession,
    message: str,
    image: bytes | None = None,
    *,
    lang: str | None = None,
    config: ProvidersConfig | None = None,
    collection: Any = None,
    on_progress: Callable[[str, float], None] | None = None,
    media_dir: Path | None = None,
) -> ChatReply:
    """One turn of the conversation (blocking; `stream_turn` yields the text as it comes)."""
    reply, stream = _prepare(
        session, message, image, lang, config, collection, on_progress, media_dir
    )
    if stream is not None:
        reply.text = "".join(stream()) if reply.provider else reply.text
        _finish_text(reply)
    session.add("user", message)
    session.add("assistant", reply.text)
    return reply


def stream_turn(
    session: ChatSession,
    message: str,
    image: bytes | None = None,
    *,
    lang: str | None = None,
    config: ProvidersConfig | None = None,
    collection: Any = None,
) -> Iterator[str | ChatReply]:
    """The reply's text in pieces as the model writes it, then the finished `ChatReply`."""
    reply, stream = _prepare(session, message, image, lang, config, collection, None, None)
    if stream is not None and reply.provider:
        parts = []
        for piece in stream():
            parts.append(piece)
            yield piece
        reply.text = "".join(parts)
        _finish_text(reply)
    else:
        yield reply.text
    session.add("user", message)
    session.add("assistant", reply.text)
    yield reply


def _finish_text(reply: ChatReply) -> None:
    line = reply.notice
    if line and line not in reply.text:
        reply.text = f"{reply.text.strip()}\n{line}"


def _prepare(
    session: ChatSession,
    message: str,
    image: bytes | None,
    lang: str | None,
    config: ProvidersConfig | None,
    collection: Any,
    on_progress: Callable[[str, float], None] | None,
    media_dir: Path | None,
) -> tuple[ChatReply, Callable[[], Iterator[str]] | None]:
    message = " ".join(str(message).split())
    from crossmodal.dogs.qa import DogQuestionError

    if not message:
        raise DogQuestionError("the message is empty: ask about a breed, or describe a picture")
    config = config or load_config()
    if image is not None:
        session.image = _compact(image)
    kind = generation_request(message)
    if kind is not None:
        reply = _generate(kind, session, message, image, config, collection, on_progress, media_dir)
        reply.session_id = session.id
        return reply, None

    result = _rules(session, message, image, lang)
    from crossmodal.dogs.qa import default_kb

    line = facts_line(result.facts, default_kb(), result.lang)
    reply = ChatReply(
        text=result.text,
        lang=result.lang,
        kind="answer",
        intent=result.intent,
        breeds=list(result.breeds),
        facts=[f.to_dict() for f in result.facts],
        needs_key=missing_features(config),
        session_id=session.id,
        notice=line,
    )
    if result.intent == "unsupported_language":
        return reply, None
    try:
        provider = chat_provider(config)
    except ProviderNotConfigured:
        return reply, None
    reply.provider = f"{provider.name} ({provider.model})"
    messages = _messages(session, message, result, image, result.lang)

    def stream() -> Iterator[str]:
        try:
            yield from provider.chat_stream(messages)
        except ProviderError as exc:
            # the model failed: the rule-based answer stands, and the reply says why
            reply.provider = None
            yield f"{_draft(result)}\n({exc})"

    return reply, stream


def _generate(
    kind: str,
    session: ChatSession,
    message: str,
    image: bytes | None,
    config: ProvidersConfig,
    collection: Any,
    on_progress: Callable[[str, float], None] | None,
    media_dir: Path | None,
) -> ChatReply:
    zh = bool(re.search(r"[\u4e00-\u9fff]", message))
    lang = "zh" if zh else "en"
    source = image if image is not None else (session.image if _THIS_DOG.search(message) else None)
    try:
        if kind == "image":
            media: GeneratedMedia = image_generator(config).generate_image(
                message, media_dir or config.media_dir
            )
        else:
            media = video_generator(config).generate_video(
                message, media_dir or config.media_dir, image=source, on_progress=on_progress
            )
    except ProviderNotConfigured as exc:
        photos = closest_photos(collection, message)
        what = ("图片" if kind == "image" else "视频") if zh else kind
        if zh:
            text = f"生成{what}需要密钥：{exc}。"
            text += (
                "下面是收藏中最接近的照片（不是生成的）。"
                if photos
                else "收藏中也没有可提供的照片。"
            )
        else:
            text = f"Generating a {what} needs a key: {exc}."
            text += (
                " Here are the closest photos from your collection instead (not generated)."
                if photos
                else " There is no collection to offer photos from."
            )
        return ChatReply(
            text=text,
            lang=lang,
            kind="generation_unavailable",
            intent=f"generate_{kind}",
            needs_key=[kind],
            photos=photos,
        )
    except ProviderError as exc:
        text = f"生成失败：{exc}" if zh else f"Generation failed: {exc}"
        return ChatReply(text=text, lang=lang, kind="generation_failed", intent=f"generate_{kind}")
    text = (
        f"已生成{'图片' if kind == 'image' else '视频'}（{media.provider} {media.model}），"
        f"保存在 {media.path}。"
        if zh
        else f"Generated {kind} ({media.provider} {media.model}), saved to {media.path}."
    )
    return ChatReply(
        text=text,
        lang=lang,
        kind="generated",
        intent=f"generate_{kind}",
        media=media.to_dict(),
        provider=media.provider,
    )


def closest_photos(collection: Any, text: str, k: int = 4) -> list[dict[str, Any]]:
    """The collection's best text->image matches, labelled as photos (not generated)."""
    if collection is None:
        return []
    try:
        hits = collection.search(text=text, k=k)
    except Exception:  # an offer of photos must never break the reply
        return []
    out = []
    for hit in hits:
        item = hit.to_dict()
        item["label"] = "from your collection (not generated) / 收藏中的照片（非生成）"
        item["thumbnail"] = f"/api/thumbnail/{hit.id}"
        out.append(item)
    return out


class SessionStore:
    """Conversations of a server, oldest forgotten first (each holds at most one photo)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, ChatSession] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str | None) -> ChatSession:
        with self._lock:
            if session_id and session_id in self._items:
                self._items.move_to_end(session_id)
                return self._items[session_id]
            session = ChatSession()
            self._items[session.id] = session
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return session
