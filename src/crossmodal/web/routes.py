"""The JSON API. Each route parses its input, calls one `WebService` method, shapes the reply."""

from __future__ import annotations

import hmac
import json
import re
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Header,
    Path,
    Query,
    Request,
    Response,
    UploadFile,
)
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile as StarletteUpload

from crossmodal.client import LOCAL_KEY_HEADER
from crossmodal.index.catalog import MAX_ID
from crossmodal.web.errors import Rejected
from crossmodal.web.filter_params import FilterParams
from crossmodal.web.models import (
    LANG_TAG,
    NOT_BLANK,
    AnnotationOut,
    AnnotationRequest,
    AnswerOut,
    AskRequest,
    Capabilities,
    DescriptionsOut,
    FactLabels,
    Health,
    IndexRequest,
    Removed,
    SearchPage,
    error_responses,
)
from crossmodal.web.service import MAX_OFFSET, Page, WebService

__all__ = [
    "api_router",
    "dogs_router",
    "generation_router",
    "require_token",
    "validation_line",
    "write_router",
]


async def get_service(request: Request) -> WebService:
    # async: FastAPI runs a plain `def` dependency on the thread pool, one more thread hop per
    # request (measured: a third of the time of a cached search)
    return request.app.state.service


Service = Annotated[WebService, Depends(get_service)]
K = Annotated[int, Query(ge=1, le=100, description="results per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="results to skip (paging)")]
ImageId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="catalogue id of an indexed image (a 64-bit integer)")
]
Absolute = Annotated[
    bool,
    Query(
        description="full paths on the server instead of paths inside the indexed folder "
        "(needs the token)"
    ),
]


