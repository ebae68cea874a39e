"""Calls on one model from several threads are serialised by its lock.

Deterministic checks: the test thread holds the model's lock (as a fit or
step running in C would) and the call under test, made in another thread,
must not finish until the lock is released. A call that ignored the lock
finishes at once, so the first wait (BLOCKED_FOR seconds) sees it."""

import threading

import numpy as np
import pytest

import nnlib
from conftest import xor_model

BLOCKED_FOR = 0.3   # how long a call must stay blocked behind the lock
DONE_WITHIN = 30.0  # how long it may take once the lock is free


def blocks_until_released(model, call):
    """Runs call() in a thread while this thread holds the model's lock;
    asserts it has not returned after BLOCKED_FOR seconds, releases the
    lock, and returns what call() returned (re-raising what it raised)."""
    done = threading.Event()
    result = {}

    def run():
        try:
            result["value"] = call()
        except BaseException as e:  # re-raised in the test's thread
            result["error"] = e
        finally:
            done.set()

    model._lock.acquire()
    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        finished_early = done.wait(BLOCKED_FOR)
    finally:
        model._lock.release()
    assert done.wait(DONE_WITHIN), "the call never finished"
    thread.join(DONE_WITHIN)
    assert not finished_early, \
        "the call ran while another thread held the model's lock"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def test_learning_rate_setter_waits_for_the_model_lock():
    with xor_model(lr=0.5) as m:
        opt = m.optimizer
        blocks_until_released(m, lambda: setattr(opt, "learning_rate", 0.25))
        assert opt.learning_rate == 0.25


def test_optimizer_getters_wait_for_the_model_lock():
    with xor_model(lr=0.5) as m:
        opt = m.optimizer
        assert blocks_until_released(m, lambda: opt.step_count) == 0
        assert blocks_until_released(
            m, lambda: opt.options["learning_rate"]) == 0.5


def test_set_param_waits_for_the_model_lock():
    with xor_model() as m:
        dense = m.layers[0]
        new = np.arange(8, dtype=np.float32).reshape(4, 2)
        before = dense.get_param("weight")
        m._lock.acquire()
        try:
            done = threading.Event()
            t = threading.Thread(
                target=lambda: (dense.set_param("weight", new), done.set()),
                daemon=True)
            t.start()
            assert not done.wait(BLOCKED_FOR)
            # nothing was written while the lock was held
            np.testing.assert_array_equal(dense.param_view("weight"), before)
        finally:
            m._lock.release()
        assert done.wait(DONE_WITHIN)
        t.join(DONE_WITHIN)
        np.testing.assert_array_equal(dense.get_param("weight"), new)


def test_weight_assignment_and_set_weights_wait_for_the_model_lock():
    with xor_model() as m:
        dense = m.layers[2]
        blocks_until_released(
            m, lambda: setattr(dense, "bias", np.array([3.0], np.float32)))
        assert dense.bias.tolist() == [3.0]
        weights = [w + 1 for w in m.get_weights()]
        blocks_until_released(m, lambda: m.set_weights(weights))
        for got, want in zip(blocks_until_released(m, m.get_weights),
                             weights):
            np.testing.assert_array_equal(got, want)


def test_layer_getters_wait_for_the_model_lock():
    with xor_model() as m:
        dense = m.layers[0]
        assert blocks_until_released(m, lambda: dense.param_names) == \
            ["weight", "bias"]
        assert blocks_until_released(m, lambda: dense.output_shape) == (4,)
        assert blocks_until_released(m, lambda: m.output_shape) == (1,)
        assert blocks_until_released(m, lambda: m.param_count) == 17


def test_set_buffer_waits_for_the_model_lock():
    with nnlib.Model([nnlib.Dense(3, 2), nnlib.BatchNorm()]) as m:
        m.compile((2,), max_batch=4, seed=1)
        bn = m.layers[1]
        var = np.array([1.5, 2.5, 3.5], np.float32)
        blocks_until_released(m, lambda: bn.set_buffer("running_var", var))
        np.testing.assert_array_equal(
            blocks_until_released(m, lambda: bn.get_buffer("running_var")),
            var)


def test_set_initial_state_waits_for_the_model_lock():
    with nnlib.Model([nnlib.RNN(3, return_sequences=False)]) as m:
        m.compile((2, 1), max_batch=2, seed=1)
        rnn = m.layers[0]
        h0 = np.array([0.5, -0.5, 0.25], np.float32)
        x = np.zeros((1, 2, 1), np.float32)
        zero_state = m.predict(x)
        blocks_until_released(m, lambda: rnn.set_initial_state(h0))
        # the state took: with x = 0 and h0 given, the output differs from
        # the zero-state one and equals tanh(W_hh tanh(W_hh h0 + b) + b)
        w_hh, b = rnn.get_param("weight_hh"), (rnn.get_param("bias_ih")
                                              + rnn.get_param("bias_hh"))
        h = h0.astype(np.float64)
        for _ in range(2):
            h = np.tanh(w_hh @ h + b)
        np.testing.assert_allclose(m.predict(x)[0], h, rtol=1e-5, atol=1e-6)
        assert not np.allclose(m.predict(x), zero_state)
        blocks_until_released(m, rnn.set_initial_state)  # zeros again
        np.testing.assert_array_equal(m.predict(x), zero_state)


def test_learning_rate_set_from_the_fit_callback_is_not_a_deadlock():
    # the callback runs on fit's thread, which holds the (re-entrant) lock
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    with xor_model(lr=0.5) as m:
        opt = m.optimizer
        m.fit(X, y, epochs=3, callback=lambda p: setattr(
            opt, "learning_rate", 0.1 * (p.epoch + 1)))
        assert opt.learning_rate == pytest.approx(0.3)
