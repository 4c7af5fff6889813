"""Request and response bodies of the JSON API (they also write its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = "ok"


class Hit(BaseModel):
    rank: int = Field(description="1-based rank over all pages")
    score: float = Field(description="cosine similarity to the query")
    id: int = Field(description="catalogue id of the image (of the image a text belongs to)")
    path: str = Field(description="the image file on the server")
    text: str | None = Field(None, description="the caption or annotation found (i2t, t2t)")
    caption: str | None = Field(None, description="the image's first caption or annotation")
    kind: str = Field(description="'image' (t2i, i2i) or 'text' (i2t, t2t)")
    text_id: int | None = None
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
        max_length=2000, examples=["这是什么品种？", "Is a Beagle good with kids?"]
    )
    lang: str | None = Field(None, description="zh | en; default: the question's language")


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
    folder: str = Field(description="a folder on the server, indexed recursively")
    captions: str | None = Field(None, description="captions.tsv / captions.json on the server")


class AnnotationRequest(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class AnnotationOut(BaseModel):
    id: int
    text_id: int
    text: str


class Removed(BaseModel):
    id: int
    removed: int
