"""Datasets: where test points come from (a local copy, a download, or the bundled subset)."""

from .cifar10 import CIFAR10_CLASSES, EvalData, load_cifar10_test, load_cifar10_train
from .registry import DatasetSpec, check_dataset, list_datasets, load_test_set, register_dataset

__all__ = ["CIFAR10_CLASSES", "DatasetSpec", "EvalData", "check_dataset", "list_datasets", "load_cifar10_test",
           "load_cifar10_train", "load_test_set", "register_dataset"]
