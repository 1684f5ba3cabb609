"""Text from outside (keys, ids, values, error messages) made safe to show to people.

Anything a producer, the broker, the registry or the database hands us can hold Rich
markup (``[bold]``, ``[/]``) or terminal control sequences (ESC, other C0 and C1
controls). Printed as it is, the first is read as markup (or crashes Rich on ``[/]``)
and the second moves the cursor, recolours or clears a terminal. :func:`printable`
replaces every control character (C0, DEL, C1), bidirectional override and lone
surrogate (which cannot even be written as UTF-8) with a visible escape such as
``\\x1b``; :func:`cell` also makes it a Rich ``Text``, which is never read as markup.
:func:`json_safe` does the same for JSON text with JSON's own ``\\uXXXX`` escapes, so
the JSON still parses to the same values.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls, DEL, C1 controls, bidi embeddings/overrides/isolates, lone surrogates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# in JSON text C0 controls inside strings are escaped already (and newlines outside
# strings are layout)
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every unsafe character replaced by a visible escape (``\\x1b``)."""
    return _UNSAFE.sub(_escaped, text)


def cell(value: object) -> Text:
    """A table cell (or a line) showing ``value`` literally: no markup, no controls."""
    return Text(printable(str(value)))


def json_safe(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with C1 controls, DEL, bidi controls and lone
    surrogates written as ``\\uXXXX``: the same JSON values, safe on a terminal."""
    return _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
