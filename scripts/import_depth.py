"""The longest chain of module-level imports inside the debugbroker package.

Prints the chain's length and its modules: a measure of how deep the layering goes, kept
as a habit (docs/architecture.md). Usage: python scripts/import_depth.py [ROOT]
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

__all__ = ["import_graph", "longest_chain"]

PACKAGES = {
    "agent": "debugbroker.agent",
    "broker": "debugbroker.broker",
    "protocol": "debugbroker.protocol",
    "debugbroker": "debugbroker",
}


def _modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        base = root / folder
        if not base.is_dir() or (base.is_symlink()):
            continue
        for path in base.rglob("*.py"):
            if any(
                part.is_symlink()
                for part in [path, *path.parents]
                if part != root and root in part.parents
            ):
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level (not in functions)."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If):  # TYPE_CHECKING blocks do not run
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name if is_package else name.rsplit(".", 1)[0]
                    for _ in range(node.level - 1):
                        package = package.rsplit(".", 1)[0]
                    base = f"{package}.{base}" if base else package
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        edges = set()
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
            # importing a.b.c runs a/__init__ and a/b/__init__ too
            parent = target.rpartition(".")[0]
            while parent:
                if parent in modules and parent != name and not name.startswith(parent + "."):
                    edges.add(parent)
                parent = parent.rpartition(".")[0]
        graph[name] = edges
    return graph


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest simple path through the graph (cycles are cut where they close)."""

    @cache
    def from_module(name: str, seen: frozenset[str]) -> tuple[str, ...]:
        best: tuple[str, ...] = ()
        for target in graph.get(name, ()):
            if target in seen:
                continue
            chain = from_module(target, seen | {target})
            if len(chain) > len(best):
                best = chain
        return (name, *best)

    return list(max((from_module(name, frozenset({name})) for name in graph), key=len))


if __name__ == "__main__":
    chain = longest_chain(import_graph(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
    print(f"longest import chain: {len(chain)} modules")
    print("  " + "\n  -> ".join(chain))
