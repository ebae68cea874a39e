"""fit with validation and early stopping (library 1.1)."""

import numpy as np
import pytest

import nnlib
from conftest import needs

RNG = np.random.default_rng(3)
X = RNG.uniform(-1, 1, (32, 4)).astype(np.float32)
Y = (X[:, :1] > 0).astype(np.float32)
VX = RNG.uniform(-1, 1, (16, 4)).astype(np.float32)
VY = (VX[:, :1] > 0).astype(np.float32)


def model():
    m = nnlib.Model.from_spec("dense:6,tanh,dense:1")
    m.compile((4,), "bce", nnlib.SGD(0.3, 0.5), max_batch=8, seed=5)
    return m


def twin(vy, epochs):
    """One fit call per epoch, evaluate after each: the losses and weights."""
    losses, weights = [], []
    with model() as m:
        for _ in range(epochs):
            m.fit(X, Y, shuffle=False)
            losses.append(m.evaluate(VX, vy)[0])
            weights.append(m.get_weights())
    return losses, weights


@needs("nnlib_model_fit_validated")
def test_validation_losses_are_evaluate_after_each_epoch():
    want, _ = twin(VY, 5)
    with model() as m:
        h = m.fit(X, Y, epochs=5, shuffle=False, validation=(VX, VY))
    assert isinstance(h, list) and len(h) == 5
    assert h.validation_losses == want
    assert want[-1] < want[0]


@needs("nnlib_model_fit_validated")
def test_patience_stops_and_restore_best_keeps_the_best_weights():
    flipped = 1 - VY  # learning the training set makes these worse
    want, weights = twin(flipped, 6)
    assert all(b > a for a, b in zip(want, want[1:]))
    with model() as m:
        h = m.fit(X, Y, epochs=6, shuffle=False, validation=(VX, flipped),
                  patience=2, restore_best=True)
        assert len(h) == 3 and h.validation_losses == want[:3]
        for a, b in zip(m.get_weights(), weights[0]):
            np.testing.assert_array_equal(a, b)


def test_patience_needs_validation():
    with model() as m:
        with pytest.raises(nnlib.InvalidArgumentError):
            m.fit(X, Y, patience=2)
        with pytest.raises(nnlib.ShapeMismatchError):
            m.fit(X, Y, validation=(VX[:, :3], VY))
        assert m.fit(X, Y).validation_losses == []
