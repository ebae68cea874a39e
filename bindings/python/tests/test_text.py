"""Library 1.4 through the bindings: int32 token ids and class indices, the
text layers, Text corpora, generation and warmup_steps.

References are independent of the library's own arithmetic: numpy
(softmax cross-entropy, arg-max accuracy, GELU by its formula, a greedy
decode by re-running predict, the SGD update of a warmup step) and the
corpus bytes themselves."""

import ctypes
import math

import numpy as np
import pytest

import nnlib
from conftest import needs

pytestmark = needs("nnlib_model_generate", "nnlib_text_from_bytes",
                   "nnlib_tensor_create_int32")

SENTENCE = b"the quick brown fox jumps over the lazy dog. "
CORPUS = SENTENCE * 40   # 1800 bytes: 1620 train, 180 valid
T = 16
GPT = ("input:%d,embedding:256:32,positional,transformer:32:2:causal,"
       "layernorm,linear:256" % T)


def gpt(seed=1, optimizer=None, max_batch=8):
    model = nnlib.Model(GPT)
    model.compile(loss="softmax_ce",
                  optimizer=optimizer or nnlib.AdamW(3e-3, warmup_steps=5),
                  max_batch=max_batch, seed=seed)
    return model


@pytest.fixture(scope="module")
def trained():
    """A tiny GPT trained for 60 steps on the repeated sentence, with the
    losses of its steps."""
    text = nnlib.Text.from_bytes(CORPUS, valid_fraction=0.1, seed=3)
    model = gpt()
    losses = []
    for _ in range(60):
        x, y = text.sample("train", 8, T)
        losses.append(model.step(x, y))
    yield model, text, losses
    model.close()
    text.close()


def softmax_ce_reference(logits, targets):
    """Mean cross-entropy over every position and the arg-max accuracy,
    in float64."""
    z = logits.astype(np.float64).reshape(-1, logits.shape[-1])
    t = np.asarray(targets).reshape(-1)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(len(t)), t].mean()
    accuracy = (z.argmax(axis=1) == t).mean()
    return loss, accuracy


# ------------------------------------------------------------ training


def test_tiny_gpt_from_a_description_learns_the_sentence(trained):
    model, _, losses = trained
    assert model.input_shape == (T,) and model.output_shape == (T, 256)
    assert model._input_dtypes() == [nnlib.DType.INT32]
    # an untrained model is near log(256) = 5.55; 60 steps on a 45-byte
    # cycle bring it far below that
    assert abs(np.mean(losses[:3]) - math.log(256)) < 0.7
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert all(np.isfinite(losses))


def test_evaluate_with_int_targets_matches_numpy(trained):
    model, text, _ = trained
    n = text.window_count("valid", T)
    x, y = text.windows("valid", 0, n, T)
    loss, accuracy = model.evaluate(x, y)
    ref_loss, ref_accuracy = softmax_ce_reference(model.predict(x), y)
    assert loss == pytest.approx(ref_loss, rel=1e-4, abs=1e-5)
    assert accuracy == pytest.approx(ref_accuracy, abs=1e-6)
    assert accuracy > 0.5  # it learned the sentence
    # int64 ids and targets (checked, converted once) and float class
    # indices (the 1.3 target form) give the same numbers
    assert model.evaluate(x.astype(np.int64), y.astype(np.int64)) == \
        (loss, accuracy)
    assert model.evaluate(x, y.astype(np.float32)) == (loss, accuracy)


def test_int_ids_of_any_width_give_the_same_predictions(trained):
    model, text, _ = trained
    x, _ = text.windows("train", 0, 3, T)
    ref = model.predict(x)
    for dtype in (np.int64, np.int16, np.uint8, np.uint32):
        np.testing.assert_array_equal(model.predict(x.astype(dtype)), ref)
    np.testing.assert_array_equal(model.predict(x.tolist()), ref)
    # a non-contiguous int32 array is copied once
    wide = np.repeat(x, 2, axis=1)[:, ::2]
    np.testing.assert_array_equal(model.predict(wide), ref)


