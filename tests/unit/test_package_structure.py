"""The package's shape: subpackages without import circles, small modules, ARCHITECTURE.md
true to the tree, and the conda environments naming what pyproject.toml names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "almomd"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The almomd modules ``path`` imports, anywhere in it (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("almomd"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("almomd")}
    return {name for name in found if name in known}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph``, or None."""
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt, stack)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_the_cycle_finder_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_itself_in_a_circle():
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    assert cycle(graph) is None


def test_no_subpackage_imports_itself_in_a_circle():
    known = modules()

    def package(name):
        return ".".join(name.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        graph.setdefault(package(name), set()).update(
            package(other) for other in imports(path, known) if package(other) != package(name)
        )
    assert cycle(graph) is None


def test_no_module_is_longer_than_400_lines():
    long = {
        str(path.relative_to(REPO)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long


def test_architecture_md_names_every_subpackage_and_module():
    text = (REPO / "ARCHITECTURE.md").read_text()
    for name in modules():
        short = name.removeprefix("almomd.")
        if name == "almomd" or short.endswith("__init__"):
            continue
        assert f"`{short}`" in text or f"`{short.split('.')[-1]}`" in text, name
    # and names nothing that is not there
    for mentioned in re.findall(r"`almomd\.([a-z_.]+)`", text):
        assert f"almomd.{mentioned}" in modules(), mentioned


def requirement_names(entries) -> set[str]:
    names = set()
    for entry in entries:
        if isinstance(entry, str) and not entry.startswith("-"):
            names.add(re.split(r"[<>=!~ \[]", entry, maxsplit=1)[0].lower())
    return names


def test_the_conda_environments_name_what_pyproject_names():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = requirement_names(project["dependencies"])
    conda_names = {"torch": "pytorch", "tblite": "tblite-python", "freud-analysis": "freud"}
    wanted = {conda_names.get(name, name) for name in wanted}
    for path in (REPO / "environment.yml", REPO / "workflow" / "envs" / "almomd.yaml"):
        spec = yaml.safe_load(path.read_text())
        assert spec["channels"] == ["conda-forge"], path
        conda = requirement_names(d for d in spec["dependencies"] if isinstance(d, str))
        pip = requirement_names(next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict)))
        assert wanted <= conda | pip, (path, wanted - conda - pip)
    top = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in top["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip  # almomd itself, from the clone
    slurm = requirement_names(project["optional-dependencies"]["slurm"])
    assert slurm <= requirement_names(pip)


def test_every_test_module_has_a_name_of_its_own():
    """pytest imports tests/unit and tests/integration as one namespace (no packages):
    two modules of one name stop the whole run at collection."""
    names = [path.name for path in (REPO / "tests").glob("*/test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
