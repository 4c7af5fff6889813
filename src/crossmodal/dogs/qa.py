"""Question answering about dog breeds, in Chinese and English: `answer(question, image=None)`.

How an answer is made:

1. the language is detected (Chinese / English; anything else gets a clear "only Chinese and
   English" answer), breed names are spotted (`nlu.spot_breeds`), and the intent is found by
   keyword rules: identify / compare / recommend / one topic (children, apartment, first-time
   owner, size, exercise, grooming, temperament, origin, appearance, lifespan, training,
   barking, health, heat, cold, cats, other dogs, time alone, home) / info / not_known (a field
   the base does not hold: said so, with what is known) / search;
2. the subject is the breed(s) named in the question or, when none is named and a photo is
   given, the breed recognised in the photo (a photo that is not a dog gets an honest answer);
3. the answer is rendered from knowledge-base fields only, and ends with the facts it used.
   A field that is null in the knowledge base is answered "not in my knowledge base";
4. questions no rule covers fall back to text->text retrieval of knowledge-base passages with
   multilingual USE embeddings (`retrieval.py`);
5. optionally, an OpenAI-compatible LLM rewords the draft from the same facts (`llm.py`); the
   facts line is appended after its text, and any failure keeps the rule-based answer.
"""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from crossmodal.dogs import nlu
from crossmodal.dogs.knowledge import BreedInfo, KnowledgeBase
from crossmodal.dogs.qa_compare import compare_answer, recommend_answer
from crossmodal.dogs.qa_text import (
    PHOTO_FIELDS,
    Answer,
    Fact,
    breed_display,
    facts_line,
    value_text,
)
from crossmodal.dogs.qa_topics import known_topics, not_held, topic_answer
from crossmodal.errors import CrossmodalError

__all__ = ["Answer", "DogQuestionError", "Fact", "answer"]

SUPPORTED = ("en", "zh")
UNSUPPORTED_TEXT = (
    "Sorry, I can only answer questions in Chinese or English. 抱歉，我只能回答中文或英文的问题。"
)


class DogQuestionError(CrossmodalError):
    """The question cannot be answered as asked (empty, not text)."""


# ---------------------------------------------------------------------- the entry point
_kb_lock = threading.Lock()
_kb: KnowledgeBase | None = None


def default_kb() -> KnowledgeBase:
    global _kb
    with _kb_lock:
        if _kb is None:
            _kb = KnowledgeBase.load()
        return _kb


def _normalise_lang(lang: str | None) -> str | None:
    if lang is None:
        return None
    key = str(lang).strip().lower().replace("_", "-")
    if not key or key == "auto":
        return None
    if key in ("zh", "cn", "chinese", "中文") or key.startswith(("zh-", "cmn")):
        return "zh"
    if key in ("en", "english") or key.startswith("en-"):
        return "en"
    return key


def _subjects(mentions: list[nlu.Mention]) -> list[BreedInfo]:
    out: list[BreedInfo] = []
    for m in mentions:
        for info in m.breeds:
            if info not in out:
                out.append(info)
    return out


