"""docker-compose.yml without Docker: its shape is checked, and its commands run as processes.

The broker and app commands are taken from the compose file and run here as they would run
in their containers, with only the container-specific parts mapped: 0.0.0.0 binds become
127.0.0.1 on free ports, ``/data`` a temporary directory, ``/srv`` this checkout, and the
service name ``broker`` the broker's loopback address.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, Process, base_env, free_port, http, node_text, wait_for

COMPOSE = ROOT / "docker-compose.yml"
_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def value(match: re.Match[str]) -> str:
        name, kind, extra = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        if kind == "-":
            return extra or ""
        raise KeyError(f"{name}: {extra}" if kind == "?" else name)

    return _VARIABLE.sub(value, text)


def test_the_services_ports_environment_and_health_are_as_documented() -> None:
    services = compose()["services"]
    assert set(services) == {"broker", "app", "redis", "worker"}
    for name, service in services.items():
        if name == "redis":
            assert service["image"].startswith("redis:") and "ports" not in service
            continue
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    broker, app = services["broker"], services["app"]
    # Credentials come from the environment: compose refuses to start without them.
    assert broker["environment"]["DEBUGBROKER_TOKEN"].startswith("${DEBUGBROKER_TOKEN:?")
    assert broker["environment"]["DEBUGBROKER_SECRET"].startswith("${DEBUGBROKER_SECRET:?")
    assert app["environment"]["DEBUGBROKER_SECRET"].startswith("${DEBUGBROKER_SECRET:?")
    with pytest.raises(KeyError, match="DEBUGBROKER_TOKEN"):
        interpolate(broker["environment"]["DEBUGBROKER_TOKEN"], {})
    # The dashboard is published, the agents' port is not; the app finds the broker by name.
    command = broker["command"]
    assert command[:2] == ["debugbroker", "serve"]
    zmq_endpoint = command[command.index("--zmq") + 1]
    assert zmq_endpoint == "tcp://0.0.0.0:8781"
    http_bind = command[command.index("--http") + 1]
    assert broker["ports"] == [f"127.0.0.1:{http_bind.rsplit(':', 1)[1]}:8780"]
    assert app["environment"]["DEBUGBROKER_URL"] == "tcp://broker:8781"
    assert app["depends_on"]["broker"]["condition"] == "service_healthy"
    assert broker["healthcheck"]["test"][0] == "CMD"
    assert "/data" in command and "broker-data:/data" in broker["volumes"]
    # The Celery worker reports to the same broker, through the same Redis as the app.
    worker = services["worker"]
    assert worker["command"][0] == "celery" and "worker" in worker["command"]
    assert worker["environment"]["DEBUGBROKER_URL"] == "tcp://broker:8781"
    assert worker["environment"]["DEBUGBROKER_SECRET"].startswith("${DEBUGBROKER_SECRET:?")
    assert worker["environment"]["CELERY_BROKER_URL"] == app["environment"]["CELERY_BROKER_URL"]
    assert services["redis"]["command"][:5] == ["redis-server", "--save", "", "--appendonly", "no"]


def test_the_dockerfile_installs_the_package_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "examples" / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#") and "\nFROM python:3.11-slim\n" in dockerfile
    assert 'pip install ".[broker]"' in dockerfile
    assert "\nUSER debug\n" in dockerfile
    for source in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / source).exists(), f"the Dockerfile copies a missing {source}"
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "**/node_modules" in ignored and ".git" in ignored


def localize(command: list[str], mapping: dict[str, str]) -> list[str]:
    """A container command as it runs here: each mapped fragment replaced."""
    out = []
    for part in command:
        for container, local in mapping.items():
            part = part.replace(container, local)
        out.append(part)
    return out


def passes(command: list[str], env: dict[str, str]) -> Callable[[], bool]:
    """A check that runs ``command`` and tells whether it exited with 0."""

    def check() -> bool:
        return subprocess.run(command, env=env, capture_output=True, timeout=10).returncode == 0

    return check


def test_the_compose_commands_run_as_processes_and_an_error_reaches_the_dashboard(
    tmp_path: Path,
) -> None:
    services = compose()["services"]
    http_port, zmq_port, app_port = free_port(), free_port(), free_port()
    redis_port = free_port()
    dashboard = f"http://127.0.0.1:{http_port}"
    variables = {
        "DEBUGBROKER_TOKEN": "compose-token",
        "DEBUGBROKER_SECRET": "compose-secret",
        "DEBUGBROKER_PUBLIC_URL": dashboard,
        "DEBUGBROKER_EDITOR": "vscode",
        "DEBUGBROKER_PATH_MAP": "/srv=/home/dev/debugbroker",
    }
    mapping = {
        "0.0.0.0:8780": f"127.0.0.1:{http_port}",
        "127.0.0.1:8780": f"127.0.0.1:{http_port}",  # the healthcheck, inside the container
        "tcp://0.0.0.0:8781": f"tcp://127.0.0.1:{zmq_port}",
        "tcp://broker:8781": f"tcp://127.0.0.1:{zmq_port}",
        "0.0.0.0:8000": f"127.0.0.1:{app_port}",
        "redis://redis:6379": f"redis://127.0.0.1:{redis_port}",
        "/srv": str(ROOT),
    }
    processes: list[Process] = []
    try:
        for name in ("redis", "broker", "app", "worker"):
            service = services[name]
            command = [interpolate(str(part), variables) for part in service["command"]]
            command = localize(command, mapping)
            if name == "broker":
                command[command.index("/data")] = str(tmp_path / "data")
            environment = {
                key: localize([interpolate(str(value), variables)], mapping)[0]
                for key, value in service.get("environment", {}).items()
            }
            if name == "redis":  # the image's port, mapped to a free one here
                command += ["--port", str(redis_port), "--bind", "127.0.0.1"]
            else:
                command = [sys.executable, "-m", *command]  # debugbroker / gunicorn / celery
            process = Process(name, command, tmp_path / f"{name}.log", base_env(**environment))
            process.start()
            processes.append(process)
            if name == "broker":
                health = [str(part) for part in services["broker"]["healthcheck"]["test"][1:]]
                check = [sys.executable, *localize(health, mapping)[1:]]
                process.wait_until(
                    passes(check, base_env(**environment)), "the broker's healthcheck to pass"
                )
        app_url = f"http://127.0.0.1:{app_port}"
        processes[2].wait_until(lambda: http("GET", app_url + "/health").status == 200, "the app")

        def linked() -> Any:
            answer = http("GET", app_url + "/checkout?coupon=BOGUS", headers={"Accept": "*/*"})
            assert answer.status == 500, answer.text
            link = answer.headers.get("x-debugbroker-report", "")
            return link if link.startswith(dashboard + "/#/reports/") else None

        report_id = wait_for(linked, what="a 500 linking the dashboard").rsplit("/", 1)[1]
        auth = {"Authorization": "Bearer compose-token"}
        report = wait_for(
            lambda: (
                (a := http("GET", f"{dashboard}/api/reports/{report_id}", headers=auth)).status
                == 200
                and a.json()
            ),
            what="the report",
        )
        assert report["app"] == "example-shop"
        # Editor links map the app's paths (here /srv is this checkout) to the host's.
        editor = http("GET", f"{dashboard}/api/editor", headers=auth).json()
        assert editor == {"editor": "vscode", "path_map": [[str(ROOT), "/home/dev/debugbroker"]]}
        index = next(
            f["index"]
            for info in report["exceptions"]
            for f in info["frames"]
            if f["function"] == "order_total"
        )
        answer = http(
            "POST",
            f"{dashboard}/api/reports/{report_id}/frames/{index}/eval",
            headers=auth,
            json_body={"code": "coupon, divisor"},
        )
        assert node_text(answer.json()["result"]) == "('BOGUS', 0)"

        # The page that queues a failing task: reported by the worker child that ran it.
        worker = processes[3]
        worker.wait_until(lambda: " ready." in worker.output(), "the celery worker")
        queued = http("GET", app_url + "/ship?warehouse=east")
        assert queued.status == 200 and "Queued task" in queued.text, queued.text
        task_report = wait_for(
            lambda: next(
                (
                    http("GET", f"{dashboard}/api/reports/{r['id']}", headers=auth).json()
                    for r in http("GET", f"{dashboard}/api/reports", headers=auth).json()["reports"]
                    if r["type_name"] == "KeyError"
                ),
                None,
            ),
            what="the task's report",
        )
        (task_panel,) = task_report["panels"]
        assert dict(task_panel["items"])["name"] == "tasks.ship_order"
        index = next(
            f["index"]
            for info in task_report["exceptions"]
            for f in info["frames"]
            if f["function"] == "ship_order"
        )
        answer = http(
            "POST",
            f"{dashboard}/api/reports/{task_report['id']}/frames/{index}/eval",
            headers=auth,
            json_body={"code": "import os\nos.getpid(), os.getppid(), order_id, warehouse"},
        )
        assert node_text(answer.json()["result"]) == (
            f"({task_report['pid']}, {worker.pid}, 7, 'east')"
        )
    finally:
        for process in reversed(processes):
            process.stop()


def test_the_readme_and_docs_snippets_are_valid_compose_with_the_same_rules() -> None:
    for document in (ROOT / "README.md", ROOT / "docs" / "docker.md"):
        text = document.read_text(encoding="utf-8")
        snippet = re.search(r"```yaml\n(.*?)```", text, re.S)
        assert snippet is not None, f"{document.name} has no compose snippet"
        services = yaml.safe_load(snippet.group(1))["services"]
        broker, web = services["broker"], services["web"]
        assert broker["ports"] == ["127.0.0.1:8780:8780"], document.name
        assert "--zmq tcp://0.0.0.0:8781" in broker["command"]
        assert broker["environment"]["DEBUGBROKER_SECRET"].startswith("${DEBUGBROKER_SECRET:?")
        assert web["environment"]["DEBUGBROKER_URL"] == "tcp://broker:8781"
