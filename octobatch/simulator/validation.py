"""The simulator's own reading of the provider's request rules.

Written from the provider's documentation, independently of the client's schemas, so that a
mistake in the client's model rules shows up as a rejected request instead of being mirrored.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

JIMENG_MODELS = frozenset({"jimeng-video-3.0", "jimeng-video-2.0"})
OMNI_MODELS = frozenset({"omni-fast", "omni-fast-v2v"})
MODELS = JIMENG_MODELS | OMNI_MODELS

JIMENG_FIELDS = frozenset({"model", "prompt", "seconds", "size", "input_reference"})
JIMENG_SECONDS = ("5", "10", "15")
JIMENG_SIZES = ("720x1280", "1280x720")

OMNI_FIELDS = frozenset({"model", "prompt", "seconds", "aspect_ratio", "resolution",
                         "first_image_url", "last_image_url", "images"})
VIDEO_FIELDS = ("video", "video_url", "input_video")
OMNI_SECONDS = range(4, 31)
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")
RESOLUTIONS = ("720p", "1080p", "2k", "4k")
MAX_IMAGES = 5
MAX_VIDEO_BYTES = 15 * 1024 * 1024

_DATA_URI = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<payload>.*)",
                       re.IGNORECASE | re.DOTALL)
_IMAGE_MIMES = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/webp": "webp"}


class Rejected(Exception):
    """A request the provider would refuse; carries the HTTP status and error code."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class UnknownModel(Rejected):
    """The gateway has no channel for this model: 503, reported in the OpenAI error shape."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"当前分组 default 下对于模型 {model} 无可用渠道 (model {model} is not available)",
            status=503, code="model_not_found",
        )


@dataclass(frozen=True)
class Submission:
    """A request that passed every check: what a task is created from."""

    model: str
    prompt: str
    params: Mapping[str, Any] = field(default_factory=dict)


def image_format(data: bytes) -> str | None:
    """"png", "jpeg" or "webp" judged by magic bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_model(model: object, *, multipart: bool) -> str:
    """The model named by a request, checked against the body format it arrived in."""
    if not isinstance(model, str) or not model:
        raise Rejected("model is required")
    if model not in MODELS:
        raise UnknownModel(model)
    if multipart and model in OMNI_MODELS:
        raise Rejected(f"{model} takes a JSON body (Content-Type: application/json), "
                       "not multipart/form-data")
    if not multipart and model in JIMENG_MODELS:
        raise Rejected(f"{model} takes multipart/form-data (use -F fields), not JSON")
    return model


def check_jimeng(model: str, form: Mapping[str, str], files: Mapping[str, bytes]) -> Submission:
    """Multipart fields of jimeng-video-3.0/2.0; `files` holds the file parts by field name."""
    for name in (*form, *files):
        if name not in JIMENG_FIELDS:
            raise Rejected(f"unknown field '{name}'")
    if "input_reference" in form:
        raise Rejected("input_reference must be uploaded as a file part "
                       "(-F input_reference=@image.png)")
    for name in files:
        if name != "input_reference":
            raise Rejected(f"field '{name}' must be text, not a file")
    prompt = _prompt(form.get("prompt"))
    seconds = form.get("seconds", "5")
    if seconds not in JIMENG_SECONDS:
        raise Rejected(f"seconds must be one of {', '.join(JIMENG_SECONDS)}, got '{seconds}'")
    size = form.get("size", "720x1280")
    if size not in JIMENG_SIZES:
        raise Rejected(f"size must be one of {', '.join(JIMENG_SIZES)}, got '{size}'")
    params: dict[str, Any] = {"seconds": seconds, "size": size}
    if "input_reference" in files:
        image = files["input_reference"]
        kind = image_format(image)
        if kind is None:
            raise Rejected("input_reference is not a png, jpeg or webp image")
        params["input_reference"] = f"{kind}, {len(image)} bytes"
    return Submission(model, prompt, params)


