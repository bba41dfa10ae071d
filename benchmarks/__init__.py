"""Benchmarks against Werkzeug's ``DebuggedApplication``, measured in the same run.

``python -m benchmarks`` runs them all and prints a table with ratios; ``--quick`` only checks
that each one runs end to end (CI), ``--only NAME`` picks some. See BENCHMARKS.md.
"""