def test_fit_takes_token_ids_and_int_targets():
    text = nnlib.Text.from_bytes(CORPUS, seed=5)
    x, y = text.windows("train", 0, text.window_count("train", T), T)
    with gpt(seed=2) as model:
        before, _ = model.evaluate(x, y)
        history = model.fit(x, y.astype(np.int64), epochs=3, batch_size=8,
                            validation=text.windows("valid", 0, 5, T))
        after, _ = model.evaluate(x, y)
    assert len(history) == 3 and len(history.validation_losses) == 3
    assert after < before


# ----------------------------------------------------- ids: bad inputs


def test_int64_ids_outside_int32_are_a_value_error(trained):
    model, text, _ = trained
    x, y = text.windows("train", 0, 2, T)
    big = x.astype(np.int64)
    big[1, 3] = 2 ** 31
    with pytest.raises(ValueError) as e:
        model.predict(big)
    assert isinstance(e.value, nnlib.OutOfRangeError)
    assert "2147483648" in str(e.value) and "(1, 3)" in str(e.value)
    small = x.astype(np.int64)
    small[0, 0] = -2 ** 31 - 5
    with pytest.raises(ValueError, match="-2147483653"):
        model.step(small, y)
    targets = y.astype(np.int64)
    targets[1, 0] = 2 ** 31
    with pytest.raises(ValueError, match="class index targets.*2147483648"):
        model.evaluate(x, targets)
    # inside int32 but outside the vocabulary: the library's own check
    x2 = x.copy()
    x2[0, 5] = 256
    err = pytest.raises(nnlib.OutOfRangeError, model.predict, x2).value
    assert err.code == nnlib.Status.OUT_OF_RANGE and "256" in err.message


def test_float_ids_into_an_embedding_model_are_refused(trained):
    model, text, _ = trained
    x, y = text.windows("train", 0, 2, T)
    for bad in (x.astype(np.float32), x.astype(np.float64) + 0.5):
        with pytest.raises(TypeError) as e:
            model.predict(bad)
        assert isinstance(e.value, nnlib.DtypeError)
        assert e.value.code == nnlib.Status.DTYPE == -19
        assert "int32" in str(e.value) and "token ids" in str(e.value)
    with pytest.raises(nnlib.DtypeError):
        model.step(x.astype(np.float32), y)


def test_the_library_refuses_a_float_tensor_for_token_ids(trained):
    """The same through the raw call: NNLIB_ERR_DTYPE with the library's
    message."""
    model, text, _ = trained
    x, _ = text.windows("train", 0, 1, T)
    out = np.zeros((1, T, 256), np.float32)
    with nnlib.Tensor.wrap(x.astype(np.float32)) as tx, \
            nnlib.Tensor.wrap(out) as ty:
        status = nnlib.lib.nnlib_model_predict(model._ptr(), tx._ptr(),
                                               ty._ptr())
    err = pytest.raises(nnlib.DtypeError, nnlib._core.check, status).value
    assert err.code == -19 and "int32" in err.message
    assert err.status == "wrong element type"


