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
# docs.octopusx.ai/en/videos/jimeng/doubao-generation
DOUBAO_MODELS = frozenset(f"doubao-seedance-{v}-pro_{r}" for v in ("1-0", "1-5")
                          for r in ("480p", "720p", "1080p"))
# docs.octopusx.ai/en/videos/grok/generation: -pro and -max are "automatically fixed"
GROK_FIXED_SECONDS = {"grok-video-3": None, "grok-video-3-pro": "10", "grok-video-3-max": "15"}
# docs.octopusx.ai/en/videos/vidu/vidu-generation
VIDU_MODELS = frozenset({"viduq3-pro", "viduq2-pro", "viduq2-turbo"})
SORA_MODELS = frozenset({"sora-2"})  # docs.octopusx.ai/en/videos/sora/generation
VEO_MODELS = frozenset({"veo_3_1", "veo_3_1-fast"})  # docs.octopusx.ai/en/videos/veo/generation
# docs.octopusx.ai/en/videos/kling/generation and kling/overview (duration rules)
KLING_SECONDS = {"Kling-3.0-Omni": ("5", "10", "15"), "Kling-2.6": ("5", "10"),
                 "Kling-2.5": ("5", "10")}
MULTIPART_MODELS = JIMENG_MODELS | DOUBAO_MODELS | frozenset(GROK_FIXED_SECONDS) | VIDU_MODELS
JSON_MODELS = OMNI_MODELS | SORA_MODELS | VEO_MODELS | frozenset(KLING_SECONDS)
MODELS = MULTIPART_MODELS | JSON_MODELS

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


def check_model(model: object, *, multipart: bool, extra: Mapping[str, str] | None = None
                ) -> str:
    """The model named by a request, checked against the body format it arrived in."""
    if not isinstance(model, str) or not model:
        raise Rejected("model is required")
    if extra and model in extra and model not in MODELS:
        if (extra[model] == "multipart") != multipart:
            raise Rejected(f"{model} takes a {extra[model]} body")
        return model
    if model not in MODELS:
        raise UnknownModel(model)
    if multipart and model in JSON_MODELS:
        raise Rejected(f"{model} takes a JSON body (Content-Type: application/json), "
                       "not multipart/form-data")
    if not multipart and model in MULTIPART_MODELS:
        raise Rejected(f"{model} takes multipart/form-data (use -F fields), not JSON")
    return model


def check_multipart(form: Mapping[str, str], files: Mapping[str, list[bytes]],
                    extra: Mapping[str, str] | None = None) -> Submission:
    """A multipart body, by model; `files` holds every file part under its field name."""
    model = check_model(form.get("model"), multipart=True, extra=extra)
    if model not in MODELS:  # a project's own model: its rules are not known here
        params = {k: v for k, v in form.items() if k not in ("model", "prompt")}
        params.update({k: f"{len(v)} file(s)" for k, v in files.items()})
        return Submission(model, _prompt(form.get("prompt")), params)
    if model in DOUBAO_MODELS:
        return check_doubao(model, form, files)
    if model in GROK_FIXED_SECONDS:
        return check_grok(model, form, files)
    if model in VIDU_MODELS:
        return check_vidu(model, form, files)
    return check_jimeng(model, form, _single_files(files))


def check_json(body: Mapping[str, Any], extra: Mapping[str, str] | None = None) -> Submission:
    """A JSON body, by model."""
    model = check_model(body.get("model"), multipart=False, extra=extra)
    if model not in MODELS:  # a project's own model: its rules are not known here
        params = {k: v for k, v in body.items() if k not in ("model", "prompt")}
        return Submission(model, _prompt(body.get("prompt")), params)
    if model in SORA_MODELS or model in VEO_MODELS:
        return check_sora_veo(model, body)
    if model in KLING_SECONDS:
        return check_kling(model, body)
    return check_omni(model, body)


def _single_files(files: Mapping[str, list[bytes]]) -> dict[str, bytes]:
    for name, parts in files.items():
        if len(parts) > 1:
            raise Rejected(f"field '{name}' given more than once")
    return {name: parts[0] for name, parts in files.items()}


def _only(model: str, names: Any, allowed: frozenset[str]) -> None:
    for name in names:
        if name not in allowed:
            raise Rejected(f"unknown field '{name}' for {model}")


def _text_only(form: Mapping[str, str], files: Mapping[str, Any], names: frozenset[str]) -> None:
    for name in files:
        if name not in names:
            raise Rejected(f"field '{name}' must be text, not a file")


