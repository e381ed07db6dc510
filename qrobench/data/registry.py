"""Data sets by name, so the engine, the CLI and the results name a test set instead of
calling CIFAR-10's loader: a new test set (CIFAR-10-C, a generated corruption set) is one
``@register_dataset`` entry, and every result records the name it was measured on."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..registry import Registry
from .cifar10 import CIFAR10_CLASSES, EvalData, load_cifar10_test


@dataclass(frozen=True)
class DatasetSpec:
    """A test set: how to load its first ``n`` points and what a model must accept."""

    name: str
    title: str  # for people, in tables and messages
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # C, H, W of the [0, 1] float images
    load: Callable[..., EvalData]  # (n, data_dir) -> the first n test points in order


DATASETS: Registry[DatasetSpec] = Registry("data set")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name, spec)


def list_datasets() -> list[str]:
    return DATASETS.names()


def check_dataset(name: str) -> DatasetSpec:
    """The registered data set ``name``; a clear error with the valid names otherwise."""
    return DATASETS.get(name)


def load_test_set(name: str, n: int | None = None, data_dir: str | os.PathLike | None = None) -> EvalData:
    """The first ``n`` test points of data set ``name`` (RobustBench's order: the original one)."""
    return check_dataset(name).load(n, data_dir)


register_dataset(DatasetSpec("cifar10", "CIFAR-10", CIFAR10_CLASSES, (3, 32, 32), load_cifar10_test))
