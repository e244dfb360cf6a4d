"""Removing the API key from text that comes from outside, before anything keeps it.

A provider may echo the key back: in an error message, a status word, a URL's query. It can
arrive as written, percent-encoded (in a URL), or JSON-escaped (`\\u0073k-...`, which only
becomes the key once parsed), so all three forms are removed: what is stored in the lockfile,
printed, or emitted as `--json` never holds it.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"


class Scrubber:
    """Scrubs one secret from text and from parsed JSON values."""

    def __init__(self, secret: str) -> None:
        self._pattern: re.Pattern[str] | None = None
        if secret:
            forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
            # Percent-encoding may use either case of hex digits; the key itself may not.
            alternatives = [re.escape(secret)] + [
                _any_case_escapes(form) for form in sorted(forms - {secret})]
            self._pattern = re.compile("|".join(alternatives))

    def text(self, value: str) -> str:
        return self._pattern.sub(MASK, value) if self._pattern else value

    def body(self, value: str) -> str:
        """A body as text with the key gone, including where JSON escapes hid it."""
        cleaned = self.text(value)
        if self._pattern is None or "\\u" not in cleaned:
            return cleaned
        try:
            data = json.loads(cleaned)
            scrubbed = self.value(data)
        except (ValueError, RecursionError):
            # Not JSON we can read: escapes stay escapes, and nothing parses them later.
            return cleaned
        if scrubbed == data:
            return cleaned
        return json.dumps(scrubbed, ensure_ascii=False)

    def value(self, data: Any) -> Any:
        """`data` (parsed JSON) with every string, keys included, scrubbed."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, list):
            return [self.value(item) for item in data]
        if isinstance(data, dict):
            return {self.text(str(k)): self.value(v) for k, v in data.items()}
        return data


def _any_case_escapes(form: str) -> str:
    return re.sub(r"%([0-9A-F]{2})",
                  lambda m: "%" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c
                                          for c in m.group(1)),
                  re.escape(form).replace("\\%", "%"))
