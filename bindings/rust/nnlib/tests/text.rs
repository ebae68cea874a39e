//! Library 1.4 through the safe crate, mirroring the Python bindings'
//! test_text.py: a tiny GPT from a description learns a repeated sentence
//! from a `Text`; evaluate with int32 targets matches a softmax
//! cross-entropy and arg-max accuracy computed here from `predict_ids`;
//! generation is reproducible, the cache changes nothing, and greedy
//! decoding equals re-running predict; checked i64 -> i32 conversion;
//! float features into an embedding model and bad options give the
//! library's statuses; Text windows are the corpus bytes; the layer
//! constructors build what the description builds; warmup_steps scales
//! the first SGD updates.

use nnlib::{
    checked_ids, AttentionOptions, Dtype, FitOptions, GenerateOptions, IntTensor, Layer, LayerKind, Loss, Model,
    Optimizer, OptimizerKind, Result, Status, Text, TextSplit,
};

const SENTENCE: &[u8] = b"the quick brown fox jumps over the lazy dog. ";
const T: usize = 16;

fn corpus() -> Vec<u8> {
    SENTENCE.repeat(40) // 1800 bytes: 1620 train, 180 valid
}

fn gpt_spec() -> String {
    format!("input:{},embedding:256:32,positional,transformer:32:2:causal,layernorm,linear:256", T)
}

fn gpt(seed: u64) -> Result<Model> {
    let mut m = Model::from_spec(&gpt_spec())?;
    m.compile_graph(8, Loss::SoftmaxCe, Some(Optimizer::with_warmup(OptimizerKind::AdamW, 3e-3, 5)?), seed)?;
    Ok(m)
}

