"""The project's one exception type; imports neither torch nor FiftyOne.

Every module raises :class:`VoGError` for a problem with the user's input, with a message
that names the problem and the fix; the CLI prints it as one line and exits 2.
"""

from __future__ import annotations

from collections.abc import Sequence


class VoGError(ValueError):
    """A problem with the user's input; the message says what to do."""


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a helpful error."""
    if value not in choices:
        raise VoGError(f"{name}={value!r} is not supported; choose one of {', '.join(map(repr, choices))}")
    return value


def check_path_text(name: str, path) -> str:
    """``path`` as text, or :class:`VoGError` when it holds a NUL byte (no path can; the OS calls
    would raise a bare ``ValueError``)."""
    text = str(path)
    if "\0" in text:
        raise VoGError(f"{name} {text!r} contains a NUL byte (\\0), which no path may hold; type the path without it")
    return text
