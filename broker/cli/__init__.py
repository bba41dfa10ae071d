"""The ``debugbroker`` command: ``serve``, ``demo`` and ``run``."""
