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


# ------------------------------------------------------------ workspaces

X4 = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)


class PausedPredict:
    """Stands in for nnlib_workspace_predict: each call reports that it is
    in "C", waits for go, and only then runs the real function, unless the
    model was closed meanwhile (the real call would then read freed
    memory: it records that instead)."""

    def __init__(self, monkeypatch, model):
        from nnlib._core import lib
        self.real = lib.nnlib_workspace_predict
        self.model = model
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()
        self.freed_under_it = False
        monkeypatch.setattr(lib, "nnlib_workspace_predict", self)

    def __call__(self, *args):
        self.entered.release()
        assert self.go.wait(DONE_WITHIN)
        if self.model.closed:
            self.freed_under_it = True
            raise RuntimeError("the model was freed during the prediction")
        return self.real(*args)


def in_thread(call):
    """Starts call() in a thread; returns (done event, result dict)."""
    done, result = threading.Event(), {}

    def run():
        try:
            result["value"] = call()
        except BaseException as e:
            result["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, result


def test_model_close_waits_for_a_workspace_prediction(monkeypatch):
    m = xor_model()
    expected = m.predict(X4)
    ws = m.workspace()
    paused = PausedPredict(monkeypatch, m)
    predicted, prediction = in_thread(lambda: ws.predict(X4))
    assert paused.entered.acquire(timeout=DONE_WITHIN)
    closed, closing = in_thread(m.close)
    assert not closed.wait(BLOCKED_FOR), \
        "close() freed the model while a workspace predicted with it"
    paused.go.set()
    assert predicted.wait(DONE_WITHIN) and closed.wait(DONE_WITHIN)
    assert not paused.freed_under_it
    assert "error" not in prediction and "error" not in closing
    np.testing.assert_array_equal(prediction["value"], expected)
    assert m.closed and ws._handle is None
    with pytest.raises(nnlib.WrongStateError):
        ws.predict(X4)


def test_workspace_close_waits_for_its_prediction(monkeypatch):
    with xor_model() as m:
        expected = m.predict(X4)
        ws = m.workspace()
        paused = PausedPredict(monkeypatch, m)
        predicted, prediction = in_thread(lambda: ws.predict(X4))
        assert paused.entered.acquire(timeout=DONE_WITHIN)
        closed, _ = in_thread(ws.close)
        assert not closed.wait(BLOCKED_FOR)
        paused.go.set()
        assert predicted.wait(DONE_WITHIN) and closed.wait(DONE_WITHIN)
        np.testing.assert_array_equal(prediction["value"], expected)
        with pytest.raises(nnlib.WrongStateError):
            ws.predict(X4)


def test_training_waits_for_workspace_predictions(monkeypatch):
    with xor_model() as m:
        ws = m.workspace()
        before = m.predict(X4)
        paused = PausedPredict(monkeypatch, m)
        predicted, prediction = in_thread(lambda: ws.predict(X4))
        assert paused.entered.acquire(timeout=DONE_WITHIN)
        stepped, _ = in_thread(lambda: m.step(X4, X4[:, :1]))
        lr_set, _ = in_thread(
            lambda: setattr(m.optimizer, "learning_rate", 0.1))
        assert not stepped.wait(BLOCKED_FOR)
        assert not lr_set.is_set()
        paused.go.set()
        assert stepped.wait(DONE_WITHIN) and lr_set.wait(DONE_WITHIN)
        assert predicted.wait(DONE_WITHIN)
        # the prediction saw the weights from before the step
        np.testing.assert_array_equal(prediction["value"], before)
        assert m.optimizer.step_count == 1


def test_workspaces_of_one_model_predict_at_the_same_time(monkeypatch):
    # both predictions must be in C at once: serialising them would keep
    # the second from entering while the first waits
    with xor_model() as m:
        expected = m.predict(X4)
        a, b = m.workspace(), m.workspace()
        paused = PausedPredict(monkeypatch, m)
        done_a, ra = in_thread(lambda: a.predict(X4))
        done_b, rb = in_thread(lambda: b.predict(X4))
        assert paused.entered.acquire(timeout=DONE_WITHIN)
        assert paused.entered.acquire(timeout=DONE_WITHIN), \
            "workspace predictions of one model were serialised"
        paused.go.set()
        assert done_a.wait(DONE_WITHIN) and done_b.wait(DONE_WITHIN)
        np.testing.assert_array_equal(ra["value"], expected)
        np.testing.assert_array_equal(rb["value"], expected)


def test_workspace_predict_waits_for_the_model_lock():
    with xor_model() as m:
        ws = m.workspace()
        np.testing.assert_array_equal(
            blocks_until_released(m, lambda: ws.predict(X4)), m.predict(X4))


def test_workspace_predict_from_the_fit_callback_is_refused():
    with xor_model() as m:
        ws = m.workspace()
        seen = []

        def callback(progress):
            with pytest.raises(nnlib.WrongStateError):
                ws.predict(X4)
            seen.append(progress.batch)

        m.fit(X4, X4[:, :1], epochs=1, callback=callback)
        assert seen == [0]