/// A tiny GPT trained for 60 steps on the sentence, its text and losses.
fn trained() -> Result<(Model, Text, Vec<f32>)> {
    let mut text = Text::from_bytes(&corpus(), 0.1, 3)?;
    let mut m = gpt(1)?;
    let mut losses = Vec::new();
    for _ in 0..60 {
        let (x, y) = text.sample(TextSplit::Train, 8, T)?;
        losses.push(m.step_ids(&x, &y)?);
    }
    Ok((m, text, losses))
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

/// Mean cross-entropy over every row of `logits` ([rows, classes]) and the
/// arg-max accuracy, in f64.
fn softmax_ce(logits: &[f32], targets: &[i32], classes: usize) -> (f64, f64) {
    let mut loss = 0.0;
    let mut correct = 0usize;
    for (row, &t) in logits.chunks(classes).zip(targets) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let sum: f64 = row.iter().map(|&z| (z as f64 - max).exp()).sum();
        loss -= row[t as usize] as f64 - max - sum.ln();
        if argmax(row) == t as usize {
            correct += 1;
        }
    }
    (loss / targets.len() as f64, correct as f64 / targets.len() as f64)
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

// ------------------------------------------------------------- training

#[test]
fn tiny_gpt_from_a_description_learns_the_sentence() -> Result<()> {
    let (m, _, losses) = trained()?;
    assert_eq!(m.input_shape()?, vec![T as i64]);
    assert_eq!(m.output_shape()?, vec![T as i64, 256]);
    // untrained: near ln 256 = 5.55; 60 steps on a 45-byte cycle: far below
    assert!((mean(&losses[..3]) - 256f64.ln()).abs() < 0.7, "{:?}", &losses[..3]);
    assert!(mean(&losses[55..]) < 0.5 * mean(&losses[..5]), "{:?}", losses);
    assert!(losses.iter().all(|l| l.is_finite()));
    Ok(())
}

#[test]
fn evaluate_with_int_targets_matches_a_reference() -> Result<()> {
    let (mut m, text, _) = trained()?;
    let n = text.window_count(TextSplit::Valid, T);
    let (x, y) = text.windows(TextSplit::Valid, 0, n, T)?;
    let (loss, accuracy) = m.evaluate_ids(&x, &y)?;
    let (ref_loss, ref_accuracy) = softmax_ce(&m.predict_ids(&x)?, &y, 256);
    let loss = loss.expect("compiled with a loss") as f64;
    assert!((loss - ref_loss).abs() < 1e-4 * ref_loss.max(1.0), "{} vs {}", loss, ref_loss);
    assert!((accuracy as f64 - ref_accuracy).abs() < 1e-6, "{} vs {}", accuracy, ref_accuracy);
    assert!(accuracy > 0.5);
    // backward on one window gives the same loss as evaluate on it
    let (x1, y1) = text.windows(TextSplit::Valid, 0, 1, T)?;
    let (l1, _) = m.evaluate_ids(&x1, &y1)?;
    assert_eq!(m.backward_ids(&x1, &y1)?, l1.unwrap());
    Ok(())
}

#[test]
fn fit_takes_token_ids_and_class_indices() -> Result<()> {
    let text = Text::from_bytes(&corpus(), 0.1, 5)?;
    let (x, y) = text.windows(TextSplit::Train, 0, text.window_count(TextSplit::Train, T), T)?;
    let mut m = gpt(2)?;
    let (before, _) = m.evaluate_ids(&x, &y)?;
    let losses = m.fit_ids(&x, &y, FitOptions { epochs: 3, batch_size: 8, ..Default::default() })?;
    let (after, _) = m.evaluate_ids(&x, &y)?;
    assert_eq!(losses.len(), 3);
    assert!(after.unwrap() < before.unwrap());
    Ok(())
}

// ----------------------------------------------------- ids: bad inputs

#[test]
fn i64_ids_outside_i32_are_refused_with_the_value() -> Result<()> {
    assert_eq!(checked_ids(&[0, -5, i32::MAX as i64, i32::MIN as i64])?, vec![0, -5, i32::MAX, i32::MIN]);
    let e = checked_ids(&[1, 2, 1 << 31]).unwrap_err();
    assert_eq!(e.status, Status::OutOfRange);
    assert!(e.message.contains("2147483648") && e.message.contains("index 2"), "{}", e.message);
    let e = checked_ids(&[-(1 << 31) - 5]).unwrap_err();
    assert!(e.message.contains("-2147483653"), "{}", e.message);
    let e = IntTensor::from_i64(&[1, 2, 3, 1 << 40], &[2, 2]).unwrap_err();
    assert_eq!(e.status, Status::OutOfRange);
    // in range: the same ids, and the same predictions as i32 ids
    let (mut m, text, _) = trained()?;
    let (x, _) = text.windows(TextSplit::Train, 0, 2, T)?;
    let wide: Vec<i64> = x.iter().map(|&v| v as i64).collect();
    assert_eq!(m.predict_ids(&checked_ids(&wide)?)?, m.predict_ids(&x)?);
    // inside i32 but outside the vocabulary: the library's check
    let mut bad = x.clone();
    bad[5] = 256;
    let e = m.predict_ids(&bad).unwrap_err();
    assert_eq!(e.status, Status::OutOfRange);
    assert!(e.message.contains("256"), "{}", e.message);
    Ok(())
}

#[test]
fn float_features_into_an_embedding_model_are_a_dtype_error() -> Result<()> {
    let (mut m, text, _) = trained()?;
    let (x, y) = text.windows(TextSplit::Train, 0, 2, T)?;
    let floats: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let e = m.predict(&floats).unwrap_err();
    assert_eq!(e.status, Status::Dtype);
    assert_eq!(e.code(), -19);
    assert!(e.message.contains("int32") && e.message.contains("token ids"), "{}", e.message);
    assert_eq!(e.status.text(), "wrong element type");
    let targets: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    assert_eq!(m.step(&floats, &targets).unwrap_err().status, Status::Dtype);
    // and ids into a float model
    let mut dense = Model::new()?.with(Layer::dense(4, 3, true))?;
    dense.compile(&[4], 2, Loss::SoftmaxCe, None, 1)?;
    assert_eq!(dense.predict_ids(&[1, 2, 3, 4]).unwrap_err().status, Status::Dtype);
    Ok(())
}

#[test]
fn class_indices_as_i32_match_float_indices_and_one_hot_rows() -> Result<()> {
    let mut m = Model::new()?.with(Layer::dense(4, 3, true))?;
    m.compile(&[4], 6, Loss::SoftmaxCe, Some(Optimizer::sgd(0.1, 0.0, false, 0.0)?), 1)?;
    let x: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
    let labels = [0i32, 2, 1, 2, 0, 1];
    let as_float: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    let one_hot: Vec<f32> = labels.iter().flat_map(|&l| (0..3).map(move |k| (k == l) as i32 as f32)).collect();
    let (reference, ref_acc) = softmax_ce(&m.predict(&x)?, &labels, 3);
    let (l1, a1) = m.evaluate_classes(&x, &labels)?;
    assert!((l1.unwrap() as f64 - reference).abs() < 1e-5 * reference.max(1.0));
    assert!((a1 as f64 - ref_acc).abs() < 1e-6);
    assert_eq!(m.evaluate(&x, &as_float)?, (l1, a1));
    assert_eq!(m.evaluate(&x, &one_hot)?, (l1, a1));
    assert_eq!(m.evaluate_classes(&x, &[0, 1, 2, 3, 0, 1]).unwrap_err().status, Status::OutOfRange);
    let before = m.step_classes(&x, &labels)?;
    assert!((before as f64 - reference).abs() < 1e-5 * reference.max(1.0));
    Ok(())
}

// --------------------------------------------------------------- tensors

#[test]
fn int_tensors_round_trip() -> Result<()> {
    let mut t = IntTensor::new(&[2, 3])?;
    assert_eq!(t.dtype(), Dtype::Int32);
    assert_eq!(t.shape(), vec![2, 3]);
    assert_eq!(t.as_slice(), &[0; 6]);
    t.fill(7)?;
    assert_eq!(t.as_slice(), &[7; 6]);
    t.fill(i32::MAX)?; // above 2^24: written exactly
    assert_eq!(t.as_slice(), &[i32::MAX; 6]);
    let src = IntTensor::from_slice(&[1, 2, 3, 4, 5, 6], &[3, 2])?;
    t.copy_from(&src)?;
    assert_eq!(t.as_slice(), &[1, 2, 3, 4, 5, 6]);
    assert_eq!(IntTensor::from_i64(&[-1, 9], &[2])?.as_slice(), &[-1, 9]);
    assert_eq!(IntTensor::from_slice(&[1, 2], &[3]).unwrap_err().status, Status::ShapeMismatch);
    assert_eq!(nnlib::Tensor::new(&[2])?.dtype(), Dtype::Float32);
    Ok(())
}

// ----------------------------------------------------------- generation

#[test]
fn generation_is_reproducible_and_the_cache_changes_nothing() -> Result<()> {
    let (mut m, _, _) = trained()?;
    let prompt: Vec<i32> = b"the quick".iter().map(|&b| b as i32).collect();
    let count = T - prompt.len(); // prompt + count <= context
    let o = GenerateOptions { seed: 11, ..Default::default() };
    let a = m.generate(&prompt, count, &o)?;
    assert_eq!(a.len(), count);
    assert_eq!(m.generate(&prompt, count, &o)?, a);
    assert_eq!(m.generate(&prompt, count, &GenerateOptions { use_cache: false, ..o })?, a);
    let hot = GenerateOptions { seed: 12, temperature: 3.0, ..o };
    assert_ne!(m.generate(&prompt, count, &hot)?, a);
    let bytes = m.generate_bytes(b"the quick", count, &o)?;
    assert_eq!(bytes, a.iter().map(|&t| t as u8).collect::<Vec<_>>());
    // past the context: still reproducible
    let long = m.generate(&prompt[..3], 40, &o)?;
    assert_eq!(long.len(), 40);
    assert!(long.iter().all(|&t| (0..256).contains(&t)));
    assert_eq!(m.generate(&prompt[..3], 40, &o)?, long);
    assert!(m.generate(&prompt, 0, &o)?.is_empty());
    Ok(())
}

#[test]
fn greedy_generation_matches_rerunning_predict() -> Result<()> {
    let (mut m, _, _) = trained()?;
    let prompt: Vec<i32> = b"the la".iter().map(|&b| b as i32).collect();
    let greedy = GenerateOptions { top_k: 1, seed: 3, ..Default::default() };
    let got = m.generate(&prompt, T - prompt.len(), &greedy)?;
    let mut window = prompt.clone();
    for &token in &got {
        // causal: the zeros after the filled positions do not matter
        let mut x = vec![0i32; T];
        x[..window.len()].copy_from_slice(&window);
        let logits = m.predict_ids(&x)?;
        let last = window.len() - 1;
        assert_eq!(token as usize, argmax(&logits[last * 256..(last + 1) * 256]));
        window.push(token);
    }
    let text: Vec<u8> = window.iter().map(|&t| t as u8).collect();
    assert!(text.starts_with(b"the lazy"), "{:?}", String::from_utf8_lossy(&text));
    Ok(())
}

#[test]
fn generate_errors_carry_the_library_status() -> Result<()> {
    let (mut m, _, _) = trained()?;
    let p = [116, 104, 101];
    for temperature in [0.0, -1.0, f32::NAN] {
        let e = m.generate(&p, 4, &GenerateOptions { temperature, ..Default::default() }).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        assert_eq!(e.code(), -1);
        assert!(e.message.contains("temperature"), "{}", e.message);
    }
    let status = |r: Result<Vec<i32>>| r.unwrap_err().status;
    assert_eq!(status(m.generate(&p, 4, &GenerateOptions { top_k: -1, ..Default::default() })), Status::InvalidArgument);
    assert_eq!(status(m.generate(&[], 4, &GenerateOptions::default())), Status::InvalidArgument);
    assert_eq!(status(m.generate(&[1; T + 1], 1, &GenerateOptions::default())), Status::TooLarge);
    assert_eq!(status(m.generate(&[1, 300], 1, &GenerateOptions::default())), Status::OutOfRange);
    let mut dense = Model::new()?.with(Layer::dense(4, 3, true))?;
    dense.compile(&[4], 2, Loss::None, None, 1)?;
    let e = dense.generate(&[1, 2], 3, &GenerateOptions::default()).unwrap_err();
    assert!(matches!(e.status, Status::Unsupported | Status::Dtype), "{:?}", e);
    Ok(())
}

// ----------------------------------------------------------------- text

#[test]
fn text_splits_and_bytes() -> Result<()> {
    let data = corpus();
    let text = Text::from_bytes(&data, 0.1, 3)?;
    assert_eq!(text.size(TextSplit::Train), 1620);
    assert_eq!(text.size(TextSplit::Train) + text.size(TextSplit::Valid), data.len());
    assert_eq!([text.bytes(TextSplit::Train), text.bytes(TextSplit::Valid)].concat(), data);
    let empty = Text::from_bytes(b"", 0.1, 1)?;
    assert_eq!(empty.size(TextSplit::Train) + empty.size(TextSplit::Valid), 0);
    assert!(empty.bytes(TextSplit::Valid).is_empty());
    assert_eq!(Text::from_bytes(&data, 1.0, 1).unwrap_err().status, Status::InvalidArgument);
    Ok(())
}

#[test]
fn text_sample_draws_windows_of_the_split() -> Result<()> {
    let data: Vec<u8> = (0..=255u8).cycle().take(256 * 8).collect(); // every window unique by its start
    let mut a = Text::from_bytes(&data, 0.25, 9)?;
    let mut b = Text::from_bytes(&data, 0.25, 9)?;
    let train = a.bytes(TextSplit::Train).to_vec();
    let (x, y) = a.sample(TextSplit::Train, 6, 10)?;
    assert_eq!((x.len(), y.len()), (60, 60));
    for (row_x, row_y) in x.chunks(10).zip(y.chunks(10)) {
        assert_eq!(&row_x[1..], &row_y[..9]);
        let mut window: Vec<u8> = row_x.iter().map(|&v| v as u8).collect();
        window.push(row_y[9] as u8);
        assert!(train.windows(11).any(|w| w == &window[..]));
    }
    assert_eq!(b.sample(TextSplit::Train, 6, 10)?, (x.clone(), y.clone()));
    assert_ne!(a.sample(TextSplit::Train, 6, 10)?.0, x); // the generator advanced
    let valid_len = a.size(TextSplit::Valid);
    assert_eq!(a.sample(TextSplit::Valid, 1, valid_len).unwrap_err().status, Status::TooLarge);
    assert_eq!(a.sample(TextSplit::Train, 0, 4).unwrap_err().status, Status::InvalidArgument);
    Ok(())
}

#[test]
fn text_windows_cover_the_split_in_order() -> Result<()> {
    let text = Text::from_bytes(&corpus(), 0.1, 3)?;
    let valid = text.bytes(TextSplit::Valid).to_vec();
    let n = text.window_count(TextSplit::Valid, T);
    assert_eq!(n, (valid.len() - 1) / T);
    let (x, y) = text.windows(TextSplit::Valid, 0, n, T)?;
    for i in 0..n {
        let xs: Vec<u8> = x[i * T..(i + 1) * T].iter().map(|&v| v as u8).collect();
        let ys: Vec<u8> = y[i * T..(i + 1) * T].iter().map(|&v| v as u8).collect();
        assert_eq!(xs, &valid[i * T..(i + 1) * T]);
        assert_eq!(ys, &valid[i * T + 1..(i + 1) * T + 1]);
    }
    assert_eq!(text.windows(TextSplit::Valid, 2, 3, T)?.0, x[2 * T..5 * T].to_vec());
    assert_eq!(text.windows(TextSplit::Valid, n - 1, 2, T).unwrap_err().status, Status::OutOfRange);
    Ok(())
}

#[test]
fn text_load_reads_files_and_directories() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("nnlib-rust-text-{}", std::process::id()));
    let corpus_dir = dir.join("corpus");
    std::fs::create_dir_all(corpus_dir.join("sub")).unwrap();
    std::fs::write(corpus_dir.join("b.txt"), b"second ").unwrap();
    std::fs::write(corpus_dir.join("a.txt"), b"first ").unwrap();
    std::fs::write(corpus_dir.join(".hidden"), b"never ").unwrap();
    std::fs::write(corpus_dir.join("a.dat"), b"index ").unwrap();
    std::fs::write(corpus_dir.join("sub").join("c.txt"), b"nested ").unwrap();
    let single = dir.join("z.txt");
    std::fs::write(&single, b"last").unwrap();
    let text = Text::load(&[corpus_dir.as_path(), single.as_path()], 0.0, 1)?;
    assert_eq!(text.bytes(TextSplit::Train), b"first second last");
    let e = Text::load(&[dir.join("missing")], 0.1, 1).unwrap_err();
    assert_eq!(e.status, Status::Io);
    assert!(e.message.contains("missing"), "{}", e.message);
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}