def _token_ok(request: Request, authorization: str | None) -> None:
    """401 unless `Authorization: Bearer <the server's token>`; with no token, never."""
    token: str | None = request.app.state.settings.token
    if token is None:
        raise Rejected(
            401, "writes are disabled: start the server with --token (or CROSSMODAL_TOKEN)"
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Rejected(401, "this endpoint needs the header 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Rejected(401, "wrong token")


async def require_read_token(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Reads need the token only when the server runs with --token-reads."""
    if request.app.state.settings.token_reads:
        _token_ok(request, authorization)


def _absolute_allowed(request: Request, absolute: bool) -> None:
    """Full paths: for the token, or for the local key of `server.json` (its reader can read
    the collection folder anyway: crossmodal/client.py)."""
    if not absolute:
        return
    key = request.headers.get(LOCAL_KEY_HEADER)
    if key and hmac.compare_digest(key.encode(), request.app.state.settings.local_key.encode()):
        return
    _token_ok(request, request.headers.get("authorization"))


#: statuses any route of the API may answer (a Host not served here, a token asked for
#: reads, an overlong URL, a bad parameter, a busy server or a damaged catalogue)
COMMON = (400, 401, 414, 422, 503)

api_router = APIRouter(
    prefix="/api",
    dependencies=[Depends(require_read_token)],
    responses=error_responses(*COMMON),
)
JSON = "application/json"


@api_router.get("/health", response_model=Health)
def health() -> dict[str, str]:
    return {"status": "ok"}


@api_router.get("/capabilities", response_model=Capabilities)
def capabilities(service: Service) -> dict[str, Any]:
    """What this server offers: the dog chat, writes (a token is set), upload limits."""
    return service.capabilities()


@api_router.get("/stats")
def stats(request: Request, service: Service, absolute: Absolute = False) -> dict[str, Any]:
    """What the collection holds (images, texts, model) and the server's capabilities."""
    _absolute_allowed(request, absolute)
    return service.stats(absolute=absolute)


@api_router.get("/search", response_model=SearchPage)
async def search_text(
    request: Request,
    service: Service,
    q: Annotated[
        str,
        Query(
            min_length=1, max_length=1000, pattern=NOT_BLANK, description="the text to search with"
        ),
    ],
    mode: Annotated[Literal["t2i", "t2t"], Query(description="t2i: images; t2t: captions")] = "t2i",
    k: K = 10,
    offset: Offset = 0,
    absolute: Absolute = False,
    flt: FilterParams = None,
    descriptions: Annotated[
        bool,
        Query(
            description="t2i: score the photos' captions, annotations and tags too (each "
            "hit's `matched` says which); false: the embedding alone"
        ),
    ] = True,
) -> Response:
    """Text -> images (t2i) or text -> captions and annotations (t2t); the filter parameters
    keep only photos (or the texts of photos) taken in a period, by a camera, with GPS, in a
    folder, of a type or size."""
    if absolute:
        _absolute_allowed(request, absolute)
        page = await run_in_threadpool(service.search_text, q, mode, k, offset, flt, descriptions)
        return _page(service.absolute_paths(page))
    return Response(
        await service.search_text_json(q, mode, k, offset, flt, descriptions), media_type=JSON
    )


def _page(page: Page, service: WebService | None = None, absolute: bool = False) -> JSONResponse:
    # returned as is: the page is already plain JSON types, and validating it against
    # `SearchPage` again (which still documents it) took a tenth of a cached search's time
    if absolute and service is not None:
        page = service.absolute_paths(page)
    return JSONResponse(page.to_dict())


def _read_upload(file: UploadFile, service: WebService) -> bytes:
    # one byte over the limit is enough to know it is too large, without reading it all
    data = file.file.read(service.settings.max_upload_bytes + 1)
    if len(data) > service.settings.max_upload_bytes:
        service.decode_upload(data)  # raises the 413 with its message
    return data


@api_router.post("/search/image", response_model=SearchPage, responses=error_responses(413, 415))
def search_image(
    request: Request,
    service: Service,
    file: Annotated[UploadFile, File(description="the picture to search with")],
    mode: Annotated[Literal["i2i", "i2t"], Form(description="i2i: images; i2t: captions")] = "i2i",
    k: Annotated[int, Form(ge=1, le=100)] = 10,
    offset: Annotated[int, Form(ge=0, le=MAX_OFFSET)] = 0,
    absolute: Absolute = False,
    flt: FilterParams = None,
) -> JSONResponse:
    """Image -> images (i2i) or image -> captions and annotations (i2t), by upload (filters
    as query parameters, as for /api/search)."""
    _absolute_allowed(request, absolute)
    page = service.search_image(_read_upload(file, service), mode, k, offset, flt)
    return _page(page, service, absolute)


@api_router.get(
    "/search/by-id/{image_id}", response_model=SearchPage, responses=error_responses(404)
)
def search_by_id(
    request: Request,
    service: Service,
    image_id: ImageId,
    mode: Annotated[Literal["i2i", "i2t"], Query()] = "i2i",
    k: K = 10,
    offset: Offset = 0,
    absolute: Absolute = False,
    flt: FilterParams = None,
) -> JSONResponse:
    """Images like an indexed image (itself left out), or texts for it."""
    _absolute_allowed(request, absolute)
    return _page(service.search_by_id(image_id, mode, k, offset, flt), service, absolute)


@api_router.get(
    "/images/{image_id}/descriptions",
    response_model=DescriptionsOut,
    responses=error_responses(404),
)
def descriptions(service: Service, image_id: ImageId) -> dict[str, Any]:
    """An image's texts: captions and annotations (written by a person), tags and
    automatic captions (generated: `by_person` false, shown "auto" on the page)."""
    return service.descriptions(image_id)


@api_router.get(
    "/thumbnail/{image_id}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}},
        304: {"description": "not modified"},
        **error_responses(404),
    },
)
def thumbnail(
    service: Service,
    image_id: ImageId,
    size: Annotated[int, Query(ge=32, le=1024, description="longest side, pixels")] = 256,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """A JPEG thumbnail of an indexed image (by id only: no path is ever accepted)."""
    thumb = service.thumbnail(image_id, size, if_none_match)
    # ids are reused only for the same file, and the ETag is the content's hash: a browser may
    # keep a thumbnail an hour, then revalidates it for a 304
    headers = {"ETag": thumb.etag, "Cache-Control": "public, max-age=3600"}
    if thumb.data is None:
        return Response(status_code=304, headers=headers)
    return Response(thumb.data, media_type="image/jpeg", headers=headers)


# ---- dog edition ------------------------------------------------------------------------------
dogs_router = APIRouter(
    prefix="/api/dogs",
    dependencies=[Depends(require_read_token)],
    responses=error_responses(*COMMON, 404, 413, 415),
)

_ASK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": AskRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["question"],
                    "properties": {
                        "question": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 2000,
                            "pattern": NOT_BLANK,
                        },
                        "lang": {"type": "string", "pattern": LANG_TAG},
                        "file": {"type": "string", "format": "binary", "minLength": 1},
                    },
                    "additionalProperties": False,
                }
            },
        },
    }
}


