import pytest

from qrobench.data.cifar10 import load_cifar10_test


@pytest.fixture(scope="session")
def model():
    """The zoo's adversarially trained res20-fp: attacks on it take the steps a real evaluation
    takes (on an untrained network nearly every point falls at the first step, which would
    flatter any attack that stops early)."""
    from qrobench.zoo.store import Zoo

    net, _ = Zoo().load("res20-fp")
    return net.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def points():
    return load_cifar10_test(128)
