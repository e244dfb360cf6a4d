"""The three error body shapes the provider uses, and which answer each fault gets."""

from __future__ import annotations

from aiohttp import web

# What a CDN or a captive portal serves with 200 instead of the file.
HTML_ERROR_PAGE = ("<!DOCTYPE html>\n<html><head><title>Service temporarily unavailable</title>"
                   "</head><body><h1>Please try again later</h1></body></html>\n")


def openai_error(status: int, message: str, *, code: str = "", type_: str = "new_api_error",
                 headers: dict[str, str] | None = None) -> web.Response:
    """`{"error": {...}}`: what the gateway itself answers (auth, routing, overload)."""
    body = {"error": {"message": message, "type": type_, "param": "", "code": code}}
    return web.json_response(body, status=status, headers=headers)


def task_error(status: int, code: str, message: str) -> web.Response:
    """`{"code", "message", "data": null}`: what the task routes answer."""
    return web.json_response({"code": code, "message": message, "data": None}, status=status)


def platform_error(status: int, message: str) -> web.Response:
    """`{"success": false, "message"}`: what the platform (/api) routes answer."""
    return web.json_response({"success": False, "message": message}, status=status)


def signed_link_error(status: int, code: str, message: str) -> web.Response:
    """What an object-storage host answers for a bad or expired signed link."""
    body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>" \
           f"<Message>{message}</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


def refusal(expired: bool) -> str:
    # The key a client sent is never echoed: a log of this answer must not leak it.
    return "该令牌已过期 (the key has expired)" if expired else "无效的令牌 (invalid or missing API key)"


def unauthorized(expired: bool = False) -> web.Response:
    return openai_error(401, refusal(expired), code="token_expired" if expired else "invalid_api_key")


def injected_fault(kind: str, retry_after: float) -> web.Response:
    """The answer for an injected 429/5xx outcome (see `faults.ROUTE_FAULTS`)."""
    if kind == "429":
        return openai_error(429, "当前负载已饱和,请稍后再试 (upstream overloaded, retry later)",
                            code="rate_limit_exceeded", headers={"Retry-After": f"{retry_after:g}"})
    if kind == "429_bare":
        return openai_error(429, "请求过于频繁 (too many requests)", code="rate_limit_exceeded")
    if kind == "502":
        return openai_error(502, "上游服务错误 (bad gateway)", code="bad_gateway",
                            type_="upstream_error")
    if kind == "503":
        return openai_error(503, "服务暂时不可用 (service unavailable)", code="service_unavailable")
    return openai_error(500, "内部错误 (internal server error)", code="internal_error")
