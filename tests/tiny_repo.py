"""The tiny profile in a temporary git repository: what the integration tests run the real dvc on."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT

from naseval.core.profile import merged_params

# lr 5: at lr 20 this hidden size of 8 sends random_ws seed 0's supernet to a validation perplexity of
# 5e18 (200 words), which is a diverged run and not what these tests are about.
TINY_TRAIN = {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "bptt": 10, "lr": 5.0}
TINY = {
    "seeds": [0, 1],
    "data": {"vocab_size": 200, "max_train_tokens": 4000, "max_eval_tokens": 1000},
    "space": {"nodes": 1},
    "model": {"hidden_size": 8},
    "train": TINY_TRAIN,
    "search": {"supernet": {"model": {"hidden_size": 8}, "train": TINY_TRAIN},
               # the 1-node space has 4 cells (3 landmarks: 3 pairs) and the recipe 1 epoch
               "evaluators": {"landmark": {"landmarks": 3, "warmup_epochs": 0}, "short_training": {"epochs": 1}},
               "random_ws": {"ranking_every": 1}, "enas": {"ranking_every": 1}, "darts": {"ranking_every": 1},
               "nao": {"rounds": 2, "ranking_every": 1, "epd": {"epochs": 20}, "supernet": {"train": {"epochs": 1}}}},
    "ground_truth": {"seeds": [0, 1], "workers": 1},
    "oracle": {"seeds": [3, 4]},  # the default's 4 oracle seeds cost the tests time and show nothing more
}


def environment(extra: dict | None = None) -> dict:
    """This process's environment with this environment's python and dvc first on PATH."""
    env = {**os.environ, **(extra or {}), "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def run(repo: Path, *command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=repo, env=environment(env), capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def tiny_repo(path: Path, override: dict | None = None) -> Path:
    """A committed git and DVC repository at `path` with the code, dvc.yaml and the tiny profile
    (merged with `override`)."""
    path.mkdir(parents=True, exist_ok=True)
    for folder in ("naseval", "stages"):
        shutil.copytree(ROOT / folder, path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", path)
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = merged_params(merged_params(default, TINY, ""), override or {}, "")
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(path, "git", "init", "-q")
    run(path, "git", "config", "user.email", "ci@example.com")
    run(path, "git", "config", "user.name", "naseval tests")
    run(path, "dvc", "init", "-q")
    for ignores in (".gitignore", ".dvcignore"):
        shutil.copy(ROOT / ignores, path)
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-qm", "tiny profile")
    return path
