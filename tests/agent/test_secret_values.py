"""Masking by value: URL passwords and secret-named parameters inside any text; the names."""

from __future__ import annotations

import pytest

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