// --------------------------------------------------------------- layers

#[test]
fn constructors_build_what_the_description_builds() -> Result<()> {
    let (vocab, dim) = (40i64, 16i64);
    let mut f = Model::new()?;
    let ids = f.input(&[T as i64])?;
    let e = f.apply(Layer::embedding(vocab, dim)?, &[ids])?;
    let h = f.apply(Layer::positional(0)?, &[e])?;
    let n1 = f.apply(Layer::layer_norm(1e-5, true)?, &[h])?;
    let a = f.apply(Layer::attention(2, AttentionOptions { causal: true, ..Default::default() })?, &[n1])?;
    let r = f.apply(Layer::add()?, &[h, a])?;
    let n2 = f.apply(Layer::layer_norm(1e-5, true)?, &[r])?;
    let up = f.apply(Layer::linear(4 * dim, true)?, &[n2])?;
    let g = f.apply(Layer::gelu()?, &[up])?;
    let down = f.apply(Layer::linear(dim, true)?, &[g])?;
    let r2 = f.apply(Layer::add()?, &[r, down])?;
    let n3 = f.apply(Layer::layer_norm(1e-5, true)?, &[r2])?;
    let out = f.apply(Layer::linear(vocab, true)?, &[n3])?;
    f.set_output(out)?;
    f.compile_graph(2, Loss::None, None, 1)?;
    let mut d = Model::from_spec(&format!(
        "input:{},embedding:40:16,positional,transformer:16:2:causal,layernorm,linear:40",
        T
    ))?;
    d.compile_graph(2, Loss::None, None, 2)?;
    assert_eq!(f.layer_count(), d.layer_count());
    for l in 0..f.layer_count() {
        let (src, dst) = (f.layer(l).unwrap(), d.layer(l).unwrap());
        assert_eq!(src.name(), dst.name());
        assert_eq!(src.param_names(), dst.param_names());
        for p in 0..src.param_count() {
            let values = src.param(p)?.to_vec();
            d.param_mut(l, p)?.copy_from_slice(&values);
        }
    }
    let x: Vec<i32> = (0..2 * T as i32).map(|i| (i * 7 + 3) % vocab as i32).collect();
    let (yf, yd) = (f.predict_ids(&x)?, d.predict_ids(&x)?);
    for (a, b) in yf.iter().zip(&yd) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{} vs {}", a, b);
    }
    // causal: a new last token leaves the earlier positions alone
    let mut x2 = x.clone();
    x2[T - 1] = (x2[T - 1] + 1) % vocab as i32;
    let y2 = f.predict_ids(&x2)?;
    let v = vocab as usize;
    assert_eq!(&y2[..(T - 1) * v], &yf[..(T - 1) * v]);
    assert_ne!(&y2[(T - 1) * v..T * v], &yf[(T - 1) * v..T * v]);
    let kinds: Vec<LayerKind> = f.layers().iter().map(|l| l.kind()).collect();
    for k in [LayerKind::Embedding, LayerKind::Positional, LayerKind::LayerNorm, LayerKind::Attention, LayerKind::Linear] {
        assert!(kinds.contains(&k), "{:?}", k);
    }
    Ok(())
}

