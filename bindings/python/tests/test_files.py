"""Model files and descriptions through the bindings."""

import numpy as np
import pytest

import nnlib
from conftest import needs, xor_model

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
T = np.array([[0], [1], [1], [0]], dtype=np.float32)


@needs("nnlib_model_save", "nnlib_model_load")
def test_save_load_round_trip(tmp_path):
    path = tmp_path / "xor.nnl"
    with xor_model() as m:
        m.fit(X, T, epochs=200)
        expected = m.predict(X)
        weights = m.get_weights()
        m.save(path)
        m.save(str(tmp_path / "as-str.nnl"))
    with nnlib.Model.load(path) as loaded:
        np.testing.assert_array_equal(loaded.predict(X), expected)
        for a, b in zip(weights, loaded.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert loaded.input_shape == (2,) and loaded.max_batch == 4
        assert loaded.loss == nnlib.Loss.MSE
        assert [l.name for l in loaded.layers] == ["dense", "sigmoid"] * 2


@needs("nnlib_model_save_buffer", "nnlib_model_load_buffer")
def test_bytes_round_trip_with_optimizer_resumes_identically():
    with xor_model() as a, xor_model() as b:
        a.fit(X, T, epochs=50)
        b.fit(X, T, epochs=50)
        data = a.to_bytes(optimizer=True)
        assert isinstance(data, bytes) and len(data) > 0
        with nnlib.Model.from_bytes(data) as c:
            assert c.optimizer is not None
            assert c.optimizer.step_count == 50
            for _ in range(20):
                b.step(X, T)
                c.step(X, T)
            np.testing.assert_array_equal(b.predict(X), c.predict(X))
        with nnlib.Model.from_bytes(a.to_bytes()) as d:
            assert d.optimizer is None
            np.testing.assert_array_equal(d.predict(X), a.predict(X))


@needs("nnlib_model_save_buffer", "nnlib_model_load_buffer")
def test_corrupt_bytes_raise_the_right_error():
    with xor_model() as m:
        data = bytearray(m.to_bytes())
    with pytest.raises(nnlib.TruncatedError) as info:
        nnlib.Model.from_bytes(data[: len(data) // 2])
    assert info.value.code == nnlib.Status.TRUNCATED
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(nnlib.ChecksumError) as info:
        nnlib.Model.from_bytes(data)
    assert info.value.code == nnlib.Status.CHECKSUM


@needs("nnlib_model_save_buffer", "nnlib_model_file_get_info")
def test_file_info():
    with xor_model() as m:
        m.fit(X, T, epochs=3)
        info = nnlib.model_file_info(m.to_bytes(optimizer=True))
    assert info["input_shape"] == (2,)
    assert info["max_batch"] == 4 and info["seed"] == 7
    assert info["layer_count"] == 4 and info["param_count"] == 17
    assert info["loss"] == nnlib.Loss.MSE
    assert info["has_optimizer"] and info["optimizer_steps"] == 3
    assert info["library_version"] == nnlib.version()


@needs("nnlib_model_add_spec", "nnlib_model_get_spec")
def test_spec_round_trip():
    spec = "dense:8,relu,dense:4:nobias,leaky_relu:0.2,dense:1,sigmoid"
    with nnlib.Model.from_spec(spec) as m:
        assert [l.name for l in m.layers][:2] == ["dense", "relu"]
        assert len(m.layers) == 6
        again = m.spec
        m.compile((3,), "bce_logits", "adam")
        assert m.layers[2].param_names == ["weight"]
    with nnlib.Model.from_spec(again) as m2:
        assert m2.spec == again
    # a description string given to the constructor is the same model
    with nnlib.Model(spec) as m3:
        assert m3.spec == again
    with pytest.raises(nnlib.ParseError):
        nnlib.Model("dense:8,nonsense")


@needs("nnlib_model_set_optimizer", "nnlib_model_load_buffer")
def test_set_optimizer_replaces_and_invalidates_the_old_view():
    with xor_model() as m:
        old = m.optimizer
        new = nnlib.Adam(0.01)
        m.set_optimizer(new)
        assert m.optimizer.learning_rate == pytest.approx(0.01)
        assert new.learning_rate == pytest.approx(0.01)
        with pytest.raises(nnlib.WrongStateError):
            old.learning_rate
        m.fit(X, T, epochs=2)
        assert new.step_count == 2


@needs("nnlib_optimizer_get_options", "nnlib_model_load_buffer")
def test_optimizer_options_read_back_also_from_a_file():
    opt = nnlib.Optimizer("adamw", learning_rate=0.004, beta1=0.8,
                          schedule="cosine", total_steps=90, clip_norm=1.5)
    want = opt.options
    assert want["learning_rate"] == pytest.approx(0.004)
    assert want["beta1"] == pytest.approx(0.8)
    assert want["schedule"] == nnlib.Schedule.COSINE
    assert want["total_steps"] == 90 and want["clip_norm"] == 1.5
    assert want["weight_decay"] == pytest.approx(0.01)  # AdamW's default
    assert want["nesterov"] is False
    with xor_model() as m:
        m.set_optimizer(opt)
        opt.learning_rate = 0.002
        want["learning_rate"] = pytest.approx(0.002)
        assert m.optimizer.options == want
        with nnlib.Model.from_bytes(m.to_bytes(optimizer=True)) as c:
            assert c.optimizer.kind == nnlib.OptimizerKind.ADAMW
            assert c.optimizer.options == want
