"""The fit progress callback: values, stopping, exceptions."""

import numpy as np
import pytest

import nnlib
from conftest import xor_model

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 4, dtype=np.float32)
T = np.array([[0], [1], [1], [0]] * 4, dtype=np.float32)


class Boom(Exception):
    pass


def _model():
    m = nnlib.Model([nnlib.Dense(4, 2), nnlib.Tanh(), nnlib.Dense(1)])
    m.compile((2,), "mse", nnlib.SGD(0.1), max_batch=4, seed=1)
    return m


def test_progress_reports_every_batch():
    seen = []
    with _model() as m:
        losses = m.fit(X, T, epochs=3, batch_size=3, callback=seen.append)
    assert len(seen) == 3 * 6  # 16 samples in batches of 3: 6 per epoch
    first = seen[0]
    assert isinstance(first, nnlib.Progress)
    assert (first.epoch, first.epochs, first.batch, first.batches) == (0, 3, 0, 6)
    assert (first.samples_done, first.samples) == (3, 16)
    last = seen[-1]
    assert (last.epoch, last.batch, last.samples_done) == (2, 5, 16)
    assert [p.epoch_loss for p in seen if p.batch == 5] == pytest.approx(losses)


def test_exception_in_callback_stops_training_and_propagates():
    calls = []

    def callback(p):
        calls.append(p)
        if p.epoch == 1 and p.batch == 2:
            raise Boom("stop here")

    with _model() as m:
        with pytest.raises(Boom, match="stop here"):
            m.fit(X, T, epochs=50, batch_size=4, callback=callback)
        assert len(calls) == 4 + 3  # nothing ran after the exception
        assert m.optimizer.step_count == 7
        # the model is intact and usable afterwards
        assert m.predict(X).shape == (16, 1)
        m.fit(X, T, epochs=1, callback=lambda p: None)
        assert m.optimizer.step_count == 11


def test_keyboard_interrupt_in_callback_propagates():
    def callback(p):
        raise KeyboardInterrupt

    with _model() as m:
        with pytest.raises(KeyboardInterrupt):
            m.fit(X, T, epochs=5, callback=callback)
        assert m.optimizer.step_count == 1


def test_returning_true_cancels_with_the_library_status():
    with _model() as m:
        with pytest.raises(nnlib.CancelledError) as info:
            m.fit(X, T, epochs=5, callback=lambda p: p.batch == 1)
        assert info.value.code == nnlib.Status.CANCELLED == -15
        assert "epoch 0, batch 1" in info.value.message
        assert m.optimizer.step_count == 2


def test_running_the_model_inside_its_callback_is_refused():
    def callback(p):
        m.predict(X)

    m = _model()
    with pytest.raises(nnlib.WrongStateError, match="progress callback"):
        m.fit(X, T, epochs=2, callback=callback)
    # reading parameters from the callback is fine
    weights = []
    m.fit(X, T, epochs=2, callback=lambda p: weights.append(
        m.layers[0].weight))
    assert len(weights) == 8
    m.close()


def test_callbacks_survive_garbage_collection_during_fit():
    import gc

    def callback(p):
        gc.collect()

    with _model() as m:
        m.fit(X, T, epochs=3, callback=callback)
