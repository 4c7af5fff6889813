"""File names as people and scripts can read them.

On Linux a file name is bytes: Python hands names that are not UTF-8 over with their odd bytes
as lone surrogates ("surrogateescape"), which is lossless (`os.fsencode` gives the bytes back)
and is what the catalogue stores (`crossmodal.index.catalog.fs_bytes`). Such a `str` cannot be
written to a UTF-8 terminal or a JSON answer as is, and a name with a newline in it breaks any
line-based pipe; `shown` escapes both, for display only.
"""

from __future__ import annotations

__all__ = ["shown"]

_CONTROL = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F]} | {
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
}


def shown(text: str) -> str:
    r"""`text` with undecodable bytes as \xNN and control characters (a newline) escaped."""
    out = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return out.translate(_CONTROL)
