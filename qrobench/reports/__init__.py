"""Human-readable views of result dicts (console tables now; leaderboards build on these)."""

from .console import format_result_table, format_zoo_table

__all__ = ["format_result_table", "format_zoo_table"]
