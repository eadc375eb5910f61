"""User-facing errors.

Every error a user can fix is a :class:`TridentError`: the command line prints its message on one
line and exits non-zero, without a traceback unless ``--verbose`` is given.
"""
from __future__ import annotations


class TridentError(Exception):
    """An error whose message tells the user what to fix."""

    exit_code = 2


class ConfigError(TridentError):
    """A configuration key, type or value is wrong."""


class DataError(TridentError):
    """Input data is missing, unreadable or breaks the data contract."""


class GateFailed(TridentError):
    """A gate (validation, KPI, fairness, parity, load test) refused to let the run proceed."""

    exit_code = 3


class BackendError(TridentError):
    """The requested compute backend is not available on this machine."""