@dogs_router.get("/labels", response_model=FactLabels)
async def fact_labels(service: Service, response: Response) -> dict[str, Any]:
    """Readable names (en, zh) of the breeds, fields and values that the facts of a chat or
    ask reply name by key: the page words the facts in the reader's language with them."""
    if not service.capabilities()["dogs"]:
        raise Rejected(404, "the dog edition is not installed on this server")
    from crossmodal.dogs.labels import fact_labels as labels

    response.headers["Cache-Control"] = "max-age=3600"  # fixed for a given install
    return await run_in_threadpool(labels)


@dogs_router.post("/ask", response_model=AnswerOut, openapi_extra=_ASK_BODY)
async def ask(request: Request, service: Service) -> dict[str, Any]:
    """Ask about dog breeds (Chinese or English), optionally about an uploaded photo
    (multipart field `file`): the answer, the breeds it is about and the facts it used."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    image: bytes | None = None
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async with request.form(max_files=1, max_fields=4) as form:
            unknown = sorted(set(form.keys()) - {"question", "lang", "file"})
            if unknown:  # as the schema says (additionalProperties: false)
                raise Rejected(422, f"{unknown[0][:40]}: not a field of this form")
            question, lang = form.get("question"), form.get("lang")
            upload = form.get("file")
            if isinstance(upload, StarletteUpload) and (upload.filename or upload.size):
                image = await upload.read(service.settings.max_upload_bytes + 1)
            if not isinstance(question, str) or (lang is not None and not isinstance(lang, str)):
                raise Rejected(422, "question: give the question as a text field")
            if not question.strip():  # as the schema says (pattern), for forms too
                raise Rejected(422, "question: empty: give some text, not only spaces")
            if len(question) > 2000:
                raise Rejected(422, "question: String should have at most 2000 characters")
            if lang is not None and not re.fullmatch(LANG_TAG, lang):
                raise Rejected(422, "lang: give a language such as zh or en")
    elif content_type == "application/json":
        try:
            body = AskRequest.model_validate(json.loads(await request.body()))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Rejected(400, "the request body is not valid JSON") from None
        except ValidationError as exc:
            raise Rejected(422, validation_line(exc.errors())) from None
        question, lang = body.question, body.lang
    else:
        raise Rejected(415, "send the question as JSON or as a form (multipart/form-data)")
    return await run_in_threadpool(service.ask, question, lang or None, image)


def _body(fields: dict[str, dict[str, Any]], required: str, upload: bool) -> dict[str, Any]:
    """openapi_extra of a route that reads JSON or a form itself: what `_form_or_json` takes
    (any other field is refused, as `additionalProperties: false` says)."""
    form = dict(fields)
    if upload:
        form["file"] = {"type": "string", "format": "binary", "minLength": 1}
    # JSON may send null for an optional field (taken as absent); a form has no null
    nullable = {
        name: spec if name == required else {"anyOf": [spec, {"type": "null"}]}
        for name, spec in fields.items()
    }

    def schema(properties: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [required],
            "properties": properties,
            "additionalProperties": False,
        }

    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema(nullable)},
                "multipart/form-data": {"schema": schema(form)},
            },
        }
    }


_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": NOT_BLANK}
_CHAT_BODY = _body(
    {
        "message": _TEXT,
        "session_id": {"type": "string"},
        "lang": {"type": "string", "pattern": LANG_TAG},
    },
    "message",
    upload=True,
)
_PROMPT_BODY = _body({"prompt": _TEXT}, "prompt", upload=False)
_VIDEO_BODY = _body({"prompt": _TEXT}, "prompt", upload=True)


def _text_field(fields: dict[str, str | None], name: str, what: str) -> str:
    """A required text field, refused as the schema says (blank, over 2000 characters)."""
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise Rejected(422, f"{name}: {what}")
    if len(value) > 2000:
        raise Rejected(422, f"{name}: 2000 characters at most")
    return value


@dogs_router.post("/chat", openapi_extra=_CHAT_BODY)
async def chat(request: Request, service: Service) -> dict[str, Any]:
    """One turn of a grounded chat (JSON or form: `message`, `session_id`, `lang`, `file`).
    The reply carries `session_id` (send it back for the next turn), the facts it rests on,
    `needs_key` (features a key would add), a generated `card`, a video `task` to poll, or
    collection `photos` offered when generation has no key."""
    fields, image = await _form_or_json(request, service, ("message", "session_id", "lang"))
    message = _text_field(fields, "message", "give the message as a non-empty text field")
    lang = fields.get("lang")
    if lang is not None and not re.fullmatch(LANG_TAG, lang):
        raise Rejected(422, "lang: give a language such as zh or en")
    return await run_in_threadpool(
        service.chat, message, fields.get("session_id") or None, fields.get("lang") or None, image
    )


async def _form_or_json(
    request: Request, service: WebService, names: tuple[str, ...]
) -> tuple[dict[str, str | None], bytes | None]:
    """Text fields (and an uploaded `file`) from a form, or the fields of a JSON object."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    image: bytes | None = None
    out: dict[str, str | None] = {}
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        # starlette's own limits answer 400 past them: one more of each than allowed, so an
        # extra field is refused below with the schema's reason (422)
        async with request.form(max_files=2, max_fields=len(names) + 2) as form:
            unknown = sorted(set(form.keys()) - {*names, "file"})
            if unknown:  # as the schema says (additionalProperties: false)
                raise Rejected(422, f"{unknown[0][:40]}: not a field of this form")
            for name in names:
                value = form.get(name)
                if value is not None and not isinstance(value, str):
                    raise Rejected(422, f"{name}: give it as a text field")
                out[name] = value
            upload = form.get("file")
            if isinstance(upload, StarletteUpload) and (upload.filename or upload.size):
                image = await upload.read(service.settings.max_upload_bytes + 1)
    elif content_type == "application/json":
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Rejected(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise Rejected(422, "the request body must be a JSON object")
        unknown = sorted(set(body) - set(names))
        if unknown:  # as the schema says (additionalProperties: false)
            raise Rejected(422, f"{unknown[0][:40]}: not a field of this request")
        for name in names:
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise Rejected(422, f"{name}: must be a string")
            out[name] = value
    else:
        raise Rejected(415, "send JSON or a form (multipart/form-data)")
    return out, image


# ---- generation and web image search (paid providers) ---------------------------------------
generation_router = APIRouter(
    prefix="/api",
    dependencies=[Depends(require_read_token)],
    responses=error_responses(*COMMON, 404, 413, 415, 502),
)


@generation_router.post("/generate/image", openapi_extra=_PROMPT_BODY)
async def generate_image(request: Request, service: Service) -> dict[str, Any]:
    """Text -> image (CogView-3): the saved image as a card with its URL. 400 without a key."""
    fields, _ = await _form_or_json(request, service, ("prompt",))
    prompt = _text_field(fields, "prompt", "describe the picture to generate")
    return await run_in_threadpool(service.desk.image, prompt)


@generation_router.post("/generate/video", openapi_extra=_VIDEO_BODY)
async def generate_video(request: Request, service: Service) -> dict[str, Any]:
    """Text (+ an uploaded `file`) -> video (CogVideoX): starts a task and answers its id;
    poll GET /api/generate/tasks/{id}."""
    fields, image = await _form_or_json(request, service, ("prompt",))
    prompt = _text_field(fields, "prompt", "describe what should happen in the video")
    if image is not None:
        service.decode_upload(image)
    return service.desk.start_video(prompt, image)


@generation_router.get("/generate/tasks/{task_id}")
def generation_task(
    service: Service, task_id: Annotated[str, Path(max_length=64, pattern=r"^[0-9a-f]+$")]
) -> dict[str, Any]:
    """A video task: status (submitted / processing / success / failed), seconds elapsed,
    and the finished video's card or the error."""
    return service.desk.task(task_id)


@generation_router.get("/media/{folder}/{name}", response_class=Response)
def media_file(
    service: Service,
    folder: Annotated[str, Path(pattern=r"^(images|videos)$")],
    name: Annotated[str, Path(max_length=200)],
) -> Response:
    """A generated image or video, by file name (no path is ever accepted)."""
    from fastapi.responses import FileResponse

    return FileResponse(service.desk.media_path(folder, name))


@generation_router.post("/web-search")
def web_search(
    service: Service,
    file: Annotated[UploadFile, File(description="the photo to find similar images of")],
    k: Annotated[int, Form(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    """Similar images on the web (Baidu image search). 400 without its AK/SK."""
    data = _read_upload(file, service)
    service.decode_upload(data)
    return service.desk.web_search(data, k)


# ---- writes -----------------------------------------------------------------------------------
async def require_token(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Writes need `Authorization: Bearer <the server's token>`; with no token, never."""
    _token_ok(request, authorization)


write_router = APIRouter(
    prefix="/api",
    dependencies=[Depends(require_token)],
    responses=error_responses(*COMMON, 409),
)


@write_router.post("/index")
def index_folder(service: Service, body: IndexRequest) -> dict[str, Any]:
    """Index a folder on the server (incremental: new, changed, moved, deleted files)."""
    return service.index_folder(body.folder, body.captions, body.tags, body.auto_captions)


@write_router.post(
    "/images/{image_id}/annotations", response_model=AnnotationOut, responses=error_responses(404)
)
def annotate(service: Service, image_id: ImageId, body: AnnotationRequest) -> dict[str, Any]:
    """Attach a person's text to an image: t2i scores it from now on, t2t and i2t find it.
    Empty text, more than 2,000 characters or control characters: 422 with the reason."""
    return service.annotate(image_id, body.text)


@write_router.delete(
    "/images/{image_id}/annotations", response_model=Removed, responses=error_responses(404)
)
def remove_annotations(service: Service, image_id: ImageId) -> dict[str, Any]:
    """Remove every annotation of an image (its captions and generated texts stay)."""
    return service.remove_annotations(image_id)


@write_router.delete(
    "/images/{image_id}/annotations/{text_id}",
    response_model=Removed,
    responses=error_responses(404),
)
def remove_annotation(service: Service, image_id: ImageId, text_id: ImageId) -> dict[str, Any]:
    """Remove one annotation of an image."""
    return service.remove_annotations(image_id, text_id)


@write_router.delete("/images/{image_id}", response_model=Removed, responses=error_responses(404))
def delete_image(service: Service, image_id: ImageId) -> dict[str, Any]:
    """Forget an image (the file stays on disk; the next index run of its folder re-adds it)."""
    return service.delete(image_id)


def validation_line(errors: Any) -> str:
    """FastAPI's list of validation errors -> one line: 'k: Input should be ... ; q: ...'."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path", "header")]
        where = ".".join(loc) or "request"
        ctx = err.get("ctx") or {}
        blank = (err.get("type") == "string_too_short" and ctx.get("min_length") == 1) or (
            err.get("type") == "string_pattern_mismatch" and ctx.get("pattern") == NOT_BLANK
        )
        if blank:
            parts.append(f"{where}: empty: give some text, not only spaces")
        else:
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