def _identify_answer(
    ident: Any, named: list[BreedInfo], lang: str, kb: KnowledgeBase
) -> tuple[str, list[Fact], list[BreedInfo]]:
    if not ident.is_dog:
        facts = [Fact("", "is_dog", False), Fact("", "dog_score", round(ident.dog_score, 4))]
        if lang == "zh":
            return (
                f"这张照片看起来不像狗（狗的可能性{ident.dog_score:.2f}），所以我无法判断品种。",
                facts,
                [],
            )
        return (
            f"This doesn't look like a dog to me (dog score {ident.dog_score:.2f}), "
            "so I can't name a breed.",
            facts,
            [],
        )
    best = kb.by_wnid(ident.breeds[0].wnid)
    score = ident.breeds[0].score
    facts = [Fact(best.breed, "recognized", round(score, 4))]
    others = [(kb.by_wnid(b.wnid), b.score) for b in ident.breeds[1:3]]
    hedge = score < 0.5
    if lang == "zh":
        seems = "可能" if hedge else "看起来"
        text = f"这{seems}是{best.name_zh}（{best.name_en}），置信度{score:.2f}。"
        if others:
            text += "其他可能：" + "、".join(f"{o.name_zh}（{s:.2f}）" for o, s in others) + "。"
    else:
        text = (
            f"This {'may be' if hedge else 'looks like'} a {best.name_en} ({best.name_zh}), "
            f"score {score:.2f}."
        )
        if others:
            text += " Other candidates: " + ", ".join(f"{o.name_en} ({s:.2f})" for o, s in others)
            text += "."
    desc = best.in_language("description", lang)
    first = re.split(r"(?<=[.!?。！？])\s*", desc, maxsplit=1)[0]
    if first:
        text += ("" if lang == "zh" else " ") + first
        facts.append(Fact(best.breed, "description", desc))
    if named:
        target = named[0]
        if target.wnid == best.wnid:
            text = ("是的。" if lang == "zh" else "Yes. ") + text
        else:
            in_top = {b.wnid: b.score for b in ident.breeds}
            s = in_top.get(target.wnid)
            if lang == "zh":
                text = (
                    f"看起来不太像{target.name_zh}"
                    + (f"（{s:.2f}）" if s is not None else "")
                    + "。"
                    + text
                )
            else:
                text = (
                    f"It does not look much like a {target.name_en}"
                    + (f" ({s:.2f})" if s is not None else "")
                    + ". "
                    + text
                )
    return text, facts, [best]


def _unknown_breed(question: str, lang: str, kb: KnowledgeBase, this: bool) -> Answer:
    suggestions = nlu.suggest_breed_names(question, kb)
    if lang == "zh":
        if this:
            text = "你指的是哪只狗？请附上一张照片，或者在问题中写出犬种名称。"
        else:
            text = (
                "我在问题中没有找到我认识的犬种。我的知识库包含 Stanford Dogs 的120个犬种"
                "（例如金毛寻回犬、比格犬、巴哥犬），你问的犬种可能不在其中。"
            )
        if suggestions:
            text += "你是不是想问：" + "、".join(s.name_zh for s in suggestions) + "？"
    else:
        if this:
            text = "Which dog do you mean? Attach a photo or name the breed in your question."
        else:
            text = (
                "I couldn't find a breed I know in your question. My knowledge base covers the "
                "120 Stanford Dogs breeds (for example Golden Retriever, Beagle, Pug); the breed "
                "you asked about may not be one of them."
            )
        if suggestions:
            text += " Did you mean: " + ", ".join(s.name_en for s in suggestions) + "?"
    return Answer(
        text=text,
        lang=lang,
        intent="unknown_breed" if not this else "needs_subject",
        breeds=[],
        facts=[],
        sources=[f"suggestion: {s.breed}" for s in suggestions],
    )


def _search(question: str, lang: str, kb: KnowledgeBase) -> tuple[str, list[Fact], list[str]]:
    from crossmodal.dogs.retrieval import get_passage_index

    # the first search in a language embeds ~600 passages (once per machine: cached on disk)
    hits = get_passage_index(kb).search(question, lang, k=3, show_progress=sys.stderr.isatty())
    hits = [h for h in hits if h.score >= SEARCH_MIN_SCORE]
    if not hits:
        text = (
            "我的知识库里没有能回答这个问题的内容。可以问我某个犬种的性格、体型、运动量、掉毛、"
            "是否适合孩子或公寓，或者附上照片让我识别品种。"
            if lang == "zh"
            else "I don't have anything in my knowledge base that answers this. Ask me about a "
            "breed's temperament, size, exercise, grooming, or whether it suits children or "
            "apartments, or attach a photo for me to identify."
        )
        return text, [], []
    facts = [Fact(kb.by_wnid(h.wnid).breed, "passage", h.text) for h in hits]
    sources = [f"passage {kb.by_wnid(h.wnid).breed} (similarity {h.score:.2f})" for h in hits]
    if hits[0].score >= SEARCH_SURE_SCORE:
        lead = (
            "我的知识库中最相关的内容：" if lang == "zh" else "Most relevant in my knowledge base:"
        )
    else:
        lead = (
            "我不确定；知识库中最接近的内容如下（未必回答了你的问题）："
            if lang == "zh"
            else "I'm not sure; the closest passages in my knowledge base (they may not answer "
            "your question):"
        )
    body = ("" if lang == "zh" else " ").join(h.text for h in hits[:2])
    return f"{lead}{'' if lang == 'zh' else ' '}{body}", facts, sources


