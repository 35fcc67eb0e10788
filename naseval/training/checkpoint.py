"""Resumable training: the whole state of a run at the end of an epoch, written atomically.

A run killed at any moment restarts from its last checkpoint and ends with the same numbers as
a run never interrupted (on the CPU): the checkpoint holds the model, the optimizer (SGD or
NT-ASGD with its averages), the best state so far, the history, every random generator, and
whatever stateful objects the caller tracks (a controller, architecture weights, a validation
stream's position). It is tied to its run by a fingerprint of the run's inputs, so a checkpoint
of another run is refused rather than resumed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import random
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from naseval.core.errors import RefusedCheckpoint
from naseval.core.runtime import write_atomic

FORMAT = "naseval-checkpoint-1"


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def fingerprint(*inputs: Any) -> str:
    """A digest of what determines a run: params sections (dataclasses), seeds, names, and the
    library's own code, since a checkpoint of other code may not mean the same thing."""
    def plain(value: Any) -> Any:
        return asdict(value) if is_dataclass(value) else value

    text = json.dumps([plain(value) for value in inputs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode() + code_digest().encode()).hexdigest()[:16]


@functools.cache
def code_digest() -> str:
    library = Path(__file__).resolve().parent
    content = hashlib.sha256()
    for source in sorted(library.rglob("*.py")):
        content.update(source.relative_to(library).as_posix().encode() + source.read_bytes())
    return content.hexdigest()


def random_states(rng: np.random.Generator) -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
              "generator": rng.bit_generator.state}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict[str, Any], rng: np.random.Generator) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"].cpu())  # generator states are CPU tensors, wherever training runs
    rng.bit_generator.state = states["generator"]
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


class Checkpoint:
    """One run's checkpoint file, with the stateful objects saved alongside the training state."""

    def __init__(self, path: Path, run_fingerprint: str, tracked: dict[str, Stateful] | None = None):
        self.path, self.fingerprint, self.tracked = path, run_fingerprint, tracked or {}

    def tracking(self, **stateful: Stateful) -> Checkpoint:
        """The same file, also saving and restoring `stateful` (a controller, its optimizer, ...)."""
        return Checkpoint(self.path, self.fingerprint, {**self.tracked, **stateful})

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "fingerprint": self.fingerprint, "state": state,
                    "tracked": {name: obj.state_dict() for name, obj in self.tracked.items()}}, buffer)
        write_atomic(self.path, buffer.getvalue())

    def load(self, device: torch.device | str = "cpu") -> dict[str, Any] | None:
        """The saved state with the tracked objects restored, or None when there is no checkpoint.

        Every tensor is restored onto `device`, where the run trains: state that is kept outside
        the parameters (best weights, averages, a stacked optimizer's per-cell scalars) would
        otherwise stay on the device it was mapped to and meet the parameters' in the next step.
        """
        if not self.path.is_file():
            return None
        fix = "not resumed; run the stage again to start over"  # the failed stage discards its partial folder
        try:
            saved = torch.load(self.path, map_location=torch.device(device), weights_only=False)
        except Exception as error:  # torch raises several types for a truncated or foreign file
            raise RefusedCheckpoint(f"unreadable checkpoint {self.path} ({error.__class__.__name__}): {fix}") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise RefusedCheckpoint(f"{self.path} is not a naseval checkpoint: {fix}")
        if saved["fingerprint"] != self.fingerprint:
            raise RefusedCheckpoint(f"checkpoint {self.path} belongs to another run (its params, seed or data "
                                    f"differ): {fix}")
        for name, obj in self.tracked.items():
            obj.load_state_dict(saved["tracked"][name])
        return saved["state"]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
