//! Backward from a caller-given output gradient (library 1.3) equals
//! backward from the loss when the caller gives the loss's gradient. A test
//! binary of its own: it runs a new path of the library, and a crash there
//! must not hide the other graph tests' results.

mod common;

use common::{data, two_inputs};
use nnlib::{Loss, Model, Optimizer, Result, Status};

#[test]
fn backward_output_is_backward_from_the_loss_gradient() -> Result<()> {
    let mut m = two_inputs()?;
    m.compile_graph(4, Loss::Mse, None, 5)?;
    let (xa, xb, t) = (data(4 * 3, 9), data(4 * 2, 10), data(4 * 2, 11));
    m.set_input_gradients(true)?;
    m.backward_inputs(&[&xa, &xb], &t)?;
    let from_loss = m.input_gradients()?;
    let param_grads: Vec<Vec<f32>> = m
        .layers()
        .iter()
        .flat_map(|l| (0..l.param_count()).map(move |p| l.grad(p).unwrap().to_vec()))
        .collect();
    let y = m.forward_inputs(&[&xa, &xb])?;
    // d/dy of mean((y - t)^2)
    let n = y.len() as f32;
    let dy: Vec<f32> = y.iter().zip(&t).map(|(y, t)| 2.0 * (y - t) / n).collect();
    m.backward_output(&dy)?;
    let from_dy = m.input_gradients()?;
    for (a, b) in from_dy.iter().flatten().zip(from_loss.iter().flatten()) {
        assert!((a - b).abs() <= 1e-6 + 1e-5 * b.abs(), "{} vs {}", a, b);
    }
    let again: Vec<Vec<f32>> = m
        .layers()
        .iter()
        .flat_map(|l| (0..l.param_count()).map(move |p| l.grad(p).unwrap().to_vec()))
        .collect();
    for (a, b) in again.iter().flatten().zip(param_grads.iter().flatten()) {
        assert!((a - b).abs() <= 1e-6 + 1e-5 * b.abs(), "{} vs {}", a, b);
    }
    // a pass in between spends the forward pass
    m.predict_inputs(&[&xa, &xb])?;
    assert_eq!(m.backward_output(&dy).unwrap_err().status, Status::WrongState);
    m.set_input_gradients(false)?;
    assert_eq!(m.input_gradient(0).unwrap_err().status, Status::WrongState);
    Ok(())
}

#[test]
fn backward_output_on_a_chain_model_gives_the_loss_gradients() -> Result<()> {
    let mut m = Model::from_spec("dense:3,tanh,dense:2")?;
    m.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.1, 0.0, false, 0.0)?), 3)?;
    let (x, t) = (data(3 * 2, 1), data(3 * 2, 2));
    m.backward(&x, &t)?;
    let from_loss: Vec<f32> = m.layer(0).unwrap().grad(0)?.to_vec();
    let y = m.forward(&x)?;
    let n = y.len() as f32;
    let dy: Vec<f32> = y.iter().zip(&t).map(|(y, t)| 2.0 * (y - t) / n).collect();
    m.backward_output(&dy)?;
    for (a, b) in m.layer(0).unwrap().grad(0)?.iter().zip(&from_loss) {
        assert!((a - b).abs() <= 1e-6 + 1e-5 * b.abs(), "{} vs {}", a, b);
    }
    // the wrong size of gradient
    m.forward(&x)?;
    assert_eq!(m.backward_output(&dy[..4]).unwrap_err().status, Status::ShapeMismatch);
    Ok(())
}

/// dL/dW of y = x W^T + b for dL/dy = 1: every row of W's gradient is the
/// column sums of x (64 features, 3 outputs).
fn column_sums(x: &[f32]) -> Vec<f32> {
    let mut sums = vec![0f32; 64];
    for row in x.chunks(64) {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
    sums.iter().cycle().take(3 * 64).copied().collect()
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() <= 1e-4 + 1e-5 * b.abs(), "{} vs {}", a, b);
    }
}

#[test]
fn backward_output_reads_the_inputs_forward_was_given() -> Result<()> {
    // nnlib_model_forward keeps pointers to its input data and
    // backward_output reads them again: the caller's slice, released when
    // forward returns, may change or be freed in between (safe code).
    let mut m = Model::from_spec("dense:3")?;
    m.compile(&[64], 32, Loss::None, None, 1)?;
    let mut x = data(32 * 64, 5);
    let want = column_sums(&x);
    m.forward(&x)?;
    x.iter_mut().for_each(|v| *v = 1000.0);
    drop(x);
    m.backward_output(&[1.0; 32 * 3])?;
    assert_close(m.layer(0).unwrap().grad(0)?, &want);

    // a forward refused before it ran leaves the pending pass in place
    let x = data(32 * 64, 6);
    let want = column_sums(&x);
    m.forward(&x)?;
    assert_eq!(m.forward_inputs(&[&[0.0; 7]]).unwrap_err().status, Status::ShapeMismatch);
    let mut x = x;
    x.iter_mut().for_each(|v| *v = -1000.0);
    m.backward_output(&[1.0; 32 * 3])?;
    assert_close(m.layer(0).unwrap().grad(0)?, &want);

    // the same through forward_inputs
    let mut x = data(32 * 64, 7);
    let want = column_sums(&x);
    m.forward_inputs(&[&x])?;
    x.iter_mut().for_each(|v| *v = 3.0);
    m.backward_output(&[1.0; 32 * 3])?;
    assert_close(m.layer(0).unwrap().grad(0)?, &want);
    Ok(())
}
