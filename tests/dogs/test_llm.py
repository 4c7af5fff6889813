"""The optional LLM rephrasing, against a local OpenAI-compatible server started in the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crossmodal.dogs.llm import LLMConfig, LLMError, rephrase
from crossmodal.dogs.qa import answer


class FakeLLM:
    """A tiny chat-completions server; `mode` picks how it behaves on the next requests."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append({"path": self.path, **body})
                outer.headers.append(dict(self.headers))
                if outer.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b'{"error": "boom"}')
                    return
                if outer.mode == "garbage":
                    payload = b"this is not json"
                elif outer.mode == "empty":
                    payload = json.dumps({"choices": []}).encode()
                else:
                    user = body["messages"][-1]["content"]
                    chinese = "依据" in user or "知识库" in user
                    text = "LLM says: " + ("中文回答" if chinese else "ok")
                    payload = json.dumps(
                        {"choices": [{"message": {"role": "assistant", "content": text}}]}
                    ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    server = FakeLLM()
    monkeypatch.setenv("CROSSMODAL_LLM_URL", server.url)
    monkeypatch.setenv("CROSSMODAL_LLM_MODEL", "fake-model")
    monkeypatch.setenv("CROSSMODAL_LLM_KEY", "sk-test")
    monkeypatch.setenv("CROSSMODAL_LLM_TIMEOUT", "5")
    yield server
    server.close()


def test_not_used_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSMODAL_LLM_URL", raising=False)
    monkeypatch.delenv("CROSSMODAL_LLM_MODEL", raising=False)
    assert LLMConfig.from_env() is None
    got = answer("Is a Beagle good with kids?")
    assert not any("llm" in s for s in got.sources)


def test_rephrases_with_the_facts_in_the_prompt(llm: FakeLLM) -> None:
    got = answer("Is a Beagle good with kids?")
    assert got.text.startswith("LLM says: ok")
    # the facts line is ours, appended after the LLM's text: facts stay named
    assert "Facts used (knowledge base): Beagle — children: good; trainability: low." in got.text
    assert any("llm rephrasing: fake-model" in s for s in got.sources)
    (request,) = llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["model"] == "fake-model"
    prompt = request["messages"][-1]["content"]
    assert "Is a Beagle good with kids?" in prompt and "children: good" in prompt
    assert "ONLY the facts" in request["messages"][0]["content"]
    assert llm.headers[0].get("Authorization") == "Bearer sk-test"


def test_chinese_prompt(llm: FakeLLM) -> None:
    got = answer("哈士奇适合住公寓吗？")
    assert got.lang == "zh" and got.text.startswith("LLM says")
    assert "简体中文" in llm.requests[0]["messages"][0]["content"]
    assert "依据（知识库）" in got.text


@pytest.mark.parametrize("mode", ["error", "garbage", "empty"])
def test_failure_falls_back_to_the_rule_based_answer(llm: FakeLLM, mode: str) -> None:
    llm.mode = mode
    got = answer("Is a Beagle good with kids?")
    plain = answer("Is a Beagle good with kids?", use_llm=False)
    assert got.text == plain.text
    assert any(s.startswith("llm failed") for s in got.sources)


def test_unreachable_server_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSMODAL_LLM_URL", "http://127.0.0.1:9/v1")  # discard port: closed
    monkeypatch.setenv("CROSSMODAL_LLM_MODEL", "fake-model")
    monkeypatch.setenv("CROSSMODAL_LLM_TIMEOUT", "2")
    got = answer("Is a Pug good with kids?")
    assert got.text.startswith("Yes.")
    assert any("unreachable" in s for s in got.sources)


def test_use_llm_false_skips_the_server(llm: FakeLLM) -> None:
    answer("Is a Pug good with kids?", use_llm=False)
    assert llm.requests == []


def test_rephrase_raises_llm_error(llm: FakeLLM) -> None:
    llm.mode = "error"
    config = LLMConfig.from_env()
    assert config is not None and config.endpoint.endswith("/v1/chat/completions")
    with pytest.raises(LLMError, match="HTTP 500"):
        rephrase("q", "draft", ["fact"], "en", config)
