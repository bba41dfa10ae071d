"""The masking of console text for view-only readers, as plain function calls."""

from __future__ import annotations

import pytest

from debugbroker.broker.render.masking import MASK, mask_for_viewer, mask_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter2 user=bob", f"password={MASK} user=bob"),
        ("{'api_key': 'abc', 'name': 'x'}", f"{{'api_key': '{MASK}', 'name': 'x'}}"),
        ('{"token": "abc"}', f'{{"token": "{MASK}"}}'),
        ("{b'secret': b'zz'}", f"{{b'secret': b'{MASK}'}}"),
        ("DATABASE_URL=postgres://u:pw@db/x", f"DATABASE_URL=postgres://u:{MASK}@db/x"),
        ("total = 6; name: ada", "total = 6; name: ada"),
        ("https://example.com/a?b=c", "https://example.com/a?b=c"),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_mask_for_viewer_masks_every_string_and_keeps_the_shape() -> None:
    entry = {"id": 3, "code": "x", "result": {"chunks": ({"text": "secret=1234"},), "ok": True}}
    assert mask_for_viewer(entry) == {
        "id": 3,
        "code": "x",
        "result": {"chunks": [{"text": f"secret={MASK}"}], "ok": True},
    }