#[test]
fn layer_options_reach_the_library() -> Result<()> {
    let mut m = Model::new()?;
    let ids = m.input(&[6])?;
    let e = m.apply(Layer::embedding(10, 8)?, &[ids])?;
    let p = m.apply(Layer::positional(12)?, &[e])?;
    let n = m.apply(Layer::layer_norm(1e-5, false)?, &[p])?;
    let a = m.apply(Layer::attention(4, AttentionOptions { bias: false, ..Default::default() })?, &[n])?;
    let l = m.apply(Layer::linear(5, false)?, &[a])?;
    m.set_output(l)?;
    m.compile_graph(1, Loss::None, None, 1)?;
    assert_eq!(m.layer(0).unwrap().param_shape(0)?, vec![10, 8]);
    assert_eq!(m.layer(1).unwrap().param_shape(0)?, vec![12, 8]);
    assert!(m.layer(2).unwrap().param_names().is_empty());
    assert_eq!(m.layer(3).unwrap().param_names(), vec!["in_proj_weight", "out_proj.weight"]);
    assert_eq!(m.layer(4).unwrap().param_names(), vec!["weight"]);
    assert_eq!(m.layer(4).unwrap().output_shape()?, vec![6, 5]);
    let spec = m.spec()?;
    assert!(spec.contains("attention:4:nobias") && spec.contains("positional:12"), "{}", spec);
    let status = |r: Result<Layer>| r.err().map(|e| e.status);
    assert_eq!(status(Layer::attention(0, AttentionOptions::default())), Some(Status::InvalidArgument));
    assert_eq!(
        status(Layer::attention(2, AttentionOptions { dropout: 1.0, ..Default::default() })),
        Some(Status::InvalidArgument)
    );
    assert_eq!(status(Layer::embedding(0, 4)), Some(Status::InvalidArgument));
    assert_eq!(status(Layer::layer_norm(0.0, true)), Some(Status::InvalidArgument));
    Ok(())
}

