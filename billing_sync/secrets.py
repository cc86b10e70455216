"""One masking function for every message that can carry a URL, a DSN or a token.

:func:`mask_secrets` hides, wherever they sit in a longer text (an exception message, a
log line, a pydantic error, a dict's repr):

- the password of a URL's userinfo, ``scheme://user:SECRET@host``, also with an
  unencoded ``@``, ``:`` or ``/`` in the password and in malformed URLs that drivers echo
  back (``postgres:/u:SECRET@h/db``, ``postgres:u:SECRET@h``), and a userinfo-less
  ``scheme://u:SECRET/db`` whose "port" is not a number;
- every parameter whose name says secret (``password``, ``sslpassword``, ``passfile``,
  ``pwd``, ``secret``, ``token``, ``access_token``, ``api_key``, ``sig``, ``signature``,
  ``credential``, ``auth``...), in URL query strings (``?password=...&``), keyword DSNs
  (``password=... `` or quoted ``password='a b\\'c'``), ODBC strings (``PWD=...;``), YAML
  or dict reprs (``'password': '...'``) and HTTP headers (``Authorization: Bearer ...``).

It masks generously (a value is hidden up to where it certainly ends) because a secret
shown once cannot be taken back; idempotent: masking a masked text changes nothing.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# Where a URL's userinfo password starts: ``scheme:`` then up to three slashes, the user,
# ``:``. No nested quantifier: each character is looked at a bounded number of times.
_USERINFO = re.compile(r"\b[A-Za-z][\w+.\-]*:/{0,3}[^\s:/?#@'\"<>\[\]{}]*:")
_SENSITIVE_NAME = re.compile(
    r"pass|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|signature|credential"
    r"|^sig$|^auth$|^authorization$|^x-api-key$",
    re.IGNORECASE,
)
# A parameter: a name after a boundary, an optional closing quote, then ``=`` or ``:``.
_PARAMETER = re.compile(r"(?:^|(?<=[\s?&;,({\[\"']))([\w.\-]+)([\"']?)([ \t]*[=:][ \t]*)")
_WHITESPACE = re.compile(r"\s")
_SCHEMES = ("bearer", "basic", "token", "digest")


def _userinfo_end(text: str, start: int) -> int | None:
    """Where the password that starts at ``start`` ends (exclusive), or None."""
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    space = _WHITESPACE.search(text, start, line_end)
    word_end = space.start() if space else line_end
    at = text.rfind("@", start, word_end)
    if at < 0:
        # A password with a space or a quote in it: the '@' comes later on the line.
        at = text.find("@", word_end, line_end)
    if at >= 0:
        return at
    # No host after all: what follows ``user:`` is a port if it is a number.
    stop = start
    while stop < word_end and text[stop] not in "/?#'\"":
        stop += 1
    value = text[start:stop]
    return None if not value or value.isdigit() or value == MASK else stop


def _mask_userinfo(text: str) -> str:
    pieces: list[str] = []
    done = 0
    position = 0
    while True:
        match = _USERINFO.search(text, position)
        if match is None:
            break
        end = _userinfo_end(text, match.end())
        if end is None or end == match.end():
            position = match.end()
            continue
        pieces.append(text[done : match.end()] + MASK)
        done = position = end
    pieces.append(text[done:])
    return "".join(pieces)


def _value_end(text: str, start: int, lead: str) -> int:
    """Where the parameter value starting at ``start`` ends (exclusive)."""
    if start < len(text) and text[start] in "'\"":
        quote = text[start]
        index = start + 1
        while index < len(text):
            if text[index] == "\\":
                index += 2
                continue
            if text[index] == quote:
                return index + 1
            if text[index] == "\n":
                return index
            index += 1
        return len(text)
    # In a query string ``&`` and ``#`` end the value, in an ODBC string ``;``; in a
    # keyword DSN only whitespace does (libpq takes anything else as part of the value).
    stops = " \t\r\n"
    if lead in "?&":
        stops += "&#'\"<>"
    elif lead == ";":
        stops += ";"
    elif lead in "({[,\"'":
        stops += ",)}]'\""
    index = start
    while index < len(text) and text[index] not in stops:
        index += 1
    return index


def _mask_parameters(text: str) -> str:
    pieces: list[str] = []
    done = 0
    position = 0
    while True:
        match = _PARAMETER.search(text, position)
        if match is None:
            break
        name = match.group(1)
        value_start = match.end()
        if not _SENSITIVE_NAME.search(name) or value_start >= len(text):
            position = match.end()
            continue
        lead = text[match.start() - 1] if match.start() > 0 else " "
        if text.startswith(MASK, value_start):
            position = value_start + len(MASK)
            continue
        end = _value_end(text, value_start, lead)
        word = text[value_start:end].strip("'\"")
        if word.lower() in _SCHEMES:  # ``Authorization: Bearer <token>``
            gap = end
            while gap < len(text) and text[gap] in " \t":
                gap += 1
            end = gap
            while end < len(text) and text[end] not in " \t\r\n":
                end += 1
        if end == value_start:
            position = match.end()
            continue
        pieces.append(text[done:value_start] + MASK)
        done = position = end
    pieces.append(text[done:])
    return "".join(pieces)


def mask_secrets(text: str) -> str:
    """``text`` with every password, token and key in URLs, DSNs and parameters masked.

    >>> mask_secrets("cannot reach postgresql://app:s3cret@db:5432/wh?sslpassword=k3y&x=1")
    'cannot reach postgresql://app:***@db:5432/wh?sslpassword=***&x=1'
    >>> mask_secrets("host=db user=app password='a b' dbname=wh")
    'host=db user=app password=*** dbname=wh'
    >>> mask_secrets('missing "=" after "postgres:/u:SECRET@h/db" in connection info string')
    'missing "=" after "postgres:/u:***@h/db" in connection info string'
    """
    return _mask_parameters(_mask_userinfo(text))


def mask_error(error: BaseException) -> str:
    """``TypeName: message`` of ``error``, masked: for messages that wrap another error."""
    return mask_secrets(f"{type(error).__name__}: {error}")


class MaskingFilter(logging.Filter):
    """Masks every log record's rendered message (and its traceback text) on a handler:
    a library logging a URL or a DSN we did not build still shows no password."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Add :class:`MaskingFilter` to every handler of ``logger`` (the root by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