def _image_part(name: str, data: bytes) -> str:
    kind = image_format(data)
    if kind is None:
        raise Rejected(f"{name} is not a png, jpeg or webp image")
    return f"{kind}, {len(data)} bytes"


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Rejected(f"{name} must be a number, got {value!r}")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise Rejected(f"{name} must be a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise Rejected(f"{name} must be a number, got {value!r}")
    return number


def _whole(name: str, value: object, *, minimum: int | None = None) -> int:
    number = _number(name, value)
    if not number.is_integer() or (minimum is not None and number < minimum):
        least = "" if minimum is None else f" of at least {minimum}"
        raise Rejected(f"{name} must be a whole number{least}, got {value!r}")
    return int(number)


def _flag(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise Rejected(f"{name} must be true or false, got {value!r}")
    return value.lower() == "true"


DOUBAO_FIELDS = frozenset({"model", "prompt", "size", "seconds"})
DOUBAO_FRAMES = frozenset({"first_frame_image", "last_frame_image"})
DOUBAO_SIZES = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "keep_ratio", "adaptive")


def check_doubao(model: str, form: Mapping[str, str], files: Mapping[str, list[bytes]]
                 ) -> Submission:
    """Doubao Seedance 1.0/1.5 pro: text, first frame, first and last frame (file parts)."""
    _only(model, (*form, *files), DOUBAO_FIELDS | DOUBAO_FRAMES)
    for name in DOUBAO_FRAMES & set(form):
        raise Rejected(f"{name} must be uploaded as a file part (-F {name}=@image.png)")
    _text_only(form, files, DOUBAO_FRAMES)
    frames = _single_files(files)
    if "last_frame_image" in frames and "first_frame_image" not in frames:
        raise Rejected("last_frame_image needs first_frame_image")
    params: dict[str, Any] = {}
    if "size" in form:
        params["size"] = _choice("size", form["size"], DOUBAO_SIZES)
    if "seconds" in form:
        seconds = _number("seconds", form["seconds"])
        if not 4 <= seconds < 12:
            raise Rejected(f"seconds must be >= 4 and < 12, got {form['seconds']!r}")
        params["seconds"] = form["seconds"]
    for name in sorted(frames):
        params[name] = _image_part(name, frames[name])
    return Submission(model, _prompt(form.get("prompt")), params)


GROK_FIELDS = frozenset({"model", "prompt", "aspect_ratio", "seconds", "size"})
GROK_RATIOS = ("16:9", "9:16", "2:3", "3:2", "1:1")
GROK_SIZES = ("480P", "540P", "720P", "1080P")


def check_grok(model: str, form: Mapping[str, str], files: Mapping[str, list[bytes]]
               ) -> Submission:
    """grok-video-3 (-pro, -max): input_reference may be uploaded several times."""
    _only(model, (*form, *files), GROK_FIELDS | {"input_reference"})
    if "input_reference" in form:
        raise Rejected("input_reference must be uploaded as a file part "
                       "(-F input_reference=@image.png)")
    _text_only(form, files, frozenset({"input_reference"}))
    params: dict[str, Any] = {}
    if "aspect_ratio" in form:
        params["aspect_ratio"] = _choice("aspect_ratio", form["aspect_ratio"], GROK_RATIOS)
    if "size" in form:
        params["size"] = _choice("size", form["size"], GROK_SIZES)
    if "seconds" in form:
        params["seconds"] = str(_whole("seconds", form["seconds"], minimum=1))
    fixed = GROK_FIXED_SECONDS[model]
    if fixed is not None:  # the gateway corrects the duration rather than refusing it
        params["seconds"] = fixed
    references = files.get("input_reference", [])
    if references:
        params["input_reference"] = [_image_part(f"input_reference[{i}]", data)
                                     for i, data in enumerate(references)]
    return Submission(model, _prompt(form.get("prompt")), params)


VIDU_TEXT = frozenset({"model", "prompt", "images", "aspect_ratio", "voice_id", "resolution",
                       "payload", "wm_url", "meta_data"})
VIDU_FLAGS = frozenset({"audio", "is_rec", "bgm", "off_peak", "watermark"})
VIDU_NUMBERS = frozenset({"duration", "seed", "wm_position"})
VIDU_RATIOS = ("16:9", "9:16", "3:4", "4:3", "1:1")


def check_vidu(model: str, form: Mapping[str, str], files: Mapping[str, list[bytes]]
               ) -> Submission:
    """Vidu q2/q3: one reference image in `images`, as a file or as a URL / base64 text."""
    _only(model, (*form, *files), VIDU_TEXT | VIDU_FLAGS | VIDU_NUMBERS)
    _text_only(form, files, frozenset({"images"}))
    uploaded = _single_files(files)
    if "images" in uploaded and "images" in form:
        raise Rejected("images takes only 1 image")
    params: dict[str, Any] = {}
    if "images" in uploaded:
        params["images"] = _image_part("images", uploaded["images"])
    elif "images" in form:
        params["images"] = _image_ref("images", form["images"])
    if "aspect_ratio" in form:
        params["aspect_ratio"] = _choice("aspect_ratio", form["aspect_ratio"], VIDU_RATIOS)
    for name in sorted(VIDU_FLAGS & set(form)):
        params[name] = _flag(name, form[name])
    for name in sorted(VIDU_NUMBERS & set(form)):
        params[name] = _whole(name, form[name], minimum=1 if name == "duration" else None)
    for name in ("voice_id", "resolution", "payload", "wm_url", "meta_data"):
        if name in form:
            params[name] = form[name]
    prompt = form.get("prompt")
    if params.get("is_rec") and not (prompt or "").strip():
        prompt = "(recommended prompt)"  # is_rec: the model writes its own prompt
    return Submission(model, _prompt(prompt), params)


SORA_FIELDS = frozenset({"model", "prompt", "size", "seconds", "input_reference", "metadata",
                         "character_url", "character_timestamps"})
VEO_FIELDS = frozenset({"model", "prompt", "size", "seconds", "input_reference", "metadata",
                        "enable_upsample"})
SORA_SIZES = ("720x1280", "1280x720")
_SIZE = re.compile(r"[0-9]+x[0-9]+")


def check_sora_veo(model: str, body: Mapping[str, Any]) -> Submission:
    """sora-2 and veo 3.1: JSON with input_reference (URL, base64, data URI) and metadata."""
    _only(model, body, SORA_FIELDS if model in SORA_MODELS else VEO_FIELDS)
    params: dict[str, Any] = {}
    if "size" in body:
        size = body["size"]
        if model in SORA_MODELS:
            params["size"] = _choice("size", size, SORA_SIZES)
        elif isinstance(size, str) and _SIZE.fullmatch(size):
            params["size"] = size
        else:
            raise Rejected(f"size must look like 1280x720, got {size!r}")
    if "seconds" in body:
        params["seconds"] = str(_whole("seconds", body["seconds"], minimum=1))
    if "input_reference" in body:
        refs = body["input_reference"]
        items = refs if isinstance(refs, list) else [refs]
        if not items:
            raise Rejected("input_reference must not be an empty list")
        params["input_reference"] = [_image_ref(f"input_reference[{i}]", ref)
                                     for i, ref in enumerate(items)]
    if "metadata" in body:
        params["metadata"] = _metadata(body["metadata"])
    if "enable_upsample" in body and not isinstance(body["enable_upsample"], bool):
        raise Rejected("enable_upsample must be true or false")
    for name in ("character_url", "character_timestamps"):
        if name in body and not isinstance(body[name], str):
            raise Rejected(f"{name} must be a string")
    return Submission(model, _prompt(body.get("prompt")), params)


def _metadata(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Rejected("metadata must be an object")
    config = value.get("output_config")
    if config is not None:
        if not isinstance(config, dict):
            raise Rejected("metadata.output_config must be an object")
        for name, item in config.items():
            if not isinstance(item, (str, int)) or isinstance(item, bool):
                raise Rejected(f"metadata.output_config.{name} must be a string or a number")
    return dict(value)


KLING_FIELDS = frozenset({"model", "prompt", "seconds", "size", "image", "metadata"})
KLING_SCENES = ("motion_control", "avatar_i2v", "lip_sync", "template_effect")
KLING_CONFIG = {"resolution": ("720P", "1080P"), "aspect_ratio": ("16:9", "9:16", "1:1"),
                "audio_generation": ("Enabled", "Disabled")}


def check_kling(model: str, body: Mapping[str, Any]) -> Submission:
    """Kling 3.0 Omni / 2.6 / 2.5: JSON; extended parameters under metadata."""
    _only(model, body, KLING_FIELDS)
    params: dict[str, Any] = {}
    if "seconds" in body:
        seconds = str(_whole("seconds", body["seconds"]))
        allowed = KLING_SECONDS[model]
        if seconds not in allowed:
            raise Rejected(f"seconds must be one of {', '.join(allowed)} for {model}, "
                           f"got {body['seconds']!r}")
        params["seconds"] = seconds
    if "size" in body:
        if not isinstance(body["size"], str) or not _SIZE.fullmatch(body["size"]):
            raise Rejected(f"size must look like 720x1280, got {body['size']!r}")
        params["size"] = body["size"]
    if "image" in body:
        params["image"] = _public_url("image", body["image"])
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        raise Rejected("metadata must be an object")
    config = metadata.get("output_config", {})
    if not isinstance(config, dict):
        raise Rejected("metadata.output_config must be an object")
    for name, allowed in KLING_CONFIG.items():
        if name in config:
            _choice(f"metadata.output_config.{name}", config[name], allowed)
    if "duration" in config:
        _whole("metadata.output_config.duration", config["duration"], minimum=1)
    if "scene_type" in metadata:
        _choice("metadata.scene_type", metadata["scene_type"], KLING_SCENES)
    if "motion_level" in metadata:
        _choice("metadata.motion_level", metadata["motion_level"], ("std", "pro"))
    if "offpeak" in metadata and not isinstance(metadata["offpeak"], bool):
        raise Rejected("metadata.offpeak must be true or false")
    for name in ("last_frame_url", "video_url"):
        if name in metadata:
            _public_url(f"metadata.{name}", metadata[name])
    if metadata:
        params["metadata"] = dict(metadata)
    return Submission(model, _prompt(body.get("prompt")), params)


def _public_url(name: str, value: object) -> str:
    if not isinstance(value, str) or not _is_public_url(value):
        raise Rejected(f"{name} must be a public http(s) URL")
    return value


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


# docs.octopusx.ai/en/videos/seedance-2/generation: its own route, POST /v1/video/generations
SEEDANCE2_MODELS = frozenset({"doubao-seedance-2-0-260128", "doubao-seedance-2-0-fast-260128"})
SEEDANCE2_ROLES = {"image_url": ("first_frame", "last_frame", "reference_image"),
                   "video_url": ("reference_video",), "audio_url": ("reference_audio",)}
SEEDANCE2_FLAGS = ("camera_fixed", "watermark", "generate_audio", "return_last_frame", "draft")
SEEDANCE2_METADATA = frozenset({"duration", "resolution", "ratio", "frames", "seed",
                                "service_tier", "execution_expires_after", "callback_url",
                                *SEEDANCE2_FLAGS})


def check_seedance2(body: Mapping[str, Any]) -> Submission:
    """A Seedance 2.0 `content` array (text, media by role, or one draft task) and metadata."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Rejected("model is required")
    if model not in SEEDANCE2_MODELS:
        raise UnknownModel(model)
    _only(model, body, frozenset({"model", "content", "metadata"}))
    content = body.get("content")
    if not isinstance(content, list) or not content:
        raise Rejected("content must be a non-empty array")
    texts: list[str] = []
    media: list[str] = []
    for i, item in enumerate(content):
        if not isinstance(item, dict):
            raise Rejected(f"content[{i}] must be an object")
        kind = item.get("type")
        if kind == "text":
            if not isinstance(item.get("text"), str) or not item["text"].strip():
                raise Rejected(f"content[{i}].text is required when type=text")
            texts.append(item["text"])
        elif kind == "draft_task":
            draft = item.get("draft_task")
            if not isinstance(draft, dict) or not isinstance(draft.get("id"), str):
                raise Rejected(f"content[{i}].draft_task must include id")
            if len(content) != 1:
                raise Rejected("a draft_task must be the only element in content")
            media.append("draft_task")
        elif kind in SEEDANCE2_ROLES:
            ref = item.get(kind)
            if not isinstance(ref, dict) or not isinstance(ref.get("url"), str):
                raise Rejected(f"content[{i}].{kind} must include url")
            if not (_is_public_url(ref["url"]) or ref["url"].startswith("asset://")):
                raise Rejected(f"content[{i}].{kind}.url must be a public URL or asset://")
            role = item.get("role")
            if role is not None and role not in SEEDANCE2_ROLES[kind]:
                raise Rejected(f"content[{i}].role {role!r} does not fit type {kind}")
            media.append(str(role or kind))
        else:
            raise Rejected(f"content[{i}].type must be text, image_url, video_url, audio_url "
                           f"or draft_task, got {kind!r}")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        raise Rejected("metadata must be an object")
    _only(model, metadata, SEEDANCE2_METADATA)
    if "duration" in metadata:
        duration = _whole("metadata.duration", metadata["duration"])
        if duration != -1 and not 4 <= duration <= 15:
            raise Rejected(f"metadata.duration must be in [4, 15] or -1, got {duration}")
    if "resolution" in metadata:
        _choice("metadata.resolution", metadata["resolution"], ("480p", "720p", "1080p"))
    if "ratio" in metadata:
        _choice("metadata.ratio", metadata["ratio"], ("16:9", "9:16", "1:1", "4:3", "adaptive"))
    for name in SEEDANCE2_FLAGS:
        if name in metadata and not isinstance(metadata[name], bool):
            raise Rejected(f"metadata.{name} must be true or false")
    if "reference_audio" in media and metadata.get("generate_audio") is not True:
        raise Rejected("reference_audio requires metadata.generate_audio=true")
    params = {"content": media, **{k: metadata[k] for k in sorted(metadata)}}
    return Submission(model, " ".join(texts) or "(draft task)", params)
