"""Parity with examples/xor.c: same seed and architecture, same numbers."""

import os
import re
import subprocess

import numpy as np
import pytest

from conftest import xor_model

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
T = np.array([[0], [1], [1], [0]], dtype=np.float32)


def _python_run():
    """What xor.c does: 2000 steps on the whole set, then predict."""
    with xor_model() as model:
        loss = 0.0
        for _ in range(2000):
            loss = model.step(X, T)
        y = model.predict(X)
    lines = ["%g xor %g = %.3f (want %g)" % (X[i, 0], X[i, 1], y[i, 0], T[i, 0])
             for i in range(4)]
    right = int(np.sum((y > 0.5) == (T > 0.5)))
    lines.append("final_loss=%.6f correct=%d/4" % (loss, right))
    return lines, y, loss


def _c_example():
    """The built C example: $NNLIB_XOR_EXAMPLE, or examples/xor beside the
    library in a build tree."""
    path = os.environ.get("NNLIB_XOR_EXAMPLE")
    if not path:
        import nnlib
        path = os.path.join(os.path.dirname(nnlib.library_path()),
                            "examples", "xor")
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def test_xor_learns():
    lines, y, loss = _python_run()
    assert lines[-1].endswith("correct=4/4")
    assert loss < 0.01
    np.testing.assert_array_equal(y > 0.5, T > 0.5)


def test_xor_prints_what_the_c_example_prints():
    example = _c_example()
    if example is None:
        pytest.skip("the C example is not built (set NNLIB_XOR_EXAMPLE)")
    out = subprocess.run([example], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ,
                                               OPENBLAS_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    c_lines = out.stdout.strip().splitlines()
    lines, _, _ = _python_run()
    assert lines == c_lines


def test_xor_same_seed_is_bit_identical_and_seed_matters():
    a = _python_run()[1]
    b = _python_run()[1]
    np.testing.assert_array_equal(a, b)
    with xor_model(seed=8) as m:
        w8 = m.layers[0].weight
    with xor_model(seed=7) as m:
        w7 = m.layers[0].weight
    assert not np.array_equal(w7, w8)


def test_xor_with_fit_and_evaluate():
    with xor_model() as model:
        losses = model.fit(X, T, epochs=1500, batch_size=4, shuffle=True)
        assert len(losses) == 1500
        assert losses[-1] < losses[0]
        loss, accuracy = model.evaluate(X, T)
        assert accuracy == 1.0
        assert loss == pytest.approx(float(np.mean((model.predict(X) - T) ** 2)),
                                     rel=1e-5)