def test_feature_models_still_take_integer_arrays_as_floats():
    """1.3 behaviour kept: a model without an embedding converts integer
    inputs (and mse targets) to float32."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    with nnlib.Model([nnlib.Dense(3, 2), nnlib.Tanh(), nnlib.Dense(1)]) as m:
        m.compile((2,), "mse", nnlib.SGD(0.1), max_batch=4, seed=3)
        assert m._input_dtypes() == [nnlib.DType.FLOAT32]
        np.testing.assert_array_equal(m.predict(x),
                                      m.predict(x.astype(np.float32)))
        assert m.evaluate(x, x[:, :1])[0] == \
            m.evaluate(x, x[:, :1].astype(np.float32))[0]


def test_softmax_ce_targets_int_indices_and_int_one_hot_rows():
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 2, 1, 2, 0, 1])
    with nnlib.Model([nnlib.Dense(3, 4)]) as m:
        m.compile((4,), "softmax_ce", max_batch=6, seed=1)
        ref = softmax_ce_reference(m.predict(x), labels)
        for target in (labels, labels.astype(np.int32),
                       labels.astype(np.float32),
                       np.eye(3, dtype=np.int64)[labels],   # one-hot ints
                       np.eye(3, dtype=np.float32)[labels]):
            loss, accuracy = m.evaluate(x, target)
            assert loss == pytest.approx(ref[0], rel=1e-5)
            assert accuracy == pytest.approx(ref[1])
        err = pytest.raises(nnlib.OutOfRangeError, m.evaluate, x,
                            np.array([0, 1, 2, 3, 0, 1])).value
        assert err.code == nnlib.Status.OUT_OF_RANGE


# --------------------------------------------------------------- tensors


@pytest.mark.parametrize("value", [2 ** 24 + 1, -(2 ** 24) - 3, 123456789,
                                   2 ** 31 - 1, -(2 ** 31), 16777217.0])
def test_int32_fill_is_exact_beyond_float_precision(value):
    """nnlib_tensor_fill takes a float, exact for integers up to 2^24
    only: 16777217 used to land as 16777216, and 2^31 - 1 (rounded to
    2^31) was refused as out of range."""
    t = nnlib.Tensor((3,), np.int32)
    t.fill(value)
    np.testing.assert_array_equal(t.numpy(), np.full(3, int(value), np.int64))


@pytest.mark.parametrize("value", [2 ** 31, -(2 ** 31) - 1, 2.5e9, 0.5])
def test_int32_fill_refuses_what_int32_does_not_hold(value):
    t = nnlib.Tensor((3,), np.int32)
    t.fill(5)
    with pytest.raises(nnlib.InvalidArgumentError) as e:
        t.fill(value)
    assert e.value.code == nnlib.Status.INVALID_ARGUMENT
    np.testing.assert_array_equal(t.numpy(), [5, 5, 5])  # unchanged


def test_int32_tensors_round_trip():
    t = nnlib.Tensor((2, 3), np.int32)
    assert t.dtype == np.int32 and t.shape == (2, 3)
    np.testing.assert_array_equal(t.numpy(), np.zeros((2, 3), np.int32))
    assert t.numpy().dtype == np.int32
    t.fill(7)
    assert np.all(t.numpy() == 7)
    with pytest.raises(nnlib.InvalidArgumentError):
        t.fill(0.5)  # the library stores int32 fills as integers only
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    with nnlib.Tensor.wrap(a, np.int32) as w:
        view = w.numpy()
        assert np.shares_memory(view, a)  # zero-copy
        t.copy_from(w)
    np.testing.assert_array_equal(t.numpy(), a)
    with nnlib.Tensor.wrap(np.arange(6, dtype=np.int64), "int32") as w:
        assert w.dtype == np.int32 and list(w.numpy()) == list(range(6))
    with pytest.raises(nnlib.OutOfRangeError):
        nnlib.Tensor.wrap(np.array([2 ** 40]), np.int32)
    with pytest.raises(nnlib.DtypeError):
        nnlib.Tensor.wrap(np.array([1.0, 2.0]), np.int32)
    # float <-> int32 copies are the library's NNLIB_ERR_DTYPE
    with nnlib.Tensor((2, 3)) as f:
        err = pytest.raises(nnlib.DtypeError, f.copy_from, t).value
        assert err.code == -19
        assert nnlib.Tensor.wrap(np.zeros(2)).dtype == np.float32
    t.close()


# ----------------------------------------------------------- generation


def test_generate_is_reproducible_and_the_cache_changes_nothing(trained):
    model, _, _ = trained
    prompt = b"the quick"
    count = T - len(prompt)  # prompt + count <= context
    a = model.generate(prompt, count, seed=11)
    b = model.generate(prompt, count, seed=11)
    c = model.generate(prompt, count, seed=11, use_cache=False)
    assert a.dtype == np.int32 and a.shape == (count,)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, model.generate(prompt, count, seed=12,
                                                temperature=3.0))
    # the prompt's three spellings are one prompt
    ids = np.frombuffer(prompt, np.uint8)
    np.testing.assert_array_equal(model.generate("the quick", count,
                                                 seed=11), a)
    np.testing.assert_array_equal(model.generate(list(ids), count, seed=11),
                                  a)
    np.testing.assert_array_equal(
        model.generate(ids.astype(np.int64), count, seed=11), a)
    assert model.generate_bytes(prompt, count, seed=11) == bytes(a.tolist())


def test_greedy_generation_matches_rerunning_predict(trained):
    """top_k = 1 is the arg-max: each new token is the arg-max of the
    logits predict gives at the last filled position (zeros after it do
    not matter to a causal model)."""
    model, _, _ = trained
    prompt = list(b"the la")
    got = model.generate(prompt, T - len(prompt), top_k=1, seed=3)
    window = list(prompt)
    for token in got:
        x = np.zeros((1, T), np.int32)
        x[0, :len(window)] = window
        logits = model.predict(x)[0, len(window) - 1]
        assert token == int(np.argmax(logits))
        window.append(int(token))
    # the sentence it was trained on continues
    assert bytes(window).startswith(b"the lazy")


def test_generate_past_the_context_with_and_without_cache(trained):
    model, _, _ = trained
    long = model.generate(b"the", 40, seed=4)
    assert long.shape == (40,) and long.min() >= 0 and long.max() < 256
    np.testing.assert_array_equal(long, model.generate(b"the", 40, seed=4))
    assert model.generate(b"the", 0).shape == (0,)


def test_generate_errors_carry_the_library_status(trained):
    model, _, _ = trained
    for temperature in (0.0, -1.0, float("nan")):
        err = pytest.raises(nnlib.InvalidArgumentError, model.generate,
                            b"the", 4, temperature=temperature).value
        assert err.code == nnlib.Status.INVALID_ARGUMENT == -1
        assert "temperature" in err.message
        assert err.status == nnlib.lib.nnlib_status_string(-1).decode()
    assert pytest.raises(nnlib.InvalidArgumentError, model.generate, b"the",
                         4, top_k=-1).value.code == -1
    assert pytest.raises(nnlib.InvalidArgumentError, model.generate, b"",
                         4).value.code == -1
    assert pytest.raises(nnlib.InvalidArgumentError, model.generate, b"the",
                         -1).value.code == -1
    assert pytest.raises(nnlib.TooLargeError, model.generate, b"x" * (T + 1),
                         1).value.code == nnlib.Status.TOO_LARGE
    assert pytest.raises(nnlib.OutOfRangeError, model.generate, [1, 300],
                         1).value.code == nnlib.Status.OUT_OF_RANGE
    with pytest.raises(nnlib.DtypeError):
        model.generate([1.0, 2.0], 1)
    with pytest.raises(ValueError):
        model.generate([1, 2 ** 33], 1)


def test_generate_needs_a_language_model():
    with nnlib.Model([nnlib.Dense(3, 4)]) as m:
        m.compile((4,), max_batch=2)
        err = pytest.raises(nnlib.Error, m.generate, [1, 2], 3).value
        assert err.code in (nnlib.Status.UNSUPPORTED, nnlib.Status.DTYPE)


# ----------------------------------------------------------------- text


def test_text_splits_and_bytes():
    with nnlib.Text.from_bytes(CORPUS, valid_fraction=0.1, seed=3) as text:
        train, valid = text.size("train"), text.size("valid")
        assert train + valid == len(CORPUS) == len(text)
        assert train == 1620
        assert text.bytes("train") + text.bytes(nnlib.TextSplit.VALID) \
            == CORPUS
        assert text.vocab_size == 256
    with nnlib.Text.from_bytes("héllo", valid_fraction=0.0) as text:
        assert text.bytes() == "héllo".encode() and text.size("valid") == 0
    with nnlib.Text.from_bytes(b"") as empty:
        assert len(empty) == 0
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Text.from_bytes(CORPUS, valid_fraction=1.0)


def test_text_sample_draws_windows_of_the_split():
    data = bytes(range(256)) * 8  # every window is unique by its start
    a = nnlib.Text.from_bytes(data, valid_fraction=0.25, seed=9)
    b = nnlib.Text.from_bytes(data, valid_fraction=0.25, seed=9)
    train = a.bytes("train")
    x, y = a.sample("train", 6, 10)
    assert x.dtype == y.dtype == np.int32 and x.shape == y.shape == (6, 10)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x, y):
        window = bytes(row_x.tolist()) + bytes(row_y[-1:].tolist())
        assert window in train
    x2, y2 = b.sample("train", 6, 10)  # same seed, same batch
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = a.sample("train", 6, 10)  # the generator advanced
    assert not np.array_equal(x, x3)
    valid = a.bytes("valid")
    vx, vy = a.sample("valid", 3, 20)
    for row_x, row_y in zip(vx, vy):
        assert bytes(row_x.tolist()) + bytes(row_y[-1:].tolist()) in valid
    err = pytest.raises(nnlib.TooLargeError, a.sample, "valid", 1,
                        len(valid)).value
    assert err.code == nnlib.Status.TOO_LARGE
    a.close()
    b.close()


def test_text_windows_cover_the_split_in_order():
    with nnlib.Text.from_bytes(CORPUS, seed=3) as text:
        valid = text.bytes("valid")
        n = text.window_count("valid", T)
        assert n == (len(valid) - 1) // T
        x, y = text.windows("valid", 0, n, T)
        for i in range(n):
            assert bytes(x[i].tolist()) == valid[i * T:(i + 1) * T]
            assert bytes(y[i].tolist()) == valid[i * T + 1:(i + 1) * T + 1]
        x1, _ = text.windows("valid", 2, 3, T)
        np.testing.assert_array_equal(x1, x[2:5])
        err = pytest.raises(nnlib.OutOfRangeError, text.windows, "valid",
                            n - 1, 2, T).value
        assert err.code == nnlib.Status.OUT_OF_RANGE


def test_text_load_reads_files_and_directories(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "b.txt").write_bytes(b"second ")
    (d / "a.txt").write_bytes(b"first ")
    (d / ".hidden").write_bytes(b"never ")
    (d / "a.dat").write_bytes(b"index ")
    (d / "sub").mkdir()
    (d / "sub" / "c.txt").write_bytes(b"nested ")
    single = tmp_path / "z.txt"
    single.write_bytes(b"last")
    with nnlib.Text.load([d, str(single)], valid_fraction=0.0) as text:
        assert text.bytes() == b"first second last"
    with nnlib.Text.load(single, valid_fraction=0.0) as text:
        assert text.bytes() == b"last"
    err = pytest.raises(nnlib.IOError_, nnlib.Text.load,
                        tmp_path / "missing").value
    assert err.code == nnlib.Status.IO and "missing" in err.message


# --------------------------------------------------------------- layers


def functional_gpt(vocab, dim, heads):
    """The layers the description "input:T,embedding:V:D,positional,
    transformer:D:H:causal,layernorm,linear:V" makes, through the
    constructors and the functional API."""
    ids = nnlib.Input((T,))
    h = nnlib.Positional()(nnlib.Embedding(vocab, dim)(ids))
    a = nnlib.Attention(heads, causal=True)(nnlib.LayerNorm()(h))
    r = h + a
    m = nnlib.Linear(4 * dim)(nnlib.LayerNorm(eps=1e-5)(r))
    m = nnlib.Linear(dim)(nnlib.GELU()(m))
    out = nnlib.Linear(vocab)(nnlib.LayerNorm()(r + m))
    return nnlib.Model(inputs=ids, outputs=out)


def test_constructors_build_what_the_description_builds():
    with functional_gpt(40, 16, 2) as f, nnlib.Model(
            "input:%d,embedding:40:16,positional,transformer:16:2:causal,"
            "layernorm,linear:40" % T) as d:
        f.compile(max_batch=2, seed=1)
        d.compile(max_batch=2, seed=2)
        assert [l.name for l in f.layers] == [l.name for l in d.layers]
        assert [l.param_names for l in f.layers] == \
            [l.param_names for l in d.layers]
        d.set_weights(f.get_weights())
        x = np.random.default_rng(1).integers(0, 40, size=(2, T))
        np.testing.assert_allclose(f.predict(x), d.predict(x), rtol=1e-5,
                                   atol=1e-5)
        # causal: changing the last token leaves earlier positions alone
        x2 = x.copy()
        x2[:, -1] = (x2[:, -1] + 1) % 40
        np.testing.assert_array_equal(f.predict(x2)[:, :-1],
                                      f.predict(x)[:, :-1])
        kinds = {type(l).__name__ for l in f.layers}
        assert {"Embedding", "Positional", "LayerNorm", "Attention",
                "Linear", "Add", "Activation"} <= kinds


def test_layer_options_reach_the_library():
    ids = nnlib.Input((6,))
    e = nnlib.Embedding(10, 8)
    p = nnlib.Positional(max_positions=12)
    n = nnlib.LayerNorm(affine=False)
    a = nnlib.Attention(4, bias=False)
    lin = nnlib.Linear(5, bias=False)
    out = lin(a(n(p(e(ids)))))
    with nnlib.Model(inputs=ids, outputs=out) as m:
        m.compile(max_batch=1)
        assert e.get_param("weight").shape == (10, 8)
        assert p.get_param("weight").shape == (12, 8)
        assert n.param_names == []
        assert a.param_names == ["in_proj_weight", "out_proj.weight"]
        assert lin.param_names == ["weight"]
        assert lin.output_shape == (6, 5)
        assert e.kind == nnlib.LayerKind.EMBEDDING
        assert a.kind == nnlib.LayerKind.ATTENTION
        assert "attention:4:nobias" in m.spec
        assert "positional:12" in m.spec
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Attention(0)
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Attention(2, dropout=1.0)
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Embedding(0, 4)
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.LayerNorm(eps=0.0)


@pytest.mark.parametrize("layer, reference", [
    (lambda: nnlib.GELU(),
     lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    (lambda: nnlib.Activation("gelu_tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                      * (x + 0.044715 * x ** 3)))),
    (lambda: nnlib.Activation("gelu"),
     lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
])
def test_gelu_activations_match_their_formulas(layer, reference):
    x = np.linspace(-6, 6, 49).reshape(1, 49)
    with nnlib.Model([layer()]) as m:
        m.compile((49,), max_batch=1)
        np.testing.assert_allclose(m.predict(x), reference(x), rtol=1e-5,
                                   atol=1e-6)
    assert nnlib.GELUTanh().kind == nnlib.LayerKind.ACTIVATION


def test_save_and_load_keep_a_gpt(tmp_path, trained):
    model, text, _ = trained
    path = tmp_path / "gpt.nnl"
    model.save(path, optimizer=True)
    info = nnlib.model_file_info(path)
    assert info["format_version"] == 3  # warmup_steps needs version 3
    x, _ = text.windows("valid", 0, 2, T)
    with nnlib.Model.load(path) as again:
        np.testing.assert_array_equal(again.predict(x), model.predict(x))
        assert again.optimizer.options["warmup_steps"] == 5
        np.testing.assert_array_equal(again.generate(b"the", 8, seed=2),
                                      model.generate(b"the", 8, seed=2))


# -------------------------------------------------------------- warmup


def test_warmup_steps_scale_the_first_updates():
    """Plain SGD on mse: step t < W moves the weights by lr (t + 1) / W
    times the gradient that backward leaves (independent of the
    library's update arithmetic)."""
    x = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
    y = np.array([[1.0], [0.0]], np.float32)
    lr, warmup = 0.1, 4
    opt = nnlib.SGD(lr, warmup_steps=warmup)
    with nnlib.Model([nnlib.Dense(1, 2, bias=False)]) as m:
        m.compile((2,), "mse", opt, max_batch=2, seed=5)
        assert m.optimizer.options["warmup_steps"] == warmup
        layer = m.layers[0]
        for t in range(warmup + 2):
            w = layer.get_param("weight").astype(np.float64)
            m.backward(x, y)
            g = layer.get_grad("weight").astype(np.float64)
            m.step(x, y)
            scale = (t + 1) / warmup if t < warmup else 1.0
            np.testing.assert_allclose(layer.get_param("weight"),
                                       w - lr * scale * g, rtol=1e-5,
                                       atol=1e-7)
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.SGD(0.1, warmup_steps=-1)
    assert nnlib.Adam().options["warmup_steps"] == 0


def test_version_is_1_5():
    assert nnlib.__version__ == "1.7.0"
    assert nnlib.version() >= 10500
    assert nnlib.lib.nnlib_version_string().decode() == \
        nnlib.version_string()
    assert ctypes.sizeof(nnlib._lib.GenerateOptions) > 0
