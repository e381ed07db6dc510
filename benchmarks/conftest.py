import pytest
import torch

from qrobench.data.cifar10 import load_cifar10_test
from qrobench.models import create_model


@pytest.fixture(scope="session")
def model():
    torch.manual_seed(0)
    return create_model("preact_resnet20").eval().requires_grad_(False)


@pytest.fixture(scope="session")
def points():
    return load_cifar10_test(128)