#: USE cosine similarity below which a retrieved passage is not offered at all (off-topic
#: questions score ~0.1-0.2), and above which it is offered without a hedge (on-topic ~0.45+)
SEARCH_MIN_SCORE = 0.3
SEARCH_SURE_SCORE = 0.45


def answer(
    question: str,
    image: str | Path | Image.Image | None = None,
    lang: str | None = None,
    *,
    kb: KnowledgeBase | None = None,
    use_llm: bool | None = None,
) -> Answer:
    """Answer a dog question in its own language (Chinese or English), from the knowledge base.

    `image` (path or PIL image) is the photo the question is about: with no breed named in the
    question, the recognised breed is the subject. `lang` forces the answer language; by
    default it is the question's. `use_llm=None` rephrases through the LLM only when
    CROSSMODAL_LLM_URL / _MODEL are set. Raises `DogQuestionError` for an empty question and
    `ImageLoadError` for an unreadable photo.
    """
    if not isinstance(question, str):
        raise DogQuestionError(f"the question must be text, got {type(question).__name__}")
    q = " ".join(question.split())
    if not q:
        raise DogQuestionError(
            "the question is empty: ask e.g. 'Is a Beagle good with kids?' / '柯基适合家养吗？'"
        )
    kb = kb or default_kb()
    mentions = nlu.spot_breeds(q, kb)
    detected = nlu.detect_language(q, [(m.start, m.end) for m in mentions])
    out_lang = _normalise_lang(lang) or detected
    if out_lang not in SUPPORTED or detected not in SUPPORTED:
        return Answer(
            text=UNSUPPORTED_TEXT,
            lang=out_lang if out_lang not in SUPPORTED else detected,
            intent="unsupported_language",
        )
    result = _answer(q, image, out_lang, kb, mentions)
    return _maybe_rephrase(q, result, kb, use_llm)


