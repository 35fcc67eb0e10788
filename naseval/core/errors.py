"""The one exception type users see as a one-line message instead of a traceback."""


class NasevalError(Exception):
    """Bad input or a failed run: the message names the bad value and what is allowed."""


class TrainingDiverged(NasevalError):
    """The loss became NaN or infinite."""


class RefusedCheckpoint(NasevalError):
    """A checkpoint that cannot be resumed: unreadable, not ours, or of another run."""


class Preempted(NasevalError):
    """The run stopped on request (a preemption or time-limit warning) after saving its checkpoint."""