/// erf by Simpson's rule over exp(-t^2) on [0, x] (2000 intervals): far
/// more exact than the f32 outputs it checks.
fn erf(x: f64) -> f64 {
    let n = 2000;
    let h = x / n as f64;
    let f = |t: f64| (-t * t).exp();
    let mut s = f(0.0) + f(x);
    for i in 1..n {
        s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn gelu_activations_match_their_formulas() -> Result<()> {
    let x: Vec<f32> = (0..49).map(|i| -6.0 + 0.25 * i as f32).collect();
    let exact = |v: f64| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()));
    let tanh = |v: f64| 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh());
    for (layer, reference) in [(Layer::gelu(), &exact as &dyn Fn(f64) -> f64), (Layer::gelu_tanh(), &tanh)] {
        let mut m = Model::new()?.with(layer)?;
        m.compile(&[49], 1, Loss::None, None, 1)?;
        let y = m.predict(&x)?;
        for (&xi, &yi) in x.iter().zip(&y) {
            let r = reference(xi as f64);
            assert!((yi as f64 - r).abs() <= 1e-6 + 1e-5 * r.abs(), "gelu({}) = {}, expected {}", xi, yi, r);
        }
    }
    Ok(())
}

#[test]
fn save_and_load_keep_a_gpt() -> Result<()> {
    let (mut m, text, _) = trained()?;
    let bytes = m.to_bytes(true)?;
    assert_eq!(nnlib::model_file_info(&bytes)?.format_version, 3); // warmup_steps needs version 3
    let mut again = Model::from_bytes(&bytes)?;
    let (x, _) = text.windows(TextSplit::Valid, 0, 2, T)?;
    assert_eq!(again.predict_ids(&x)?, m.predict_ids(&x)?);
    assert_eq!(again.optimizer_options()?.warmup_steps, 5);
    let o = GenerateOptions { seed: 2, ..Default::default() };
    assert_eq!(again.generate(&[116], 8, &o)?, m.generate(&[116], 8, &o)?);
    Ok(())
}

