"""The evaluation engine: one protocol for every model (clean pass, attacks, worst case)."""

from .evaluate import EvalConfig, evaluate, resolve_device
from .results import RESULT_SCHEMA, default_output_path, write_result

__all__ = ["EvalConfig", "RESULT_SCHEMA", "default_output_path", "evaluate", "resolve_device",
           "write_result"]
