"""Provider configuration: keys and endpoints from the environment, else a TOML file.

Order (DESIGN.md): environment (`CROSSMODAL_*`) > the TOML file > defaults. The file is
`$CROSSMODAL_PROVIDERS_FILE`, else `~/.config/crossmodal/providers.toml`:

    [zhipu]                       # GLM-4 / GLM-4V chat, CogView-3, CogVideoX
    api_key = "id.secret"         # or CROSSMODAL_ZHIPU_API_KEY / ZHIPUAI_API_KEY
    base_url = "https://open.bigmodel.cn/api/paas/v4"
    chat_model = "glm-4"          # vision_model = "glm-4v", image_model = "cogview-3",
    auth = "key"                  # video_model = "cogvideox"; "jwt" signs a short-lived token
    [openai]                      # any OpenAI-compatible chat server (used when no zhipu key)
    url = "http://localhost:8000/v1"; model = "qwen2"; key = "..."
    [baidu]                       # image search: AK/SK of a Baidu AI Cloud application
    api_key = "..."; secret_key = "..."
    [media]
    dir = "~/crossmodal-media"    # where generated images and videos are saved

Keys are held in `Secret` so that a `repr` / log line of a config never shows them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossmodal.errors import ConfigError

__all__ = ["ProvidersConfig", "Secret", "config_file", "load_config"]

ZHIPU_BASE_URL = "https://open.bigmodel.cn/api/paas/v4"
BAIDU_BASE_URL = "https://aip.baidubce.com"

#: what the user sets, named in every "not configured" message
ZHIPU_KEY_VARS = ("CROSSMODAL_ZHIPU_API_KEY", "ZHIPUAI_API_KEY")
BAIDU_KEY_VARS = ("CROSSMODAL_BAIDU_API_KEY", "CROSSMODAL_BAIDU_SECRET_KEY")
OPENAI_VARS = ("CROSSMODAL_LLM_URL", "CROSSMODAL_LLM_MODEL")


class Secret(str):
    """A string whose repr never shows its value (keys must not reach logs or tracebacks)."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class ProvidersConfig:
    zhipu_key: Secret | None = None
    zhipu_base_url: str = ZHIPU_BASE_URL
    zhipu_auth: str = "key"  # "key": the API key as bearer; "jwt": a signed token (HS256)
    chat_model: str = "glm-4"
    vision_model: str = "glm-4v"
    image_model: str = "cogview-3"
    video_model: str = "cogvideox"
    openai_url: str | None = None
    openai_model: str | None = None
    openai_key: Secret | None = None
    baidu_key: Secret | None = None
    baidu_secret: Secret | None = None
    baidu_base_url: str = BAIDU_BASE_URL
    chat_provider: str | None = None  # "zhipu" | "openai"; default: whichever has a key
    media_dir: Path = field(default_factory=lambda: Path("~/crossmodal-media").expanduser())
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0  # seconds before the first retry, doubled each time
    poll_interval: float = 5.0  # between polls of a video task
    video_timeout: float = 600.0  # give up on a video task after this many seconds

    def __post_init__(self) -> None:
        if self.zhipu_auth not in ("key", "jwt"):
            raise ConfigError(f"zhipu auth must be 'key' or 'jwt', got {self.zhipu_auth!r}")
        if self.chat_provider not in (None, "zhipu", "openai"):
            raise ConfigError(
                f"CROSSMODAL_CHAT_PROVIDER must be zhipu or openai, got {self.chat_provider!r}"
            )
        for name in ("timeout", "poll_interval", "video_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"provider setting {name} must be positive")
        if self.retries < 0 or self.backoff < 0:
            raise ConfigError("provider retries and backoff must not be negative")

    def summary(self) -> dict[str, Any]:
        """Which capabilities are configured (no keys): for the page and `--help` text."""
        return {
            "chat": self.chat_backend(),
            "vision": self.chat_backend() == "zhipu",
            "image": self.zhipu_key is not None,
            "video": self.zhipu_key is not None,
            "web_search": self.baidu_key is not None and self.baidu_secret is not None,
        }

    def chat_backend(self) -> str | None:
        if self.chat_provider == "openai" or (
            self.chat_provider is None and self.zhipu_key is None
        ):
            return "openai" if self.openai_url and self.openai_model else None
        return "zhipu" if self.zhipu_key is not None else None


def config_file() -> Path:
    env = os.environ.get("CROSSMODAL_PROVIDERS_FILE", "").strip()
    return (
        Path(env).expanduser() if env else Path("~/.config/crossmodal/providers.toml").expanduser()
    )


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        if os.environ.get("CROSSMODAL_PROVIDERS_FILE"):
            raise ConfigError(f"providers file not found: {path} (CROSSMODAL_PROVIDERS_FILE)")
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read providers file: {exc}") from None


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _number(name: str, value: Any, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


def load_config() -> ProvidersConfig:
    """The configuration in force now (environment over file over defaults)."""
    raw = _read_file(config_file())
    z, o, b, m = (raw.get(k, {}) for k in ("zhipu", "openai", "baidu", "media"))
    net = raw.get("network", {})

    def pick(env: tuple[str, ...], section: dict[str, Any], key: str, default: Any = None) -> Any:
        value = _env(*env)
        return value if value is not None else section.get(key, default)

    def secret(value: Any) -> Secret | None:
        return Secret(str(value)) if value else None

    defaults = ProvidersConfig()
    return ProvidersConfig(
        zhipu_key=secret(pick(ZHIPU_KEY_VARS, z, "api_key")),
        zhipu_base_url=pick(("CROSSMODAL_ZHIPU_BASE_URL",), z, "base_url", ZHIPU_BASE_URL),
        zhipu_auth=pick(("CROSSMODAL_ZHIPU_AUTH",), z, "auth", "key"),
        chat_model=pick(("CROSSMODAL_ZHIPU_CHAT_MODEL",), z, "chat_model", defaults.chat_model),
        vision_model=pick(
            ("CROSSMODAL_ZHIPU_VISION_MODEL",), z, "vision_model", defaults.vision_model
        ),
        image_model=pick(("CROSSMODAL_ZHIPU_IMAGE_MODEL",), z, "image_model", defaults.image_model),
        video_model=pick(("CROSSMODAL_ZHIPU_VIDEO_MODEL",), z, "video_model", defaults.video_model),
        openai_url=pick(("CROSSMODAL_LLM_URL",), o, "url"),
        openai_model=pick(("CROSSMODAL_LLM_MODEL",), o, "model"),
        openai_key=secret(pick(("CROSSMODAL_LLM_KEY",), o, "key")),
        baidu_key=secret(pick(("CROSSMODAL_BAIDU_API_KEY",), b, "api_key")),
        baidu_secret=secret(pick(("CROSSMODAL_BAIDU_SECRET_KEY",), b, "secret_key")),
        baidu_base_url=pick(("CROSSMODAL_BAIDU_BASE_URL",), b, "base_url", BAIDU_BASE_URL),
        chat_provider=pick(("CROSSMODAL_CHAT_PROVIDER",), raw.get("chat", {}), "provider"),
        media_dir=Path(
            pick(("CROSSMODAL_MEDIA_DIR",), m, "dir", str(defaults.media_dir))
        ).expanduser(),
        timeout=_number(
            "CROSSMODAL_PROVIDER_TIMEOUT",
            pick(("CROSSMODAL_PROVIDER_TIMEOUT",), net, "timeout", defaults.timeout),
            float,
        ),
        retries=_number(
            "CROSSMODAL_PROVIDER_RETRIES",
            pick(("CROSSMODAL_PROVIDER_RETRIES",), net, "retries", defaults.retries),
            int,
        ),
        backoff=_number(
            "CROSSMODAL_PROVIDER_BACKOFF",
            pick(("CROSSMODAL_PROVIDER_BACKOFF",), net, "backoff", defaults.backoff),
            float,
        ),
        poll_interval=_number(
            "CROSSMODAL_VIDEO_POLL",
            pick(("CROSSMODAL_VIDEO_POLL",), net, "poll_interval", defaults.poll_interval),
            float,
        ),
        video_timeout=_number(
            "CROSSMODAL_VIDEO_TIMEOUT",
            pick(("CROSSMODAL_VIDEO_TIMEOUT",), net, "video_timeout", defaults.video_timeout),
            float,
        ),
    )
