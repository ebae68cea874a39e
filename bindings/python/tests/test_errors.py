"""Every non-OK status raises its own nnlib.Error subclass with the code
and the library's message; ownership holds on the failure paths."""

import ctypes

import numpy as np
import pytest

import nnlib
from nnlib import _lib
from conftest import needs, xor_model

X = np.zeros((4, 2), np.float32)
T = np.zeros((4, 1), np.float32)


def raised(fn, *args, **kwargs):
    with pytest.raises(nnlib.Error) as info:
        fn(*args, **kwargs)
    return info.value


def test_one_class_per_status_with_the_library_text():
    for status in nnlib.Status:
        if status == nnlib.Status.OK:
            continue
        err = nnlib.errors.error_for(int(status), "detail")
        assert isinstance(err, nnlib.Error)
        assert err.code == status
        assert err.status == nnlib.lib.nnlib_status_string(status).decode()
        assert str(err) == "%s: detail" % err.status
        assert type(err).__name__ != "UnknownStatusError"
    classes = {type(nnlib.errors.error_for(int(s), "")) for s in nnlib.Status
               if s != 0}
    assert len(classes) == len(nnlib.Status) - 1
    unknown = nnlib.errors.error_for(-999, "x")
    assert type(unknown) is nnlib.UnknownStatusError and unknown.code == -999


@pytest.mark.parametrize("make, cls, code, text", [
    (lambda: nnlib.Dense(-3), nnlib.InvalidArgumentError, -1, ""),
    (lambda: nnlib.Activation(99), nnlib.InvalidArgumentError, -1, ""),
    (lambda: nnlib.SGD(learning_rate=-1.0), nnlib.InvalidArgumentError, -1,
     "learning rate"),
    (lambda: nnlib.SGD(nesterov=True), nnlib.InvalidArgumentError, -1,
     "Nesterov"),
])
def test_constructor_failures(make, cls, code, text):
    err = raised(make)
    assert type(err) is cls and err.code == code
    assert text in err.message


def test_shape_mismatch_carries_the_message():
    with xor_model() as m:
        err = raised(m.predict, np.zeros((3, 5), np.float32))
        assert type(err) is nnlib.ShapeMismatchError
        assert err.code == nnlib.Status.SHAPE_MISMATCH == -3
        assert err.message == ("input has 5 features per sample, model "
                               "expects 2")
        err = raised(m.step, X, np.zeros((3, 1), np.float32))
        assert type(err) is nnlib.ShapeMismatchError
        assert "target has 3 samples" in err.message


def test_compile_time_shape_mismatch():
    m = nnlib.Model([nnlib.Dense(4, in_features=3)])
    err = raised(m.compile, (2,))
    assert type(err) is nnlib.ShapeMismatchError and err.code == -3
    assert "dense: input has 2 features, layer expects 3" in err.message


def test_wrong_state_and_too_large_and_out_of_range():
    m = nnlib.Model([nnlib.Dense(1, 2)])
    err = raised(m.predict, X)
    assert type(err) is nnlib.WrongStateError and err.code == -5
    assert "not compiled" in err.message
    err = raised(lambda: m.param_count)
    assert type(err) is nnlib.WrongStateError
    m.compile((2,), "mse", "sgd", max_batch=2)
    err = raised(m.step, X, T)  # batch 4 > max batch 2
    assert type(err) is nnlib.TooLargeError and err.code == -7
    err = raised(m.fit, X, T, batch_size=3)
    assert type(err) is nnlib.TooLargeError
    err = raised(m.layers[0].get_param, 5)
    assert type(err) is nnlib.OutOfRangeError and err.code == -16
    err = raised(m.add, nnlib.Dense(1))
    assert type(err) is nnlib.WrongStateError  # after compile
    err = raised(m.compile, (2,))
    assert type(err) is nnlib.WrongStateError  # compiles once
    m.close()
    err = raised(m.predict, X)
    assert type(err) is nnlib.WrongStateError and "closed" in err.message


