"""The pipeline as a campaign sees it: stages, what each needs, and a key per stage's inputs.

A stage's key is a digest of everything that decides its outputs, computed from the committed
workspace without running anything: its command, the content of each dependency that is not
another stage's output, the key of the stage that produces each one that is, and the values of
its params. The key names a stage's job, its ledger entry and its shared resume folder, so a
relaunch at a later commit that leaves a stage's inputs alone finds that stage's work again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from naseval.core.errors import NasevalError
from naseval.core.params import read_params, section


@dataclass(frozen=True)
class Stage:
    name: str  # DVC's address, e.g. search@random_ws-0
    needs: tuple[str, ...]  # the stages whose outputs it reads
    key: str


@dataclass(frozen=True)
class Pipeline:
    stages: dict[str, Stage]
    stale: frozenset[str]  # what `dvc status` reports as changed in the workspace

    def closure(self, targets: list[str]) -> list[str]:
        """`targets` and every stage they need, in an order where needs come first; all stages
        when no target is given."""
        unknown = [t for t in targets if t not in self.stages]
        if unknown:
            raise NasevalError(f"unknown stage {unknown[0]!r} (stages: {', '.join(self.stages)})")
        order: list[str] = []

        def visit(name: str) -> None:
            if name not in order:
                for need in self.stages[name].needs:
                    visit(need)
                order.append(name)

        for name in targets or list(self.stages):
            visit(name)
        return order


def read_pipeline(workspace: Path) -> Pipeline:
    """The workspace's stages with their keys and which of them are stale."""
    from dvc.repo import Repo  # imported here: `naseval status` and the tests of planning need no DVC

    with Repo(str(workspace)) as repo:
        graph, stages = repo.index.graph, list(repo.index.stages)
        params = read_params(workspace / "params.yaml")
        producers = {PurePosixPath(out.def_path): stage.name for stage in stages for out in stage.outs}
        keys: dict[str, str] = {}
        result: dict[str, Stage] = {}
        for stage in _dependencies_first(stages, graph):
            inputs: list[Any] = [stage.cmd]
            needs: list[str] = []
            for dep in stage.deps:
                if hasattr(dep, "params"):
                    inputs.append({name: section(params, name) for name in sorted(dep.params)})
                    continue
                path = PurePosixPath(dep.def_path)
                made_by = _producers(path, producers)
                needs += made_by
                inputs.append([str(path), [keys[name] for name in made_by] or content_digest(workspace / path)])
            keys[stage.name] = digest(inputs)
            result[stage.name] = Stage(stage.name, tuple(dict.fromkeys(needs)), keys[stage.name])
        names = {stage.addressing: stage.name for stage in stages}  # addresses are relative to the cwd
        stale = frozenset(names[address] for address in repo.status())
    return Pipeline(result, stale)


def _dependencies_first(stages: list, graph) -> list:
    import networkx as nx

    order = list(reversed(list(nx.topological_sort(graph))))  # DVC's edges point at dependencies
    return [stage for stage in order if stage in stages]


def _producers(path: PurePosixPath, producers: dict[PurePosixPath, str]) -> list[str]:
    """The stages whose outputs hold `path` (a file in an output folder) or lie in it (a folder
    of outputs, such as the analysis' runs/policies)."""
    return [stage for out, stage in sorted(producers.items())
            if path == out or out in path.parents or path in out.parents]


def content_digest(path: Path) -> str:
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        content = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            content.update(file.relative_to(path).as_posix().encode() + b"\0" + file.read_bytes())
        return content.hexdigest()
    raise NasevalError(f"dependency {path} is missing and no stage produces it")


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
