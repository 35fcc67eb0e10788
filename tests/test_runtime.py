import os
import stat

import pytest

from naseval.core.errors import Preempted, RefusedCheckpoint, TrainingDiverged
from naseval.core.runtime import RESUME, atomic_directory, write_atomic


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_atomic_outputs_get_the_usual_permissions(tmp_path, umask_022):
    write_atomic(tmp_path / "a.txt", "text")
    write_atomic(tmp_path / "b.png", b"\x89PNG")
    with atomic_directory(tmp_path / "folder") as folder:
        write_atomic(folder / "c.json", "{}")
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("a.txt", "b.png", "folder")}
    assert modes == {"a.txt": 0o644, "b.png": 0o644, "folder": 0o755}
    assert (tmp_path / "b.png").read_bytes() == b"\x89PNG" and (tmp_path / "folder" / "c.json").read_text() == "{}"


def test_a_failed_block_leaves_neither_the_folder_nor_its_scratch(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as folder:
        write_atomic(folder / "half.json", "{")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error, kept", [
    (MemoryError("CUDA out of memory"), True),  # says nothing about the checkpoints: the next try resumes
    (OSError("stale file handle"), True),
    (Preempted("stopped by SIGUSR1: checkpoint saved"), True),
    (RefusedCheckpoint("checkpoint of another run"), False),  # a verdict another try would repeat
    (TrainingDiverged("training diverged"), False),
])
def test_a_resumable_folder_keeps_its_checkpoints_through_errors_that_are_not_verdicts(tmp_path, error, kept):
    with pytest.raises(type(error)), atomic_directory(tmp_path / "out", resumable=True) as folder:
        write_atomic(folder / RESUME / "train.pt", "epoch 3")
        raise error
    assert (tmp_path / ".out.partial" / RESUME / "train.pt").exists() == kept
    assert not (tmp_path / "out").exists() and (not kept) == (list(tmp_path.iterdir()) == [])


@pytest.mark.integration
def test_extract_starts_without_torch_and_records_the_environment_it_ran_in():
    """extract runs once per search run; importing torch would cost it about 4 s each time."""
    import subprocess
    import sys

    from conftest import ROOT

    probe = ("import sys, stages.extract; from naseval.core.runtime import environment; "
             "print('torch' in sys.modules, 'scipy' in sys.modules, environment()['threads'])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False", "None"]


def test_environment_names_the_software_and_the_threads_used():
    import torch

    from naseval.core.runtime import environment

    recorded = environment(threads=3)
    assert recorded["torch"] == torch.__version__ and recorded["threads"] == 3 and recorded["device"] == "cpu"
    assert recorded["cpu"] and recorded["cores"] >= 1