def test_numerical_error_leaves_weights_untouched():
    with xor_model(lr=0.5, momentum=0.0) as m:
        before = m.get_weights()
        bad = X.copy()
        bad[0, 0] = np.nan
        err = raised(m.step, bad, T)
        assert type(err) is nnlib.NumericalError and err.code == -11
        for a, b in zip(before, m.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_struct_size_error_through_the_raw_layer():
    opts = _lib.OptimizerOptions()
    nnlib.lib.nnlib_optimizer_options_init(ctypes.byref(opts), 1)
    opts.struct_size = 3
    out = ctypes.c_void_p()
    status = nnlib.lib.nnlib_optimizer_create(ctypes.byref(out),
                                              ctypes.byref(opts))
    err = raised(nnlib._core.check, status)
    assert type(err) is nnlib.StructSizeError and err.code == -6
    assert out.value is None


def test_failed_add_consumes_the_layer():
    m = xor_model()
    layer = nnlib.Dense(3)
    err = raised(m.add, layer)  # compiled already: WRONG_STATE, layer freed
    assert type(err) is nnlib.WrongStateError
    assert not layer.owned and layer._handle is None
    layer.close()  # no double free
    err = raised(m.add, layer)
    assert type(err) is nnlib.InvalidArgumentError
    m.close()


def test_a_layer_goes_into_one_model_only():
    layer = nnlib.Dense(3)
    a = nnlib.Model([layer])
    err = raised(nnlib.Model, [layer])
    assert type(err) is nnlib.InvalidArgumentError
    assert layer._model is a and not layer.owned
    layer.close()  # a no-op: the model owns it
    a.close()


def test_failed_compile_consumes_the_optimizer():
    m = nnlib.Model([nnlib.Dense(4, in_features=3)])
    opt = nnlib.SGD(0.1)
    err = raised(m.compile, (2,), "mse", opt)
    assert type(err) is nnlib.ShapeMismatchError
    assert opt._handle is None
    err = raised(lambda: opt.learning_rate)
    assert type(err) is nnlib.WrongStateError
    opt.close()
    err = raised(m.compile, (3,), "mse", opt)  # already consumed
    assert type(err) is nnlib.InvalidArgumentError
    m.close()


def test_optimizer_needs_a_loss():
    m = nnlib.Model([nnlib.Dense(1, 2)])
    err = raised(m.compile, (2,), "none", nnlib.SGD())
    assert type(err) is nnlib.InvalidArgumentError
    assert "optimizer needs a loss" in err.message
    err = raised(m.compile, (2,), "hinge")
    assert type(err) is nnlib.InvalidArgumentError


@needs("nnlib_model_add_spec")
def test_parse_error():
    m = nnlib.Model()
    err = raised(m.add_spec, "dense:4,bogus")
    assert type(err) is nnlib.ParseError and err.code == -17
    assert "bogus" in err.message
    assert len(m.layers) == 0  # nothing added on failure


@needs("nnlib_model_load")
def test_file_errors(tmp_path):
    err = raised(nnlib.Model.load, tmp_path / "missing.nnl")
    assert type(err) is nnlib.IOError_ and err.code == -8
    junk = tmp_path / "junk.nnl"
    junk.write_bytes(b"this is not a model file at all" * 4)
    err = raised(nnlib.Model.load, junk)
    assert type(err) is nnlib.BadMagicError and err.code == -12


# ------------------------------------------------------------------ seeds

UINT64_MAX = 2 ** 64 - 1


def exactly_invalid_argument(fn, *args, **kwargs):
    """fn(...) raises InvalidArgumentError itself (code -1) and says why."""
    with pytest.raises(nnlib.InvalidArgumentError) as info:
        fn(*args, **kwargs)
    assert type(info.value) is nnlib.InvalidArgumentError
    assert info.value.code == nnlib.Status.INVALID_ARGUMENT == -1
    assert "2**64 - 1" in info.value.message
    return info.value


@pytest.mark.parametrize("seed", [-1, -(2 ** 63), UINT64_MAX + 1])
def test_compile_refuses_a_seed_outside_uint64(seed):
    opt = nnlib.SGD(0.1)
    with nnlib.Model([nnlib.Dense(1, 2)]) as m:
        exactly_invalid_argument(m.compile, (2,), "mse", opt, max_batch=1,
                                 seed=seed)
        # refused before the model took the optimizer
        assert opt._model is None and opt._handle is not None
        m.compile((2,), "mse", opt, max_batch=1, seed=UINT64_MAX)  # the top
        assert m.optimizer.learning_rate == pytest.approx(0.1)
    opt.close()


def test_compile_seed_uint64_max_is_not_the_same_as_minus_one_wrapped():
    # the boundary seeds are taken as they are: 2**64 - 1 and 0 differ
    weights = []
    for seed in (UINT64_MAX, 0):
        with nnlib.Model([nnlib.Dense(3, 2)]) as m:
            m.compile((2,), max_batch=1, seed=seed)
            weights.append(m.layers[0].weight)
    assert not np.array_equal(weights[0], weights[1])


@needs("nnlib_text_from_bytes")
def test_text_refuses_a_negative_seed():
    exactly_invalid_argument(nnlib.Text.from_bytes, b"abc" * 100, seed=-1)


@needs("nnlib_model_generate")
def test_generate_refuses_a_negative_seed():
    with nnlib.Model("input:4,embedding:256:8,linear:256") as m:
        m.compile(max_batch=1, seed=1)
        assert m.generate(b"ab", 2, seed=UINT64_MAX).shape == (2,)
        exactly_invalid_argument(m.generate, b"ab", 2, seed=-1)


def test_gradcheck_refuses_a_negative_seed():
    with xor_model() as m:
        exactly_invalid_argument(m.gradcheck, X, T, random_direction=True,
                                 seed=-1)


@needs("nnlib_model_load_onnx_buffer")
def test_from_onnx_refuses_a_negative_seed():
    with xor_model() as m:
        data = m.to_onnx()
    opt = nnlib.SGD(0.1)
    exactly_invalid_argument(nnlib.Model.from_onnx, data, loss="mse",
                             optimizer=opt, seed=-1)
    assert opt._model is None and opt._handle is not None  # not taken
    opt.close()


# ---------------------------------------------------------- unknown names

@pytest.mark.parametrize("make, name", [
    (lambda: nnlib.Optimizer("nope"), "nope"),
    (lambda: nnlib.Adam(schedule="sometimes"), "sometimes"),
    (lambda: nnlib.Activation("swish"), "swish"),
    (lambda: nnlib.RNN(3, nonlinearity="sigmoid"), "sigmoid"),
    (lambda: nnlib.Model([nnlib.Dense(1, 2)]).compile(
        (2,), "mse", optimizer="adagrad"), "adagrad"),
])
def test_unknown_names_raise_invalid_argument_that_is_also_a_key_error(
        make, name):
    with pytest.raises(nnlib.UnknownNameError) as info:
        make()
    err = info.value
    # the binding's error, as the library's refusals are ...
    assert isinstance(err, nnlib.InvalidArgumentError)
    assert isinstance(err, nnlib.Error) and isinstance(err, ValueError)
    assert err.code == nnlib.Status.INVALID_ARGUMENT
    # ... and still what callers caught before
    assert isinstance(err, KeyError)
    assert err.name == name
    assert repr(name) in str(err) and "known:" in str(err)
    assert not str(err).startswith('"')  # not KeyError's quoted repr


def test_known_names_in_any_case_still_work():
    assert nnlib.Optimizer("AdamW").kind == nnlib.OptimizerKind.ADAMW
    assert nnlib.SGD(schedule="Cosine", total_steps=10).options[
        "schedule"] == nnlib.Schedule.COSINE
    with nnlib.Activation("Gelu_Tanh") as a:
        assert a.kind == nnlib.LayerKind.ACTIVATION
    with nnlib.RNN(2, nonlinearity="ReLU") as r:
        assert r.kind == nnlib.LayerKind.RNN


# --------------------------------------------------- gradcheck's defaults

def test_gradcheck_defaults_are_the_libraries(monkeypatch):
    from nnlib._core import lib
    defaults = _lib.GradcheckOptions()
    assert lib.nnlib_gradcheck_options_init(ctypes.byref(defaults)) == 0
    real, seen = lib.nnlib_model_gradcheck, []

    def spy(model, x, target, options, err):
        seen.append((options._obj.seed, options._obj.step))
        return real(model, x, target, options, err)

    monkeypatch.setattr(lib, "nnlib_model_gradcheck", spy)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    with xor_model() as m:
        default = m.gradcheck(x, y, random_direction=True)
        explicit = m.gradcheck(x, y, random_direction=True, seed=1)
        m.gradcheck(x, y, random_direction=True, seed=0)
    assert seen[0] == (defaults.seed, defaults.step)
    assert defaults.seed == 1  # nnlib.h: "default 1"
    assert seen[1][0] == 1 and seen[2][0] == 0
    assert default == explicit
