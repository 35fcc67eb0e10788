"""The one exception type users see as a one-line message instead of a traceback."""


class NasevalError(Exception):
    """Bad input or a failed run: the message names the bad value and what is allowed."""


class TrainingDiverged(NasevalError):
    """The loss became NaN or infinite."""


class RefusedCheckpoint(NasevalError):
    """A checkpoint that cannot be resumed: unreadable, not ours, or of another run."""


class Stopped(NasevalError):
    """The run ended before its end with its checkpoints kept: run the stage again to continue."""


class Preempted(Stopped):
    """The run stopped on request (a preemption or time-limit warning, Ctrl-C) after saving its checkpoint."""


class WorkerDied(Stopped):
    """A worker process died (most often of the out-of-memory killer): another try in the same place
    would die the same way, so a campaign counts it as a failure, not an interruption."""