// --------------------------------------------------------------- warmup

#[test]
fn warmup_steps_scale_the_first_updates() -> Result<()> {
    // plain SGD on mse: step t < W moves the weights by lr (t + 1) / W
    // times the gradient backward leaves
    let x = [1.0f32, 2.0, 0.5, -1.0];
    let y = [1.0f32, 0.0];
    let (lr, warmup) = (0.1f64, 4i64);
    let opt = Optimizer::with_warmup(OptimizerKind::Sgd, lr as f32, warmup)?;
    assert_eq!(opt.options()?.warmup_steps, warmup);
    let mut m = Model::new()?.with(Layer::dense(2, 1, false))?;
    m.compile(&[2], 2, Loss::Mse, Some(opt), 5)?;
    for t in 0..warmup + 2 {
        let w: Vec<f64> = m.layer(0).unwrap().param(0)?.iter().map(|&v| v as f64).collect();
        m.backward(&x, &y)?;
        let g: Vec<f64> = m.layer(0).unwrap().grad(0)?.iter().map(|&v| v as f64).collect();
        m.step(&x, &y)?;
        let scale = if t < warmup { (t + 1) as f64 / warmup as f64 } else { 1.0 };
        let after = m.layer(0).unwrap().param(0)?.to_vec();
        for i in 0..w.len() {
            let expected = w[i] - lr * scale * g[i];
            assert!((after[i] as f64 - expected).abs() < 1e-6, "step {}: {} vs {}", t, after[i], expected);
        }
    }
    let mut o = nnlib::optimizer_options(OptimizerKind::Sgd)?;
    o.warmup_steps = -1;
    assert_eq!(Optimizer::new(&o).err().map(|e| e.status), Some(Status::InvalidArgument));
    assert_eq!(nnlib::optimizer_options(OptimizerKind::Adam)?.warmup_steps, 0);
    Ok(())
}

#[test]
fn version_is_1_5() {
    assert!(nnlib::version() >= 10500);
    assert_eq!(nnlib::sys::NNLIB_VERSION_MINOR, 7);
}
