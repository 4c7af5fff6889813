"""Descriptions of images: the texts a catalogue keeps for each photo, and what they say.

A description is a caption (from a captions file), an annotation (typed by a person), a tag
(a class name from a classifier: ImageNet, the dog breed) or an automatic caption (from the
captioner). Each knows its `source` ("captions.tsv", "user", "imagenet", "breed",
"captioner"), whether a person wrote it, its language and, for generated ones, a confidence.

This module is pure Python (no SQLite, no model): the `Description` other code hands to
`Collection.describe`, the one check of a person's text (the CLI and the web app refuse the
same things with these words), and the tokens the lexical (FTS5) index keeps. SQLite's
`unicode61` tokenizer keeps a run of Chinese characters as one token, so "一只金毛寻回犬"
would never match a tag "金毛寻回犬"; the `terms` column holds the text with every CJK run
split into overlapping bigrams (a lone character stays itself), and queries are split the
same way.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from crossmodal.errors import CrossmodalError

__all__ = [
    "DESCRIPTION_KINDS",
    "GENERATED_KINDS",
    "MAX_DESCRIPTION_CHARS",
    "PERSON_KINDS",
    "Description",
    "DescriptionError",
    "check_description_text",
    "fts_query",
    "search_terms",
]

#: kinds of texts; the first two are written by people
DESCRIPTION_KINDS = ("caption", "annotation", "tag", "auto_caption")
PERSON_KINDS = ("caption", "annotation")
GENERATED_KINDS = ("tag", "auto_caption")
#: longest description kept (a long paragraph; a pasted book is a mistake)
MAX_DESCRIPTION_CHARS = 2000


class DescriptionError(CrossmodalError):
    """A description that cannot be stored: empty, too long, control characters, bad kind."""


@dataclass(frozen=True)
class Description:
    """One text about an image, as `Collection.describe` stores it.

    `kind`: one of DESCRIPTION_KINDS; `source`: where it came from ("user", "imagenet",
    "breed", "captioner", a captions file's name); `lang`: a BCP-47-ish code ("en", "zh");
    `confidence`: the generator's probability in [0, 1] (None for a person's text);
    `by_person`: None means "as the kind says" (captions and annotations are a person's).
    """

    text: str
    kind: str
    source: str
    lang: str | None = None
    confidence: float | None = None
    by_person: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in DESCRIPTION_KINDS:
            raise DescriptionError(
                f"unknown description kind {self.kind!r}: use one of {', '.join(DESCRIPTION_KINDS)}"
            )
        object.__setattr__(self, "text", check_description_text(self.text))
        if self.by_person is None:
            object.__setattr__(self, "by_person", self.kind in PERSON_KINDS)
        if self.confidence is not None and not 0.0 <= float(self.confidence) <= 1.0:
            raise DescriptionError(f"confidence must be within [0, 1] (got {self.confidence})")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def check_description_text(text: object, what: str = "description") -> str:
    """The text stripped, or a `DescriptionError` in one line saying what is wrong with it.

    Newlines and tabs are allowed (a note may have lines); other control characters are not
    (they are invisible on the page and break terminals)."""
    if not isinstance(text, str):
        raise DescriptionError(f"{what} must be text, not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise DescriptionError(f"empty {what}: give the text to attach")
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise DescriptionError(
            f"{what} too long: {len(text)} characters, at most {MAX_DESCRIPTION_CHARS}"
        )
    bad = _CONTROL.search(text)
    if bad is not None:
        raise DescriptionError(
            f"{what} holds a control character (U+{ord(bad.group()):04X}): remove it"
        )
    return text


def is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3400 <= code <= 0x9FFF  # CJK unified ideographs (+ extension A)
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
        or 0x20000 <= code <= 0x2FA1F  # extensions B-F
    )


_WORD = re.compile(r"\w+", re.UNICODE)


def search_terms(text: str) -> str:
    """What the FTS index keeps of a text: its tokens, space-separated."""
    return " ".join(_split(text))


def _split(text: str) -> list[str]:
    out: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        latin: list[str] = []
        run: list[str] = []
        for char in word:
            if is_cjk(char):
                if latin:
                    out.append("".join(latin))
                    latin = []
                run.append(char)
            else:
                if run:
                    out += _bigrams(run)
                    run = []
                latin.append(char)
        if latin:
            out.append("".join(latin))
        if run:
            out += _bigrams(run)
    return out


def _bigrams(run: list[str]) -> list[str]:
    if len(run) == 1:
        return run[:]
    return ["".join(run[i : i + 2]) for i in range(len(run) - 1)]


#: English words that say nothing about a photo; left out of lexical queries (BM25 would give
#: them little weight anyway, but "a" matching every caption makes every image a candidate)
_STOPWORD_LIST = (
    "a an the and or of in on at to for with by from is are was were be been its it this "
    "that these those there their his her he she they them as into onto over under near "
    "while some two three one very has have"
)
STOPWORDS = frozenset(_STOPWORD_LIST.split())


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression for a search text: its tokens, each quoted, joined by OR
    (None when nothing is left). Quoting makes every token a plain string, so `"`, `*`,
    `NEAR`, `-`, `(` or `:` in the query are searched for (or dropped), never parsed."""
    terms = [t for t in dict.fromkeys(_split(text)) if t not in STOPWORDS]
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
