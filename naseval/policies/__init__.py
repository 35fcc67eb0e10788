"""Search policies: one module each, registered by name (see base.py)."""

from naseval.policies.base import (
    Candidate,
    SearchPolicy,
    SearchResult,
    SearchTask,
    get_policy,
    policy_names,
    register,
)

__all__ = [
    "Candidate",
    "SearchPolicy",
    "SearchResult",
    "SearchTask",
    "get_policy",
    "policy_names",
    "register",
]
