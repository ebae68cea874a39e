//! The recurrent layers through the safe crate: an LSTM learns to recall
//! the first bit of a sequence after the rest, the description names every
//! layer, an initial state changes the output and is checked, a too long
//! sequence is refused, and a saved copy predicts the same bits.

use nnlib::{Layer, LayerKind, Loss, Model, Optimizer, OptimizerKind, Status};

const N: usize = 16;
const T: usize = 6;

/// Sequences of T steps of one feature; the class is the sign of step 0,
/// the later steps are noise.
fn data() -> (Vec<f32>, Vec<f32>) {
    let mut x = vec![0.0f32; N * T];
    let mut t = vec![0.0f32; N];
    for s in 0..N {
        t[s] = (s % 2) as f32;
        x[s * T] = if s % 2 == 1 { 1.0 } else { -1.0 };
        for i in 1..T {
            x[s * T + i] = (((s * 7 + i * 3) % 11) as f32 - 5.0) / 5.0;
        }
    }
    (x, t)
}

fn lstm_model() -> nnlib::Result<Model> {
    let mut m = Model::new()?
        .with(Layer::gru(1, 6, true, true))?
        .with(Layer::lstm(0, 8, true, false))?
        .with(Layer::rnn(0, 4, true, false, true))?; // rnn over [8]: refused
    let err = m.compile(&[T as i64, 1], N as i64, Loss::SoftmaxCe, None, 1).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);
    m = Model::new()?
        .with(Layer::gru(1, 6, true, true))?
        .with(Layer::lstm(0, 8, true, false))?
        .with(Layer::dense(0, 2, true))?;
    let opt = Optimizer::with_defaults(OptimizerKind::Adam, 0.02)?;
    m.compile(&[T as i64, 1], N as i64, Loss::SoftmaxCe, Some(opt), 3)?;
    Ok(m)
}

#[test]
fn lstm_remembers_the_first_step() -> nnlib::Result<()> {
    let (x, t) = data();
    let mut m = lstm_model()?;
    assert_eq!(m.spec()?, "gru:6,lstm:8,last,dense:2");
    let kinds: Vec<LayerKind> = m.layers().iter().map(|l| l.kind()).collect();
    assert_eq!(kinds, vec![LayerKind::Gru, LayerKind::Lstm, LayerKind::Dense]);
    assert_eq!(m.layer(1).unwrap().param_shape(0)?, vec![32, 6]);
    for _ in 0..150 {
        m.step(&x, &t)?;
    }
    let (_, accuracy) = m.evaluate(&x, &t)?;
    assert_eq!(accuracy, 1.0);

    let before = m.predict(&x)?;
    let copy = Model::from_bytes(&m.to_bytes(false)?)?;
    let mut copy = copy;
    assert_eq!(copy.predict(&x)?, before);

    m.set_initial_state(1, Some(&[0.5; 8]), Some(&[-0.5; 8]), 1)?;
    assert_ne!(m.predict(&x)?, before);
    m.set_initial_state(1, None, None, 0)?;
    assert_eq!(m.predict(&x)?, before);
    let short = m.set_initial_state(1, Some(&[0.5; 7]), None, 1).unwrap_err();
    assert_eq!(short.status, Status::ShapeMismatch);
    let not_rnn = m.set_initial_state(2, Some(&[0.5; 2]), None, 1).unwrap_err();
    assert_eq!(not_rnn.status, Status::InvalidArgument);
    let gru_c = m.set_initial_state(0, Some(&[0.5; 6]), Some(&[0.5; 6]), 1).unwrap_err();
    assert_eq!(gru_c.status, Status::InvalidArgument);
    Ok(())
}

#[test]
fn too_long_sequences_are_refused() -> nnlib::Result<()> {
    let mut m = Model::new()?.with(Layer::lstm(2, 3, true, false))?;
    m.compile(&[4, 2], 2, Loss::Mse, None, 1)?;
    assert_eq!(m.output_shape()?, vec![3]);
    // 2 samples of [4, 2] is 16 floats; the slice API has no T to check,
    // so a wrong length shows up as a wrong per-sample size
    let err = m.predict(&[0.0; 15]).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);
    assert_eq!(m.predict(&[0.0; 16])?.len(), 6);
    Ok(())
}
