"""Submitting an outside model to the leaderboard: ``qrobench submit`` and :func:`submit`."""

from .run import Submission, entry_paths, submit

__all__ = ["Submission", "entry_paths", "submit"]
