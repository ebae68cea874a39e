//! Shorter sequences than compiled (library 1.2) through the safe crate's
//! `*_sequences` calls: a model compiled for [T, F] whose recurrent layers
//! come first and end in one returning its last step (or make up the model,
//! whose output is then the sequence) runs N sequences of T' <= T steps. Reference: a twin compiled for T' with the parameters
//! copied (outputs, losses, gradients and two optimizer steps agree); then
//! the statuses of what the bindings and the library refuse.

use nnlib::{Loss, Model, Optimizer, OptimizerKind, Status};

const F: usize = 4;
const T: usize = 7;
const N: usize = 3;
const OUT: usize = 2;
const TOLERANCE: f32 = 1e-5;

const SPECS: [&str; 5] =
    ["rnn:5,last,dense:2", "lstm:5,last,dense:2", "gru:5,last,dense:2", "lstm:4,gru:3,last,dense:2", "rnn:5:relu,last,dense:2"];

fn model_for(spec: &str, steps: usize, optimizer: Option<Optimizer>) -> nnlib::Result<Model> {
    let mut m = Model::from_spec(spec)?;
    m.compile(&[steps as i64, F as i64], 8, Loss::Mse, optimizer, 11)?;
    Ok(m)
}

/// `len` floats in [-1, 1) from a small LCG.
fn uniform(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn copy_params(dst: &mut Model, src: &Model) -> nnlib::Result<()> {
    for (i, layer) in src.layers().iter().enumerate() {
        for j in 0..layer.param_count() {
            dst.param_mut(i, j)?.copy_from_slice(layer.param(j)?);
        }
    }
    Ok(())
}

/// Every parameter (or gradient) of the model, layer by layer.
fn flat(m: &Model, grads: bool) -> nnlib::Result<Vec<f32>> {
    let mut out = Vec::new();
    for layer in m.layers() {
        for j in 0..layer.param_count() {
            out.extend_from_slice(if grads { layer.grad(j)? } else { layer.param(j)? });
        }
    }
    Ok(out)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn shorter_sequences_match_a_twin_compiled_for_them() -> nnlib::Result<()> {
    let (mut worst_out, mut worst_grad) = (0f32, 0f32);
    for (c, spec) in SPECS.iter().enumerate() {
        for &steps in &[1usize, 3, T] {
            let mut m = model_for(spec, T, None)?;
            let mut twin = model_for(spec, steps, None)?;
            copy_params(&mut twin, &m)?;
            let x = uniform(N * steps * F, 1 + c as u32);
            let t = uniform(N * OUT, 2);

            let y = m.predict_sequences(&x, steps)?;
            let yt = twin.predict(&x)?;
            assert_eq!(y.len(), N * OUT);
            let d = max_diff(&y, &yt);
            assert!(d <= TOLERANCE, "{} at {} steps: output differs by {}", spec, steps, d);
            worst_out = worst_out.max(d);
            // the twin's own length through the sequence call: the same
            assert_eq!(twin.predict_sequences(&x, steps)?, yt);

            let (loss, _) = m.evaluate_sequences(&x, steps, &t)?;
            let (twin_loss, _) = twin.evaluate(&x, &t)?;
            assert!((loss.unwrap() - twin_loss.unwrap()).abs() <= TOLERANCE, "{}: evaluate", spec);

            let loss = m.backward_sequences(&x, steps, &t)?;
            let twin_loss = twin.backward(&x, &t)?;
            assert!((loss - twin_loss).abs() <= TOLERANCE, "{}: backward loss", spec);
            let d = max_diff(&flat(&m, true)?, &flat(&twin, true)?);
            assert!(d <= TOLERANCE, "{} at {} steps: gradients differ by {}", spec, steps, d);
            worst_grad = worst_grad.max(d);
        }
    }
    println!("worst |T=7 model - twin|: outputs {:.3e}, gradients {:.3e}", worst_out, worst_grad);
    Ok(())
}

/// At T the sequence call is `predict`; at T' = 3 the model runs 3 steps,
/// not the 3 steps followed by zeros up to T.
#[test]
fn full_length_sequences_are_predict_itself() -> nnlib::Result<()> {
    let mut m = model_for("lstm:5,last,dense:2", T, None)?;
    let x = uniform(N * T * F, 9);
    assert_eq!(m.predict_sequences(&x, T)?, m.predict(&x)?);
    let short = uniform(N * 3 * F, 10);
    let mut padded = vec![0f32; N * T * F];
    for s in 0..N {
        padded[s * T * F..s * T * F + 3 * F].copy_from_slice(&short[s * 3 * F..(s + 1) * 3 * F]);
    }
    assert!(max_diff(&m.predict_sequences(&short, 3)?, &m.predict(&padded)?) > 1e-4);
    Ok(())
}

/// Two optimizer steps at T' = 3 (plain SGD, whose update is fused into
/// backward, and Adam) leave the same parameters as the twin's.
#[test]
fn steps_at_three_match_the_twin() -> nnlib::Result<()> {
    let steps = 3;
    let mut worst = 0f32;
    for spec in SPECS.iter() {
        for adam in [false, true] {
            let opt = || {
                if adam {
                    Optimizer::with_defaults(OptimizerKind::Adam, 0.01)
                } else {
                    Optimizer::sgd(0.1, 0.0, false, 0.0)
                }
            };
            let mut m = model_for(spec, T, Some(opt()?))?;
            let mut twin = model_for(spec, steps, Some(opt()?))?;
            copy_params(&mut twin, &m)?;
            let x = uniform(N * steps * F, 5);
            let t = uniform(N * OUT, 6);
            for _ in 0..2 {
                let loss = m.step_sequences(&x, steps, &t)?;
                let twin_loss = twin.step(&x, &t)?;
                assert!((loss - twin_loss).abs() <= TOLERANCE, "{}: step loss", spec);
            }
            let d = max_diff(&flat(&m, false)?, &flat(&twin, false)?);
            assert!(d <= TOLERANCE, "{} (adam {}): parameters differ by {}", spec, adam, d);
            worst = worst.max(d);
        }
    }
    println!("worst |T=7 model - twin| after two steps at T'=3: {:.3e}", worst);
    Ok(())
}

/// A model of recurrent layers only outputs the sequence: at T' = 3 its
/// N * 3 * H outputs, loss and gradients are the twin's.
#[test]
fn sequence_outputs_match_the_twin() -> nnlib::Result<()> {
    const H: usize = 3;
    for spec in ["gru:4,lstm:3", "rnn:3:relu"] {
        let mut m = model_for(spec, T, None)?;
        let mut twin = model_for(spec, 3, None)?;
        copy_params(&mut twin, &m)?;
        let x = uniform(N * 3 * F, 12);
        let t = uniform(N * 3 * H, 13);
        let y = m.predict_sequences(&x, 3)?;
        assert_eq!(y.len(), N * 3 * H);
        assert!(max_diff(&y, &twin.predict(&x)?) <= TOLERANCE, "{}: outputs", spec);
        let loss = m.backward_sequences(&x, 3, &t)?;
        assert!((loss - twin.backward(&x, &t)?).abs() <= TOLERANCE, "{}: loss", spec);
        assert!(max_diff(&flat(&m, true)?, &flat(&twin, true)?) <= TOLERANCE, "{}: gradients", spec);
    }
    Ok(())
}

#[test]
fn refusals() -> nnlib::Result<()> {
    // a model with another layer inside the time axis needs T
    let mut inside = model_for("lstm:4,dropout:0.1,gru:3,last", T, None)?;
    let err = inside.step_sequences(&uniform(N * 3 * F, 2), 3, &uniform(N * 3, 3)).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);
    assert!(
        err.message.contains(
            "lstm: sequence length 3 differs from the compiled 7: only models whose recurrent layers come first and \
             either end in one returning its last step"
        ),
        "{}",
        err.message
    );

    let mut m = model_for("lstm:4,last,dense:2", T, Some(Optimizer::sgd(0.1, 0.0, false, 0.0)?))?;
    // longer than compiled: the library says TooLarge
    let err = m.predict_sequences(&uniform(N * (T + 1) * F, 4), T + 1).unwrap_err();
    assert_eq!(err.status, Status::TooLarge);
    assert!(err.message.contains("lstm: sequence length 8 above the compiled maximum 7"), "{}", err.message);
    let err = m.evaluate_sequences(&uniform(N * (T + 1) * F, 4), T + 1, &uniform(N * OUT, 5)).unwrap_err();
    assert_eq!(err.status, Status::TooLarge);
    // not a whole number of sequences: the bindings say ShapeMismatch
    let err = m.predict_sequences(&uniform(N * 3 * F + 1, 6), 3).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);
    assert_eq!(
        err.message,
        "input of 37 floats is not a whole number of sequences of 3 steps of 4 features (12 floats each)"
    );
    assert_eq!(m.step_sequences(&[], 3, &[]).unwrap_err().status, Status::ShapeMismatch);
    assert_eq!(m.predict_sequences(&uniform(F, 7), 0).unwrap_err().status, Status::InvalidArgument);
    // targets that do not divide into the N sequences
    let err = m.step_sequences(&uniform(N * 3 * F, 8), 3, &uniform(N * OUT + 1, 9)).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);
    // the flat slice calls still mean T steps: 3 steps' worth is refused
    let err = m.predict(&uniform(N * 3 * F, 10)).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);

    // a model not compiled for [T, F]
    let mut dense = Model::from_spec("dense:2")?;
    dense.compile(&[F as i64], 4, Loss::Mse, None, 1)?;
    let err = dense.predict_sequences(&uniform(2 * F, 11), 1).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);
    assert!(err.message.contains("compiled for input [T, F]"), "{}", err.message);
    Ok(())
}