def _answer(
    q: str,
    image: str | Path | Image.Image | None,
    lang: str,
    kb: KnowledgeBase,
    mentions: list[nlu.Mention],
) -> Answer:
    # rules read the question with breed names blanked: "吉娃娃" must not say "娃" (kids)
    chars = list(q)
    for m in mentions:
        chars[m.start : m.end] = " " * (m.end - m.start)
    blank = "".join(chars)
    topics, subjects, filters, intent = _understand(blank, kb, mentions, image is not None)
    facts: list[Fact] = []
    photo_lead = ""
    ident, sources = _look_at(image)

    if intent == "identify":
        if ident is None:
            text = (
                "请附上一张狗的照片，我才能判断它的品种。"
                if lang == "zh"
                else "Please attach a photo of the dog so I can tell its breed."
            )
            return Answer(text, lang, "identify", [], [], sources)
        text, facts, breeds = _identify_answer(ident, subjects, lang, kb)
        return _finish(text, lang, "identify", breeds, facts, sources, kb)

    # subject from the photo when the question names no breed
    if not subjects and ident is not None and intent not in ("recommend",):
        if not ident.is_dog:
            text, facts, _ = _identify_answer(ident, [], lang, kb)
            return _finish(text, lang, intent, [], facts, sources, kb)
        subjects = [kb.by_wnid(ident.breeds[0].wnid)]
        score = ident.breeds[0].score
        facts.append(Fact(subjects[0].breed, "recognized", round(score, 4)))
        photo_lead = (
            f"照片中的狗{'可能' if score < 0.5 else '看起来'}是{subjects[0].name_zh}"
            f"（置信度{score:.2f}）。"
            if lang == "zh"
            else f"The dog in the photo {'may be' if score < 0.5 else 'looks like'} a "
            f"{subjects[0].name_en} (score {score:.2f})."
        )
        if intent == "search":
            intent = "info"

    if intent == "recommend":
        text, rec_facts, breeds = recommend_answer(kb, filters, lang)
        return _finish(text, lang, intent, breeds, facts + rec_facts, sources, kb)
    if intent == "search":
        text, s_facts, s_sources = _search(q, lang, kb)
        by_wnid = {b.wnid: b for f in s_facts if (b := kb.find(f.breed)) is not None}
        uniq = list(by_wnid.values())
        return _finish(text, lang, intent, uniq, s_facts, sources + s_sources, kb)

    if not subjects:
        return _unknown_breed(q, lang, kb, this=bool(nlu.THIS_ONE.search(blank)))
    if intent == "compare" and len(subjects) >= 2:
        text, c_facts = compare_answer(subjects[:3], topics, lang)
        return _finish(text, lang, intent, subjects[:3], facts + c_facts, sources, kb)

    missing = nlu.detect_missing(blank)
    if not topics and (missing or _asks_something_specific(blank)):
        # a field the knowledge base does not hold: say so, never answer a different field
        texts = [photo_lead] if photo_lead else []
        for info in subjects[:3]:
            texts.append(not_held(info, missing, lang) if missing else _unclear(info, lang))
        text = ("" if lang == "zh" else " ").join(texts)
        return _finish(text, lang, "not_known", subjects[:3], facts, sources, kb)

    texts = [photo_lead] if photo_lead else []
    more_texts, more_facts = _topic_answers(q, lang, subjects, mentions, topics, intent)
    texts += more_texts
    facts += more_facts
    if missing:
        texts.extend(not_held(info, missing, lang) for info in subjects[:1])
    text = ("" if lang == "zh" else " ").join(texts)
    return _finish(text, lang, intent, subjects[:3], facts, sources, kb)


def _understand(
    blank: str, kb: KnowledgeBase, mentions: list[nlu.Mention], has_image: bool
) -> tuple[list[str], list[BreedInfo], nlu.Filters, str]:
    """What the question (breed names blanked) is about: topics, breeds, filters, intent."""
    # "how fast can it run" asks for speed (not held), not exercise: topics ignore those words
    topics = nlu.detect_topics(nlu.blank_missing(blank))
    subjects = _subjects(mentions)
    filters = nlu.extract_filters(blank, kb, topics) if not subjects else nlu.Filters()
    # filters beyond what topic words imply ("small", "doesn't shed") describe a wish list
    described = bool(
        {k for k in filters.active() if k not in ("apartment", "children", "first_time_owner")}
    )
    wants_list = bool(nlu.RECOMMEND.search(blank))
    asks_for_breeds = wants_list or bool(nlu.DOG_WORDS.search(blank))
    intent = nlu.detect_intent(
        blank,
        len(mentions),
        has_image,
        topics,
        bool(filters) and asks_for_breeds and (described or wants_list),
    )
    return topics, subjects, filters, intent


def _look_at(image: str | Path | Image.Image | None) -> tuple[Any, list[str]]:
    """The photo's recognition (None without a photo) and the source line it adds."""
    if image is None:
        return None, []
    from crossmodal.dogs.recognize import identify

    ident = identify(image)
    label = image if not isinstance(image, Image.Image) else "<image>"
    if ident.is_dog and ident.best:
        return ident, [
            f"image {label}: recognised as {ident.best.breed} (score {ident.best.score:.2f})"
        ]
    return ident, [f"image {label}: not a dog (dog score {ident.dog_score:.2f})"]


