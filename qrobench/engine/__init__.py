"""The evaluation engine: one protocol for every model (clean pass, attacks, worst case)."""

from .config import EvalConfig, make_config, resolve_attack_options
from .evaluate import evaluate, resolve_device
from .results import (
           RESULT_SCHEMA,
           Result,
           SeedResult,
           default_output_path,
           read_result,
           write_result,
)

__all__ = ["EvalConfig", "RESULT_SCHEMA", "Result", "SeedResult", "default_output_path", "evaluate",
           "make_config", "read_result", "resolve_attack_options", "resolve_device", "write_result"]
