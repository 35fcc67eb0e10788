"""Every stage's code deps in dvc.yaml cover every module its command imports, so that no code
change can leave DVC (or a campaign's keys) reusing a stale result; and the layers' imports point
one way."""

import ast
import shlex
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("naseval", "stages")
# The layers, bottom first: a module may import its own layer and those before it, never one after.
LAYERS = ["naseval/core", "naseval/nn", "naseval/training", "naseval/search", "naseval/policies", "naseval/analysis"]


def module_file(name: str) -> Path | None:
    """The repository file of module `name`, or None outside the repository."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Imports in `if TYPE_CHECKING:` never run, so they decide no output."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imported_modules(path: Path) -> set[str]:
    """The modules a file imports anywhere (lazy imports in functions run too), with the
    submodules named by `from package import module`."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def closure(entries: list[Path]) -> set[Path]:
    """Every repository file that importing `entries` runs, packages' __init__.py included."""
    seen: set[Path] = set()
    todo = list(entries)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
                found = module_file(".".join(parts[:i]))
                if found and found not in seen:
                    todo.append(found)
    return seen


def entry_files(cmd: str) -> list[Path]:
    """What a stage's command runs: `python -m stages.<name>`, and for a search the policy module
    the registry imports by name (an import that ast cannot see)."""
    words = shlex.split(cmd)
    entries = [module_file(words[words.index("-m") + 1])]
    if "--policy" in words:
        entries.append(module_file(f"naseval.policies.{words[words.index('--policy') + 1]}"))
    assert all(entries), f"{cmd}: its modules are not in the repository"
    return entries


def uncovered(files: set[Path], deps: list[str]) -> list[str]:
    """The files that no dependency (a file, or a folder holding it) covers."""
    paths = [PurePosixPath(dep) for dep in deps]
    missing = []
    for file in sorted(files):
        relative = PurePosixPath(file.relative_to(ROOT).as_posix())
        if not any(relative == dep or dep in relative.parents for dep in paths):
            missing.append(str(relative))
    return missing


@pytest.fixture(scope="module")
def stages() -> list[tuple[str, str, list[str]]]:
    """(name, command, code deps) of every stage of the resolved pipeline (matrix stages expanded)."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return [(stage.name, stage.cmd, [dep.def_path for dep in stage.deps if not hasattr(dep, "params")])
                for stage in repo.index.stages]


def test_every_stage_depends_on_every_module_its_command_imports(stages):
    assert len(stages) >= 7
    closures: dict[tuple[Path, ...], set[Path]] = {}  # the matrix items of a stage share their command's modules
    gaps = {}
    for name, cmd, deps in stages:
        entries = tuple(entry_files(cmd))
        if entries not in closures:
            closures[entries] = closure(list(entries))
        gaps[name] = uncovered(closures[entries], deps)
    assert {name: missing for name, missing in gaps.items() if missing} == {}


def test_only_the_analysis_depends_on_the_analysis_code(stages):
    """A docstring edit in naseval/analysis/ reruns the analysis and nothing else but the params
    check, which loads the analysis' settings and whose output no stage reads."""
    depending = {name for name, _, deps in stages if any(d.startswith("naseval/analysis") for d in deps)}
    assert depending == {"analyze", "check_params"}
    needing_the_check = {name for name, _, deps in stages if "runs/params_checked.json" in deps}
    assert needing_the_check == set()


def test_a_missing_dependency_is_found():
    """The check itself: the search stage's command without the supernet's folder in its deps."""
    files = closure(entry_files("python -m stages.search --policy random_ws --seed 0"))
    assert ROOT / "naseval/search/supernet.py" in files
    assert ROOT / "naseval/policies/random_ws.py" in files
    deps = ["stages", "naseval/__init__.py", "naseval/core", "naseval/nn", "naseval/training", "naseval/policies",
            *(f"naseval/search/{path.name}" for path in (ROOT / "naseval/search").glob("*.py")
              if path.name != "supernet.py")]
    assert uncovered(files, deps) == ["naseval/search/supernet.py"]


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_layers_below(layer):
    above = LAYERS[LAYERS.index(layer) + 1:]
    wrong = {}
    for path in sorted((ROOT / layer).rglob("*.py")):
        names = {n for n in imported_modules(path) if n.startswith("naseval.")}
        bad = sorted(n for n in names if any(n.replace(".", "/").startswith(upper) for upper in above))
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
    assert wrong == {}
