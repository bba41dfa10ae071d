"""The masking of console transcripts for view-only readers, as plain function calls."""

from __future__ import annotations

from debugbroker.agent.reprs.secret_values import VALUE_MASK
from debugbroker.broker.render.masking import mask_for_viewer


def test_mask_for_viewer_masks_every_string_and_keeps_the_shape() -> None:
    entry = {
        "id": 3,
        "code": "connect('postgres://app:pw@db/x')",
        "result": {"chunks": ({"text": "secret=1234 user=bob"},), "ok": True, "error": None},
    }
    assert mask_for_viewer(entry) == {
        "id": 3,
        "code": f"connect('postgres://app:{VALUE_MASK}@db/x')",
        "result": {
            "chunks": [{"text": f"secret={VALUE_MASK} user=bob"}],
            "ok": True,
            "error": None,
        },
    }
