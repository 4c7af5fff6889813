"""Request and response bodies of the JSON API (they also write its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

#: a language name or tag (zh, en, zh-CN, english, 中文); others are refused, not guessed at
LANG_TAG = r"^(?:[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*|中文)$"

#: at least one character that is not white space (a blank text is refused as empty)
NOT_BLANK = r"\S"


class ErrorBody(BaseModel):
    """Every error the API answers, whatever its status."""

    detail: str = Field(description="what was wrong and what to do, in one line")


#: what each error status means, for the OpenAPI schema
ERROR_STATUSES = {
    400: "bad request: a Host not served here, a bad header or body, a bad value",
    401: "the token is missing or wrong (writes; reads too with --token-reads)",
    404: "no such image (or the dog edition is not installed)",
    409: "another request or process is changing the collection: try again later",
    413: "the upload is too large (bytes or pixels)",
    414: "the URL is too long",
    415: "the upload is not an image of a supported format, or the body's type is wrong",
    422: "a parameter or field is missing or out of range, or the image is damaged",
    502: "the provider (chat, generation, web search) failed or answered something unreadable",
    503: "busy (uploads being decoded: see Retry-After) or the catalogue is damaged",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route or router: these statuses, each with the one error body."""
    return {s: {"model": ErrorBody, "description": ERROR_STATUSES[s]} for s in statuses}


class Health(BaseModel):
    status: str = "ok"


class Matched(BaseModel):
    text_id: int
    text: str
    kind: str = Field(description="caption | annotation | tag | auto_caption")
    by_person: bool
    how: str = Field(description="'meaning' (text-text similarity) or 'words' (FTS5 BM25)")
    similarity: float | None = None
    words: list[str] | None = Field(None, description="the description's words that matched")
    added: float = Field(description="what it added to the score")


class Hit(BaseModel):
    rank: int = Field(description="1-based rank over all pages")
    score: float = Field(description="cosine similarity to the query")
    id: int = Field(description="catalogue id of the image (of the image a text belongs to)")
    path: str = Field(
        description="the image's path inside its indexed folder (the full path on the server "
        "with ?absolute=true and the token); odd bytes and control characters escaped"
    )
    text: str | None = Field(None, description="the caption or annotation found (i2t, t2t)")
    caption: str | None = Field(None, description="the image's first caption or annotation")
    kind: str = Field(description="'image' (t2i, i2i) or 'text' (i2t, t2t)")
    text_id: int | None = None
    relpath: str | None = Field(
        None, description="with ?absolute=true only: the path inside its indexed folder"
    )
    text_kind: str | None = Field(
        None, description="i2t, t2t: 'caption', 'annotation' or 'auto_caption'"
    )
    by_person: bool | None = Field(None, description="i2t, t2t: the text was written by a person")
    matched: list[Matched] | None = Field(
        None, description="t2i over descriptions: the ones that lifted this image, largest first"
    )
    thumbnail: str = Field(description="URL of a JPEG thumbnail")


class SearchPage(BaseModel):
    mode: str
    results: list[Hit]
    total: int = Field(description="images (or texts) in the collection that can be ranked")
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last one")


class Capabilities(BaseModel):
    dogs: bool = Field(description="POST /api/dogs/ask is available")
    write: bool = Field(description="a token is configured: write endpoints can be used")
    modes: list[str]
    max_upload_bytes: int
    max_pixels: int
    providers: dict[str, Any] = Field(
        default_factory=dict,
        description="which paid features have keys: chat, vision, image, video, web_search",
    )


class AskRequest(BaseModel):
    question: str = Field(
        min_length=1,
        max_length=2000,
        pattern=NOT_BLANK,
        examples=["这是什么品种？", "Is a Beagle good with kids?"],
    )
    lang: str | None = Field(
        None,
        pattern=LANG_TAG,
        description="zh | en (or a language tag: zh-CN, en-GB); default: the question's",
    )


class FactOut(BaseModel):
    breed: str
    field: str
    value: Any


class AnswerOut(BaseModel):
    text: str
    lang: str
    intent: str
    breeds: list[str]
    facts: list[FactOut]
    sources: list[str]


class IndexRequest(BaseModel):
    folder: str = Field(
        min_length=1, pattern=NOT_BLANK, description="a folder on the server, indexed recursively"
    )
    captions: str | None = Field(None, description="captions.tsv / captions.json on the server")
    tags: bool = Field(True, description="automatic tags for the new photos (`--no-tags`: false)")
    auto_captions: bool = Field(
        False, description="an automatic caption for each new photo too (slow; `--auto-captions`)"
    )


class AnnotationRequest(BaseModel):
    # checked by the service (check_description_text): the same words as `crossmodal annotate`
    text: str = Field(description="1-2,000 characters, no control characters but newline/tab")


class Description(BaseModel):
    id: int
    text: str
    kind: str = Field(description="caption | annotation | tag | auto_caption")
    source: str = Field(description="captions file, 'user', 'imagenet', 'breed', 'captioner'")
    by_person: bool
    lang: str | None = None
    confidence: float | None = None


class DescriptionsOut(BaseModel):
    id: int
    descriptions: list[Description]


class AnnotationOut(BaseModel):
    id: int
    text_id: int
    text: str


class Removed(BaseModel):
    id: int
    removed: int


class FactLabels(BaseModel):
    """Names of the keys in a reply's facts, each as {"en": ..., "zh": ...}."""

    breeds: dict[str, dict[str, str]] = Field(description="class name -> display names")
    fields: dict[str, dict[str, str]] = Field(description="fact field -> its label")
    values: dict[str, dict[str, str]] = Field(description="levels, suitability and sizes")
    groups: dict[str, dict[str, str]] = Field(description="breed groups")
    health: dict[str, dict[str, str]] = Field(description="health problem codes")