def check_omni(model: str, body: Mapping[str, Any]) -> Submission:
    """JSON bodies of omni-fast and omni-fast-v2v."""
    video_fields = [name for name in VIDEO_FIELDS if name in body]
    if model == "omni-fast" and video_fields:
        raise Rejected(f"omni-fast does not accept a reference video ({video_fields[0]}); "
                       "use omni-fast-v2v")
    allowed = OMNI_FIELDS | (frozenset(VIDEO_FIELDS) if model == "omni-fast-v2v" else frozenset())
    for name in body:
        if name not in allowed:
            raise Rejected(f"unknown field '{name}'")
    prompt = _prompt(body.get("prompt"))
    params: dict[str, Any] = {}
    if "seconds" in body:
        params["seconds"] = _omni_seconds(body["seconds"])
    if "aspect_ratio" in body:
        params["aspect_ratio"] = _choice("aspect_ratio", body["aspect_ratio"], ASPECT_RATIOS)
    if "resolution" in body:
        params["resolution"] = _choice("resolution", body["resolution"], RESOLUTIONS, fold=True)
    if "last_image_url" in body and "first_image_url" not in body:
        raise Rejected("last_image_url needs first_image_url")
    for name in ("first_image_url", "last_image_url"):
        if name in body:
            params[name] = _image_ref(name, body[name])
    if "images" in body:
        images = body["images"]
        if not isinstance(images, list) or not images:
            raise Rejected("images must be a list of 1 to 5 image URLs or data URIs")
        if len(images) > MAX_IMAGES:
            raise Rejected(f"images takes at most {MAX_IMAGES} references, got {len(images)}")
        params["images"] = [_image_ref(f"images[{i}]", ref) for i, ref in enumerate(images)]
    if model == "omni-fast-v2v":
        if not video_fields:
            raise Rejected("omni-fast-v2v needs a reference video in 'video'")
        if len(video_fields) > 1:
            raise Rejected(f"give the reference video once, not as {' and '.join(video_fields)}")
        params["video"] = _video_ref(video_fields[0], body[video_fields[0]])
    elif "first_image_url" not in body and "images" not in body:
        for name in ("seconds", "aspect_ratio"):
            if name not in body:
                raise Rejected(f"{name} is required for text-to-video")
    return Submission(model, prompt, params)


def _prompt(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Rejected("prompt is required")
    return value


def _omni_seconds(value: object) -> str:
    # Documented as a string, but numbers are accepted; bool is an int in Python, not here.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Rejected(f"seconds must be a whole number from 4 to 30, got {value!r}")
    text = str(value).strip()
    if not text.isdigit() or int(text) not in OMNI_SECONDS:
        raise Rejected(f"seconds must be a whole number from 4 to 30, got {value!r}")
    return str(int(text))


def _choice(name: str, value: object, allowed: tuple[str, ...], *, fold: bool = False) -> str:
    text = value.lower() if fold and isinstance(value, str) else value
    if not isinstance(text, str) or text not in allowed:
        raise Rejected(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return text


def _is_public_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _decode_data_uri(name: str, value: str) -> tuple[str, bytes]:
    match = _DATA_URI.fullmatch(value)
    if match is None:
        raise Rejected(f"{name} is not a valid data URI (data:<type>;base64,<data>)")
    try:
        data = base64.b64decode(match["payload"], validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(f"{name} has invalid base64 data") from None
    return match["mime"].lower(), data


def _image_ref(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise Rejected(f"{name} must be a string")
    if _is_public_url(value):
        return value
    if not value[:5].lower() == "data:":
        raise Rejected(f"{name} must be a public http(s) URL or a data:image/...;base64 URI")
    mime, data = _decode_data_uri(name, value)
    declared = _IMAGE_MIMES.get(mime)
    if declared is None:
        raise Rejected(f"{name}: unsupported image type {mime} (use png, jpeg or webp)")
    actual = image_format(data)
    if actual != declared:
        found = "not an image" if actual is None else f"a {actual} image"
        raise Rejected(f"{name}: says {mime} but the data is {found}")
    return f"data:{mime} ({len(data)} bytes)"


def _video_ref(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise Rejected(f"{name} must be a string")
    if _is_public_url(value):
        return value
    if not value[:5].lower() == "data:":
        raise Rejected(f"{name} must be a public MP4 URL or a data:video/mp4;base64 URI")
    mime, data = _decode_data_uri(name, value)
    if mime != "video/mp4" or data[4:8] != b"ftyp":
        raise Rejected(f"{name} must be an MP4 video")
    if len(data) > MAX_VIDEO_BYTES:
        raise Rejected(f"{name} is {len(data)} bytes; the reference video limit is 15 MB")
    return f"data:video/mp4 ({len(data)} bytes)"
