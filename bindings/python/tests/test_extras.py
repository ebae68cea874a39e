"""Profiling, numerics checks and workspaces through the bindings."""

import threading

import numpy as np
import pytest

import nnlib
from conftest import needs, xor_model

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
T = np.array([[0], [1], [1], [0]], dtype=np.float32)


@needs("nnlib_model_set_profiling", "nnlib_model_get_layer_profile")
def test_profiling_counts_calls_per_layer():
    with xor_model() as m:
        m.set_profiling(True)
        for _ in range(5):
            m.step(X, T)
        m.set_profiling(False)
        dense = m.layer_profile(0)
        assert dense["forward_calls"] == 5 and dense["backward_calls"] == 5
        assert dense["forward_flops"] > 0
        assert m.layer_profile(1)["fused"] is True  # sigmoid runs in dense
        with pytest.raises(nnlib.OutOfRangeError):
            m.layer_profile(9)


@needs("nnlib_model_set_check_numerics")
def test_check_numerics_names_the_layer():
    with xor_model() as m:
        m.set_check_numerics(True)
        m.layers[0].param_view("weight")[0, 0] = np.inf
        with pytest.raises(nnlib.NumericalError) as info:
            m.step(X, T)
        assert "layer" in info.value.message


@needs("nnlib_workspace_create", "nnlib_workspace_predict")
def test_workspaces_predict_in_parallel_threads():
    with xor_model() as m:
        for _ in range(300):
            m.step(X, T)
        expected = m.predict(X)
        results = []

        def work():
            with m.workspace() as w:
                results.append([w.predict(X) for _ in range(100)][-1])

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 4
        for r in results:
            np.testing.assert_array_equal(r, expected)
        w = m.workspace()
    # closing the model closed the workspace it still had
    assert w._handle is None
    with pytest.raises(nnlib.WrongStateError):
        w.predict(X)
