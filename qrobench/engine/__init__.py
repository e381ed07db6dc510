"""The evaluation engine: one protocol for every model (clean pass, attacks, worst case)."""

from .evaluate import EvalConfig, evaluate, resolve_device
from .results import (
           RESULT_SCHEMA,
           Result,
           SeedResult,
           default_output_path,
           read_result,
           write_result,
)

__all__ = ["EvalConfig", "RESULT_SCHEMA", "Result", "SeedResult", "default_output_path", "evaluate",
           "read_result", "resolve_device", "write_result"]
