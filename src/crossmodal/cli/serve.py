"""`crossmodal serve`: the web app over one collection.

FastAPI and the model are imported only when the command runs, so `crossmodal --help` stays
fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from crossmodal.cli.common import CollectionOpt, DbOpt, friendly_errors
from crossmodal.web.settings import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB, LOCAL_HOSTS

__all__ = ["serve_command"]


@friendly_errors
def serve_command(
    collection: CollectionOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CROSSMODAL_TOKEN",
            help="bearer token that allows writes (index, annotate, delete); none: read-only",
            show_default=False,
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option(help="largest accepted upload, MB")
    ] = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: Annotated[
        int, typer.Option(help="largest accepted upload, pixels (decompression-bomb guard)")
    ] = DEFAULT_MAX_PIXELS,
    workers: Annotated[
        int, typer.Option(help="server processes (each loads the model: ~0.75 GB apiece)")
    ] = 1,
    child_encoders: Annotated[
        bool,
        typer.Option(
            help="encode new text queries in one child process per core (each loads the text "
            "towers: ~0.8 GB apiece for `default`; ~1.1x the new queries answered per second "
            "on 2 cores)"
        ),
    ] = True,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="default: the collection's model")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="log every request")] = True,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="also answer requests for this Host name (repeatable; the default answers "
            "127.0.0.1, localhost and [::1] only, against DNS rebinding; '*': any)",
            show_default=False,
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            help="send CORS headers to this origin, e.g. http://localhost:3000 (repeatable; "
            "none by default)",
            show_default=False,
        ),
    ] = None,
    token_reads: Annotated[
        bool, typer.Option("--token-reads", help="reads (searches, thumbnails) need --token too")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Serve a collection as a web page and a JSON API (OpenAPI docs at /docs)."""
    from crossmodal.web.server import serve
    from crossmodal.web.settings import WebSettings

    _check_limits_and_token(max_upload_mb, max_pixels, token, token_reads)
    hosts = _allowed_hosts(host, allowed_host)
    settings = WebSettings(
        allowed_hosts=tuple(dict.fromkeys(hosts)),
        cors_origins=tuple(cors_origin or ()),
        token_reads=token_reads,
        token=token or None,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels,
        child_encoders=child_encoders,
    )
    serve(
        collection,
        host=host,
        port=port,
        settings=settings,
        model=model,
        workers=workers,
        access_log=access_log,
        announce=lambda line: typer.echo(f"crossmodal: {line}", err=True),
        db=db,
    )


def _check_limits_and_token(
    max_upload_mb: float, max_pixels: int, token: str | None, token_reads: bool
) -> None:
    """Refuse upload limits that accept nothing, and --token-reads without a token."""
    from crossmodal.errors import ConfigError

    if max_upload_mb <= 0 or max_pixels <= 0:
        raise ConfigError("--max-upload-mb and --max-pixels must be positive")
    if token_reads and not token:
        raise ConfigError("--token-reads needs --token (or CROSSMODAL_TOKEN)")


def _allowed_hosts(host: str, allowed_host: list[str] | None) -> list[str]:
    """The Host names answered: the local ones and --allowed-host; warn when listening on an
    address that clients would reach under a Host name not among them."""
    hosts = list(LOCAL_HOSTS) + [h.strip().strip("[]") for h in allowed_host or [] if h.strip()]
    if host not in ("127.0.0.1", "localhost", "::1") and host not in hosts and "*" not in hosts:
        typer.echo(
            f"crossmodal: listening on {host}: requests are answered only for Host "
            f"{', '.join(hosts)}; add the name clients use with --allowed-host",
            err=True,
        )
    return hosts
