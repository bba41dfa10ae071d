"""Apps the benchmarks run in real servers (gunicorn, Werkzeug) and worker processes."""
