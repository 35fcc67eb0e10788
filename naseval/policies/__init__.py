"""Search policies: one module each, registered by name (see base.py); what they return is in result.py."""

from naseval.policies.base import SearchPolicy, SearchTask, get_policy, policy_names, register, search_params
from naseval.policies.result import Candidate, SearchResult, Trace

__all__ = [
    "Candidate",
    "SearchPolicy",
    "SearchResult",
    "SearchTask",
    "Trace",
    "get_policy",
    "policy_names",
    "register",
    "search_params",
]