def _topic_answers(
    q: str,
    lang: str,
    subjects: list[BreedInfo],
    mentions: list[nlu.Mention],
    topics: list[str],
    intent: str,
) -> tuple[list[str], list[Fact]]:
    """The asked topics (or the breed's overview) for each breed the question names."""
    texts: list[str] = []
    facts: list[Fact] = []
    wanted = topics or ["info"]
    if intent not in wanted:
        wanted = [intent, *[t for t in wanted if t != intent]]
    if len(subjects) > 1 and len(mentions) == 1:
        # one name, several breeds ("柯基": Pembroke and Cardigan): one answer naming both
        names = (
            "和".join(s.name_zh for s in subjects)
            if lang == "zh"
            else " and the ".join(s.name_en for s in subjects)
        )
        header = (
            f"“{mentions[0].text}”指两个犬种：{names}。"
            if lang == "zh"
            else f"'{mentions[0].text}' can mean the {names}."
        )
        body, c_facts = compare_answer(
            subjects[:3], wanted[:2] if topics else [], lang, header=header
        )
        return [body], c_facts
    for info in subjects[:3]:
        for topic in wanted[:2]:
            t, f = topic_answer(info, topic, lang, q)
            texts.append(t)
            facts.extend(f)
    return texts, facts


_QUESTION_CUE = re.compile(
    r"[?？吗呢]|^\s*(how|what|which|when|why|can|could|do|does|is|are|will|should)\b|"
    r"(多少|几|哪|怎么|如何|为什么|是否|能不能|会不会|可不可以)",
    re.I,
)


def _asks_something_specific(blank: str) -> bool:
    """A question about a named breed that is not a general 'tell me about it'."""
    if nlu.GENERAL_INFO.search(blank):
        return False
    return bool(_QUESTION_CUE.search(blank))


def _unclear(info: BreedInfo, lang: str, name: str | None = None) -> str:
    known = known_topics(info, lang)
    name = name or info.display_name(lang)
    if lang == "zh":
        return (
            f"我不确定你想了解{name}的哪一方面，知识库里可能没有这项信息，我不想乱猜。"
            f"关于{name}，我知道的有：{'、'.join(known)}。"
        )
    return (
        f"I'm not sure which fact about the {name} you are asking for, and it may not be "
        f"in my knowledge base, so I won't guess. What I do know about it: {', '.join(known)}."
    )


def _finish(
    text: str,
    lang: str,
    intent: str,
    breeds: list[BreedInfo],
    facts: list[Fact],
    sources: list[str],
    kb: KnowledgeBase,
) -> Answer:
    line = facts_line(facts, kb, lang)
    full = f"{text}\n{line}" if line else text
    srcs = list(sources)
    if any(f.field not in (*PHOTO_FIELDS, "passage") for f in facts):
        srcs.append(f"knowledge base: {kb.source or 'breeds.json'}")
    return Answer(
        text=full,
        lang=lang,
        intent=intent,
        breeds=[b.breed for b in breeds],
        facts=facts,
        sources=srcs,
    )


def _maybe_rephrase(q: str, result: Answer, kb: KnowledgeBase, use_llm: bool | None) -> Answer:
    from crossmodal.dogs.llm import LLMConfig, LLMError, rephrase

    if use_llm is False or result.intent == "unsupported_language":
        return result
    config = LLMConfig.from_env()
    if config is None:
        return result
    line = facts_line(result.facts, kb, result.lang)
    draft = result.text.removesuffix(line).rstrip() if line else result.text
    fact_strings = [
        f"{breed_display(kb, f.breed, result.lang) if f.breed else ''} {f.field}: "
        f"{value_text(f, result.lang) if f.field != 'passage' else f.value}".strip()
        for f in result.facts
    ] or [draft]
    try:
        text = rephrase(q, draft, fact_strings, result.lang, config)
    except LLMError as exc:
        result.sources.append(f"llm failed ({exc}); rule-based answer kept")
        return result
    result.text = f"{text}\n{line}" if line else text
    result.sources.append(f"llm rephrasing: {config.model} at {config.endpoint}")
    return result
