"""``python -m debugbroker``: the same as the ``debugbroker`` command."""

from __future__ import annotations

import sys

from debugbroker._cli import main

sys.exit(main())
