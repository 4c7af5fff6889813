"""Local servers speaking the Zhipu BigModel and Baidu image-search protocols, for the tests.

They accept the request shapes the real services document and answer with the documented
response shapes (see the docstrings of crossmodal/providers/zhipu.py and baidu.py), bound to
127.0.0.1 only. Faults are injected per test: `server.fault("/chat", 429)` makes the next
request whose path starts with "/chat" answer 429 (also 401, 500, "malformed", "sse-garbage",
"sse-cut", "stuck" for a video task that never finishes, "baidu-qps", "baidu-token").
Everything a client sent is kept in `server.requests` for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

ZHIPU_KEY = "testid.testsecret"
BAIDU_AK, BAIDU_SK = "test-ak", "test-sk"

#: the smallest MP4 header the media saver accepts (an `ftyp` box); enough for the page's card
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64


def png_bytes(color: tuple[int, int, int] = (200, 150, 60), size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class _State:
    faults: list[tuple[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    video_polls: int = 3  # polls a video task needs before SUCCESS
    baidu_token: str = ""
    tokens_issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _valid_zhipu_auth(header: str) -> bool:
    if not header.startswith("Bearer "):
        return False
    token = header[7:]
    if token == ZHIPU_KEY:
        return True
    parts = token.split(".")
    if len(parts) != 3:
        return False
    key_id, secret = ZHIPU_KEY.split(".")
    signing = f"{parts[0]}.{parts[1]}".encode()
    want = base64.urlsafe_b64encode(hmac.new(secret.encode(), signing, hashlib.sha256).digest())
    if want.rstrip(b"=").decode() != parts[2]:
        return False
    payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    header_obj = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    return (
        header_obj.get("sign_type") == "SIGN"
        and payload.get("api_key") == key_id
        and payload.get("exp", 0) > time.time() * 1000
    )


class _Handler(BaseHTTPRequestHandler):
    server: ProtocolServer  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ---------------------------------------------------------------- plumbing
    def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def _read(self) -> tuple[str, dict[str, list[str]], Any]:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        body: Any = raw
        if "json" in ctype and raw:
            body = json.loads(raw)
        elif "form" in ctype:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        return parts.path, parse_qs(parts.query), body

    def _fault(self, path: str) -> Any:
        state = self.server.state
        with state.lock:
            for i, (prefix, action) in enumerate(state.faults):
                if path.startswith(prefix):
                    del state.faults[i]
                    return action
        return None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path, query, body = self._read()
        state = self.server.state
        state.requests.append(Recorded(method, path, query, dict(self.headers), body))
        fault = self._fault(path)
        if fault in (401, 429, 500):
            words = {401: "令牌已过期或验证不正确", 429: "并发数过高", 500: "服务内部错误"}
            self._send(fault, {"error": {"code": str(1000 + fault), "message": words[fault]}})
            return
        if fault == "malformed":
            self._send(200, b"{not json", "application/json")
            return
        if fault == "sse-garbage":  # a streamed chat whose event is not JSON
            self._send(200, b"data: {oops\n\ndata: [DONE]\n\n", "text/event-stream")
            return
        if fault == "sse-cut":  # a streamed chat that stops before [DONE]
            event = {"choices": [{"index": 0, "delta": {"content": "half"}}]}
            self._send(200, f"data: {json.dumps(event)}\n\n".encode(), "text/event-stream")
            return
        if fault == "stuck":  # a task that never finishes
            body = {"__stuck__": True, **(body if isinstance(body, dict) else {})}
        if path.startswith("/files/"):
            data, ctype = state.files.get(path, (b"", "text/plain"))
            self._send(200 if data else 404, data or {"error": "no such file"}, ctype)
        elif path.startswith("/oauth/2.0/token") or path.startswith("/rest/"):
            self._baidu(path, query, body, fault)
        else:
            if not _valid_zhipu_auth(self.headers.get("Authorization", "")):
                self._send(401, {"error": {"code": "1002", "message": "Authorization Token非法"}})
                return
            self._zhipu(method, path, body)

    # ---------------------------------------------------------------- Zhipu BigModel
    def _zhipu(self, method: str, path: str, body: Any) -> None:
        state = self.server.state
        base = f"http://127.0.0.1:{self.server.server_port}"
        if path == "/chat/completions" and method == "POST":
            last = body["messages"][-1]
            content = last["content"]
            if isinstance(content, list):  # GLM-4V: [{type: text}, {type: image_url}]
                text = next(c["text"] for c in content if c["type"] == "text")
                has_image = any(c["type"] == "image_url" for c in content)
            else:
                text, has_image = content, False
            reply = f"[{body['model']}] {self.server.reply_prefix}{text}"
            if has_image:
                reply += " (with image)"
            if body.get("stream"):
                chunks = [reply[i : i + 5] for i in range(0, len(reply), 5)]
                events = "".join(
                    "data: "
                    + json.dumps({"id": "x", "choices": [{"index": 0, "delta": {"content": c}}]})
                    + "\n\n"
                    for c in chunks
                )
                self._send(200, (events + "data: [DONE]\n\n").encode(), "text/event-stream")
                return
            self._send(
                200,
                {
                    "id": "chatcmpl-1",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": reply},
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                },
            )
        elif path == "/images/generations" and method == "POST":
            name = f"/files/img{len(state.files)}.png"
            state.files[name] = (png_bytes(), "image/png")
            self._send(200, {"created": int(time.time()), "data": [{"url": base + name}]})
        elif path == "/videos/generations" and method == "POST":
            task_id = f"task-{len(state.tasks) + 1}"
            state.tasks[task_id] = {
                "polls": 0,
                "stuck": bool(body.get("__stuck__")),
                "model": body["model"],
                "fail": "FAIL" in body.get("prompt", ""),
            }
            self._send(
                200,
                {
                    "id": task_id,
                    "model": body["model"],
                    "request_id": "req-1",
                    "task_status": "PROCESSING",
                },
            )
        elif path.startswith("/async-result/") and method == "GET":
            task_id = path.rsplit("/", 1)[1]
            task = state.tasks.get(task_id)
            if task is None:
                self._send(404, {"error": {"code": "1214", "message": "任务不存在"}})
                return
            task["polls"] += 1
            done = not task["stuck"] and task["polls"] >= state.video_polls
            status = "FAIL" if task["fail"] and done else ("SUCCESS" if done else "PROCESSING")
            reply: dict[str, Any] = {
                "model": task["model"],
                "request_id": "req-1",
                "task_status": status,
            }
            if status == "SUCCESS":
                name = f"/files/{task_id}.mp4"
                state.files[name] = (MP4_BYTES, "video/mp4")
                cover = f"/files/{task_id}.png"
                state.files[cover] = (png_bytes((90, 90, 200)), "image/png")
                reply["video_result"] = [{"url": base + name, "cover_image_url": base + cover}]
            self._send(200, reply)
        else:
            self._send(404, {"error": {"code": "404", "message": f"no route {method} {path}"}})

    # ---------------------------------------------------------------- Baidu
    def _baidu(self, path: str, query: dict[str, list[str]], body: Any, fault: Any) -> None:
        state = self.server.state
        if path == "/oauth/2.0/token":
            ak = query.get("client_id", [""])[0]
            sk = query.get("client_secret", [""])[0]
            if query.get("grant_type") != ["client_credentials"] or (ak, sk) != (
                BAIDU_AK,
                BAIDU_SK,
            ):
                self._send(
                    401, {"error": "invalid_client", "error_description": "unknown client id"}
                )
                return
            state.tokens_issued += 1
            state.baidu_token = f"24.token{state.tokens_issued}"
            self._send(200, {"access_token": state.baidu_token, "expires_in": 2592000})
            return
        if path != "/rest/2.0/image-classify/v1/realtime_search/similar/search":
            self._send(404, {"error_code": 3, "error_msg": "Unsupported openapi method"})
            return
        if fault == "baidu-qps":
            self._send(200, {"error_code": 18, "error_msg": "Open api qps request limit reached"})
            return
        token = query.get("access_token", [""])[0]
        if fault == "baidu-token" or token != state.baidu_token:
            self._send(
                200, {"error_code": 110, "error_msg": "Access token invalid or no longer valid"}
            )
            return
        try:
            image = base64.b64decode(body["image"], validate=True)
            Image.open(io.BytesIO(image)).verify()
        except Exception:
            self._send(200, {"error_code": 216201, "error_msg": "image format error"})
            return
        rn = int(body.get("rn", "300"))
        results = [
            {
                "score": round(0.95 - 0.1 * i, 2),
                "brief": json.dumps(
                    {"url": f"https://img.example/dog{i}.jpg", "title": f"dog {i}"}
                ),
                "cont_sign": f"{i},{i + 1}",
            }
            for i in range(min(rn, 3))
        ]
        self._send(
            200,
            {"log_id": 1, "has_more": False, "result_num": len(results), "result": results},
        )


class ProtocolServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = _State()
        self.reply_prefix = ""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    @property
    def requests(self) -> list[Recorded]:
        return self.state.requests

    def fault(self, path_prefix: str, action: Any, times: int = 1) -> None:
        with self.state.lock:
            self.state.faults.extend([(path_prefix, action)] * times)

    def start(self) -> ProtocolServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def provider_env(server: ProtocolServer, media_dir: str) -> dict[str, str]:
    """Environment pointing every provider at `server`, with fast retries and polls."""
    return {
        "CROSSMODAL_ZHIPU_API_KEY": ZHIPU_KEY,
        "CROSSMODAL_ZHIPU_BASE_URL": server.url,
        "CROSSMODAL_BAIDU_API_KEY": BAIDU_AK,
        "CROSSMODAL_BAIDU_SECRET_KEY": BAIDU_SK,
        "CROSSMODAL_BAIDU_BASE_URL": server.url,
        "CROSSMODAL_MEDIA_DIR": media_dir,
        "CROSSMODAL_PROVIDER_BACKOFF": "0.01",
        "CROSSMODAL_PROVIDER_TIMEOUT": "5",
        "CROSSMODAL_VIDEO_POLL": "0.02",
        "CROSSMODAL_VIDEO_TIMEOUT": "2",
    }
