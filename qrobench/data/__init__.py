"""Datasets: where test points come from (a local copy, a download, or the bundled subset)."""

from .cifar10 import CIFAR10_CLASSES, EvalData, load_cifar10_test, load_cifar10_train

__all__ = ["CIFAR10_CLASSES", "EvalData", "load_cifar10_test", "load_cifar10_train"]
