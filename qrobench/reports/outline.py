"""The leaderboard document's outline: its sections, their titles and their order, once.

The Markdown and the HTML back-end each render every section of ``OUTLINE`` in this order, so
a section added, renamed or moved here moves in both documents; a back-end without a renderer
for a section fails the tests rather than silently leaving it out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    key: str  # the back-ends' renderer for it
    title: str  # "" for a section without a heading
    markdown_heading: bool = True  # False: the Markdown runs it into the text, as a paragraph


OUTLINE: tuple[Section, ...] = (
    Section("intro", "qrobench leaderboard"),  # the document's title and the protocol line
    Section("ranked", ""),  # the compact table: the ranked rows (and the reported ones, never ranked)
    Section("provisional", "Provisional"),  # measured rows without their battery's AutoAttack: not ranked
    Section("all", "All columns"),  # every row, every column
    Section("flags", "Flags", markdown_heading=False),
    Section("reported", ""),
    Section("stale", ""),
    Section("built", ""),
    Section("summary", "Runs summary"),
    Section("findings", "Findings"),
    Section("sweeps", "Quantization sweeps"),
    Section("fullset", "The full test set"),
    Section("threats", "Threat models side by side"),
    Section("l2", "L2 (ε = 0.5)"),
    Section("corruptions", "Common corruptions"),
    Section("bit_errors", "Bit errors in the stored weights"),
    Section("bit_flip", "The Bit-Flip Attack"),
    Section("layers", "Where the zeros sit (per layer)"),
    Section("plots", "Plots"),
)
