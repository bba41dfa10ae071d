"""Masking by value: URL passwords and secret-named parameters inside any text; the names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from debugbroker.agent.options import Options
from debugbroker.agent.reprs.secret_names import looks_secret, secret_pattern
from debugbroker.agent.reprs.secret_values import VALUE_MASK, mask_bytes, mask_text

SECRET = secret_pattern()
M = VALUE_MASK


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgres://user:PASSWORD@db:5432/app", f"postgres://user:{M}@db:5432/app"),
        (
            "DATABASE_URL=postgres://user:PASSWORD@db/app",
            f"DATABASE_URL=postgres://user:{M}@db/app",
        ),
        ("redis://:hunter2@cache:6379/0", f"redis://:{M}@cache:6379/0"),
        (
            "<Request 'http://h/a?api_token=T0K&page=2' [GET]>",
            f"<Request 'http://h/a?api_token={M}&page=2' [GET]>",
        ),
        ("invalid token=abc123 for user 7", f"invalid token={M} for user 7"),
        ("User(name='bob', password='hunter2')", f"User(name='bob', password='{M}')"),
        ('{"password": "hunter2", "user": "bob"}', f'{{"password": "{M}", "user": "bob"}}'),
        ("{'api_key': 'K3Y', 'n': 1}", f"{{'api_key': '{M}', 'n': 1}}"),
        (
            "a=1&api-key=K&key=K&pass=P&pin=1234&card=4111&session=S",
            f"a=1&api-key={M}&key={M}&pass={M}&pin={M}&card={M}&session={M}",
        ),
        ("user[password]=x&next=/", f"user[password]={M}&next=/"),
    ],
)
def test_secrets_inside_text_are_masked(text: str, masked: str) -> None:
    assert mask_text(text, SECRET) == masked


@pytest.mark.parametrize(
    "text",
    [
        "keys=3&monkey=1&passenger=2&spinner=4&cardinality=5&cache_key=6",
        "http://host:8080/path?email=someone@example.com",
        "ssh://git@github.com/owner/repo",  # a user name alone is no password
        "a == b and token",
        "token=",  # nothing to hide
        "plain text without any of the markers",
    ],
)
def test_innocent_text_comes_back_as_the_same_object(text: str) -> None:
    assert mask_text(text, SECRET) is text


def test_bytes_are_masked_byte_for_byte() -> None:
    body = b"user=bob&password=hunter2&note=\xff"
    assert mask_bytes(body, SECRET) == b"user=bob&password=" + M.encode() + b"&note=\xff"
    innocent = b"user=bob"
    assert mask_bytes(innocent, SECRET) is innocent


def test_configured_names_decide_which_parameters_are_masked() -> None:
    only_ssn = secret_pattern(Options(secret_names=("ssn",)))
    assert mask_text("ssn=123&token=T", only_ssn) == f"ssn={M}&token=T"
    # URL passwords do not depend on names.
    assert mask_text("ftp://u:p@h", only_ssn) == f"ftp://u:{M}@h"


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "db_passwd",
        "API_KEY",
        "apiKey",
        "api-key",
        "X-Api-Key",
        "HTTP_X_API_KEY",
        "key",
        "KEY",
        "pass",
        "db_pass",
        "smtpPass",
        "pin",
        "card_pin",
        "PIN",
        "card",
        "cardNumber",
        "credit_card",
        "session",
        "sessionid",
        "Authorization",
        "oauth_state",
        "csrftoken",
        "private_key",
        "accessKey",
        "client_secret",
        "Cookie",
    ],
)
def test_secret_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    [
        "keys",
        "monkey",
        "keyboard",
        "cache_key",
        "sort_key",
        "key_func",
        "passenger",
        "passenger_count",
        "bypass",
        "compass",
        "spinner",
        "pinned",
        "cardinality",
        "discard",
        "author",
        "order_id",
        "customer",
    ],
)
def test_innocent_names(name: str) -> None:
    assert not looks_secret(name)


# --- the masking's cost: each character read a bounded number of times ------------------

# The rule as it was written first, whole patterns searched again from each innocent value
# (quadratic): the reference the two-part search must agree with.
_OLD_PARAMETER = re.compile(
    r"""(?<![\w.\-\[\]])([A-Za-z_][\w.\-\[\]]{0,100})=("[^"\n]*"?|'[^'\n]*'?|[^\s&;,'"<>()\[\]{}]*)"""
)
_OLD_QUOTED_KEY = re.compile(
    r"""(["'])([A-Za-z_][\w.\- ]{0,100})\1([ \t]*:[ \t]*)"""
    r"""("(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[^\s,;}\])]*)"""
)


def _old_values(pattern: re.Pattern[str], text: str, name: int, value: int) -> str:
    parts: list[str] = []
    start = position = 0
    while (match := pattern.search(text, position)) is not None:
        found = match.group(value)
        if found and SECRET.search(match.group(name)):
            quote = found[0] if found[0] in "'\"" else ""
            parts += (text[start : match.start(value)], quote, M, quote)
            start = position = match.end()
        else:
            position = max(match.start(value), match.start() + 1)
    return "".join([*parts, text[start:]]) if parts else text


def _old_mask(text: str) -> str:
    masked = text
    if "=" in masked:
        masked = _old_values(_OLD_PARAMETER, masked, 1, 2)
    if ":" not in masked:
        return masked
    if "@" in masked and "://" in masked:
        masked = re.sub(
            r"([A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s/?#@:]*):[^\s/?#@]+@", rf"\1:{M}@", masked
        )
    if ("'" in masked or '"' in masked) and any(
        mark in masked for mark in ('":', "':", '" :', "' :")
    ):
        masked = _old_values(_OLD_QUOTED_KEY, masked, 2, 4)
    return masked


_PIECES = st.sampled_from(
    ["token", "password", "a", "x.y", "[k]", "=", "'", '"', ":", " ", "&", ",", "\\", "\n",
     "T0K", "{", "}", "://", "@", "é"]
)  # fmt: skip


@given(st.lists(_PIECES, max_size=25).map("".join))
def test_the_two_part_search_masks_as_the_whole_patterns_did(text: str) -> None:
    assert mask_text(text, SECRET) == _old_mask(text)


@pytest.mark.parametrize(
    "text",
    [
        "a=" * 32_768,  # 9 s with the whole pattern, each innocent value read to the end
        "'a':x" * 13_000,  # 3.8 s
        "token=T&" + "a=" * 30_000,
        "x " * 30_000 + "password='hunter2'",
    ],
    ids=["a=a=", "quoted-keys", "secret-first", "secret-last"],
)
def test_long_hostile_text_is_masked_in_one_pass(text: str) -> None:
    masked = mask_text(text, SECRET)
    assert "T&" not in masked and "hunter2" not in masked
    assert masked.count(M) == text.count("token=") + text.count("password=")
