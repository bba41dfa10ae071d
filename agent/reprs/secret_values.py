"""Secrets inside text: URL credentials and secret-named parameters, masked in any string.

Names tell most secrets apart (``secret_names``), but some arrive inside a value: a URL with
``scheme://user:password@host``, a query string or message with ``api_token=...``, a JSON body
or a repr with ``"password": "..."``. ``mask_text`` replaces those values by ``VALUE_MASK``:

- URL credentials: the password of ``scheme://user:password@`` (RFC 3986 userinfo: a password
  holding an unencoded ``/ ? # @`` or whitespace ends the match early and is not found);
- ``name=value`` where ``name`` looks secret: the value up to the next ``& ; , whitespace``
  or closing bracket, or a quoted value whole (query strings, form bodies, ``key=value``
  messages, ``repr`` of dataclasses and requests);
- ``"name": value`` and ``'name': value`` where ``name`` looks secret (JSON, dict reprs).

A cheap precheck (``=``, ``://``, ``":``/``':`` in the text) skips the regular expressions for
the strings that cannot hold any of these, which are nearly all. Text that needs no masking
comes back as the very same object.
"""

from __future__ import annotations

import re

from debugbroker.agent.reprs.secret_names import SecretNames

__all__ = ["MASK_MARGIN", "VALUE_MASK", "mask_bytes", "mask_text", "mask_traceback"]

VALUE_MASK = "<masked>"
# Characters scanned around a cut: text is masked with this much around the part shown, so a
# secret that straddles the cut is still seen whole.
MASK_MARGIN = 1024

_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s/?#@:]*):[^\s/?#@]+@")
# Each pattern in two parts, the name up to its value and the value: the value is matched
# only after a secret name. (Matched whole, every innocent name's value was read to its end
# and then read again from its start for the parameters inside it: quadratic, 9 s for
# 64 KB of ``a=a=a=...``.)
_PARAMETER = re.compile(r"""(?<![\w.\-\[\]])([A-Za-z_][\w.\-\[\]]{0,100})=""")
_PARAMETER_VALUE = re.compile(r"""("[^"\n]*"?|'[^'\n]*'?|[^\s&;,'"<>()\[\]{}]*)""")
_QUOTED_KEY = re.compile(r"""(["'])([A-Za-z_][\w.\- ]{0,100})\1([ \t]*:[ \t]*)""")
_QUOTED_VALUE = re.compile(r"""("(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[^\s,;}\])]*)""")


def _masked_values(
    pattern: re.Pattern[str], values: re.Pattern[str], text: str, secret: SecretNames, name: int
) -> str:
    """``text`` with the value after every match of ``pattern`` whose ``name`` group looks
    secret replaced (``values`` matches the value there). An innocent name's value is searched
    like the rest of the text, so a quoted value does not hide a parameter inside it
    (``note='x token=T'``); each character is read a bounded number of times."""
    parts: list[str] = []
    start = position = 0
    while True:
        match = pattern.search(text, position)
        if match is None:
            break
        position = match.end()  # the value's start
        if not secret.search(match.group(name)):
            continue
        found = values.match(text, position)
        if found is None or found.end() == position:  # an empty value: nothing to mask
            continue
        value = found.group()
        quote = value[0] if value[0] in "'\"" else ""
        parts += (text[start:position], quote, VALUE_MASK, quote)
        start = position = found.end()
    if not parts:
        return text
    parts.append(text[start:])
    return "".join(parts)


def mask_text(text: str, secret: SecretNames) -> str:
    """``text`` with URL passwords and secret-named parameter values replaced by
    ``VALUE_MASK``; the same object when nothing is masked. Never raises for a ``str``."""
    # One-character checks first: CPython scans for those with memchr, much faster than
    # for the longer markers, and most text has none of them.
    masked = text
    if "=" in masked:
        masked = _masked_values(_PARAMETER, _PARAMETER_VALUE, masked, secret, 1)
    if ":" not in masked:
        return text if masked == text else masked
    if "@" in masked and "://" in masked:
        masked = _URL_CREDENTIALS.sub(rf"\1:{VALUE_MASK}@", masked)
    if ("'" in masked or '"' in masked) and (
        '":' in masked or "':" in masked or '" :' in masked or "' :" in masked
    ):
        masked = _masked_values(_QUOTED_KEY, _QUOTED_VALUE, masked, secret, 2)
    return text if masked == text else masked


def mask_bytes(data: bytes, secret: SecretNames) -> bytes:
    """``mask_text`` over bytes read as Latin-1 (every byte one character, so nothing else
    changes); the same object when nothing is masked."""
    if b"=" not in data and b"@" not in data and b":" not in data:
        return data
    text = data.decode("latin-1")
    masked = mask_text(text, secret)
    return data if masked is text else masked.encode("latin-1")


def mask_traceback(entries: list[str], secret: SecretNames) -> str:
    """``traceback.format_exception``'s entries joined, each masked by ``mask_text`` but the
    frames' (``  File "...", line N`` and its source lines): the source is shown as it is."""
    return "".join(
        entry if entry.lstrip(" |").startswith('File "') else mask_text(entry, secret)
        for entry in entries
    )
