"""Process-wide setup shared by every stage: seeding, device choice, logging, atomic writes."""

from __future__ import annotations

import csv
import ctypes
import io
import json
import logging
import os
import platform
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from naseval.core.errors import NasevalError, Stopped

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: the stages that train nothing (extract) start in a fraction
# of a second instead of the four that importing torch takes.

# No "auto": a device picked by the machine would change results behind DVC's back.
DEVICES = ("cpu", "cuda")
DETERMINISTIC_ENV = "NASEVAL_DETERMINISTIC"
RESUME = ".resume"  # inside a resumable scratch folder: checkpoints, removed when the stage succeeds
# Where a campaign's job keeps its checkpoints instead: shared storage that outlives the job's
# throwaway clone, so a requeued job resumes (naseval/campaign/job.py sets it per stage key).
SHARED_RESUME_ENV = "NASEVAL_RESUME_DIR"


MAX_SEED = 2**32 - 1  # numpy's legacy seeding takes 0..2^32 - 1


def check_seed(seed: int, key: str = "seed") -> int:
    """`seed`, or the standard one-line error: numpy takes no negative or larger seed."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise NasevalError(f"{key}: expected an integer in 0..{MAX_SEED}, got {seed!r}")
    return seed


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch from one integer; return a numpy generator for our own draws.

    CPU runs are deterministic as they are. On a GPU, NASEVAL_DETERMINISTIC=1 asks torch for
    deterministic kernels (slower; an op without one raises instead of varying silently).
    """
    import torch

    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if os.environ.get(DETERMINISTIC_ENV) == "1":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for determinism
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)


def keep_freed_memory() -> None:
    """Stop glibc from returning big freed blocks to the OS after every training step.

    By default each (tokens, vocab) logits buffer is mmap'd and unmapped again, and the page
    faults of touching it anew cost a third of a CPU training step; keeping the memory makes
    single-threaded training ~1.5x faster. A no-op where glibc is not the allocator.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


def resolve_device(name: str) -> torch.device:
    import torch

    if name not in DEVICES:
        raise NasevalError(f"device: expected one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise NasevalError("device: 'cuda' was asked for but no CUDA device is available")
    return torch.device(name)


def processor_name() -> str:
    """The CPU's model name as Linux reports it, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


ENVIRONMENT = "environment.json"  # in every stage's output folder


def environment(threads: int | None = None) -> dict[str, Any]:
    """What a stage ran on, for its output: results are byte-identical only on the same kind of
    machine and software, so a reader must be able to tell which one produced them. `threads`:
    those of the training processes, where they are not this one; a stage that never imported
    torch computed nothing with it and records no threads."""
    torch = sys.modules.get("torch")
    if threads is None and torch:
        threads = torch.get_num_threads()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__ if torch else metadata.version("torch"),
        "numpy": np.__version__,
        "cpu": processor_name(),
        "cores": os.cpu_count(),
        "threads": threads,
        "device": torch.cuda.get_device_name() if torch and torch.cuda.is_initialized() else "cpu",
        "deterministic_kernels": os.environ.get(DETERMINISTIC_ENV) == "1",  # changes GPU results
    }


def setup_logging(log_file: Path) -> logging.Logger:
    """Log to the terminal and to a file in the stage's output folder (appending: a resumed run
    keeps the log of the run it continues)."""
    logger = logging.getLogger("naseval")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(log_file, mode="a")):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as file:
            file.write(content)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp's 0600 would hide results from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Rows with the same keys (`columns`, else the first row's); no rows and no columns write an
    empty file."""
    buffer = io.StringIO()
    columns = columns or (list(rows[0]) if rows else None)
    if columns:
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


@contextmanager
def atomic_directory(path: Path, resumable: bool = False) -> Iterator[Path]:
    """Yield a scratch folder that replaces `path` only if the block succeeds.

    A `resumable` scratch has a fixed name, `.<name>.partial`, and survives a kill (SIGKILL,
    preemption, Ctrl-C) and any error that says nothing about the checkpoints (out of memory, a
    lost GPU or file system): the next run finds them in its `RESUME` folder and continues. A
    `NasevalError` (bad input, a refused checkpoint, a diverged run: a verdict that another try
    would repeat) removes it, as any error does a plain scratch folder, except `Stopped`: a stop
    that saved its checkpoint on purpose, or a dead worker, whose finished cells are kept. Success
    removes the `RESUME` folder, so the outputs hold results only. Where `NASEVAL_RESUME_DIR` is
    set, `RESUME` is a link into that folder, which outlives the scratch folder's machine.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if resumable:
        scratch = path.parent / f".{path.name}.partial"
        scratch.mkdir(exist_ok=True)
    else:
        scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(scratch, 0o777 & ~umask())
    shared = _link_shared_resume(scratch, path) if resumable else None
    try:
        yield scratch
        _remove_resume(scratch, shared)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(scratch, path)
    except Exception as error:
        if not resumable or (isinstance(error, NasevalError) and not isinstance(error, Stopped)):
            _remove_resume(scratch, shared)
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        if not resumable:
            shutil.rmtree(scratch, ignore_errors=True)


def _link_shared_resume(scratch: Path, path: Path) -> Path | None:
    root = os.environ.get(SHARED_RESUME_ENV)
    if not root:
        return None
    shared = Path(root) / path.name
    shared.mkdir(parents=True, exist_ok=True)
    link = scratch / RESUME
    if link.is_symlink():
        link.unlink()
    elif link.exists():  # local checkpoints of a run outside the campaign: they would be shadowed
        raise NasevalError(f"{link} holds local checkpoints while {SHARED_RESUME_ENV} is set: "
                           f"remove one of the two")
    link.symlink_to(os.path.abspath(shared), target_is_directory=True)  # not resolved: see campaign.config.absolute
    return shared


def _remove_resume(scratch: Path, shared: Path | None) -> None:
    if shared is not None:
        (scratch / RESUME).unlink(missing_ok=True)
        shutil.rmtree(shared, ignore_errors=True)
    else:
        shutil.rmtree(scratch / RESUME, ignore_errors=True)


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise NasevalError(f"missing input {path}: run the stage that produces it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise NasevalError(f"{path} is not valid JSON (line {error.lineno}): truncated or not ours; "
                           f"run the stage that produces it again") from None
