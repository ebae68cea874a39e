//! Graph models through the safe crate (library 1.3): models built with
//! `input`/`apply`/`set_output` predict exactly as the same graph the C
//! library parses from its description text (with identical weights),
//! several inputs go in as slices, input gradients match finite
//! differences, and bad graphs and data give the library's statuses.

mod common;

use common::{data, named, two_inputs, TWO_INPUTS};
use nnlib::{FitOptions, Layer, LayerKind, Loss, Model, Optimizer, OptimizerKind, Result, Status, ValidationInputs};

/// Copies every parameter of `from` into `to` (the same layers in order).
fn copy_weights(from: &Model, to: &mut Model) {
    assert_eq!(from.layer_count(), to.layer_count());
    for l in 0..from.layer_count() {
        let src = from.layer(l).unwrap();
        assert_eq!(src.name(), to.layer(l).unwrap().name());
        for p in 0..src.param_count() {
            let values = src.param(p).unwrap().to_vec();
            to.param_mut(l, p).unwrap().copy_from_slice(&values);
        }
    }
}

/// Compiles `built` and the model parsed from `spec` (another seed), then
/// gives the parsed one the built one's weights.
fn twin(mut built: Model, spec: &str) -> Result<(Model, Model)> {
    built.compile_graph(8, Loss::Mse, None, 11)?;
    let mut parsed = Model::from_spec(spec)?;
    parsed.compile_graph(8, Loss::Mse, None, 12)?;
    copy_weights(&built, &mut parsed);
    Ok((built, parsed))
}

const RESIDUAL: &str = "x=input:6,dense:8,tanh,d=dense:6,add(x,d),relu,dense:3";

fn residual() -> Result<Model> {
    let mut m = Model::new()?;
    let x = m.input(&[6])?;
    named(&mut m, x, "x")?;
    let h = m.apply(Layer::dense(0, 8, true)?, &[x])?;
    let h = m.apply(Layer::tanh()?, &[h])?;
    let d = m.apply(Layer::dense(0, 6, true)?, &[h])?;
    named(&mut m, d, "d")?;
    let sum = m.apply(Layer::add()?, &[x, d])?;
    let r = m.apply(Layer::relu()?, &[sum])?;
    let y = m.apply(Layer::dense(0, 3, true)?, &[r])?;
    m.set_output(y)?;
    Ok(m)
}

#[test]
fn residual_block_predicts_as_its_description() -> Result<()> {
    let (mut m, mut parsed) = twin(residual()?, RESIDUAL)?;
    assert_eq!(m.spec()?, RESIDUAL);
    assert_eq!(m.input_count(), 1);
    assert_eq!(m.output_shape()?, vec![3]);
    let x = data(5 * 6, 1);
    assert_eq!(m.predict(&x)?, parsed.predict(&x)?);
    assert_eq!(m.predict_inputs(&[&x])?, parsed.predict(&x)?);
    // the skip connection is real: with the block's weights at zero the
    // output is the head applied to relu(x)
    for l in 0..3 {
        for p in 0..m.layer(l).unwrap().param_count() {
            m.param_mut(l, p)?.iter_mut().for_each(|v| *v = 0.0);
        }
    }
    let head = m.layer(5).unwrap();
    let (w, b) = (head.param(0)?.to_vec(), head.param(1)?.to_vec());
    let y = m.predict(&x)?;
    for s in 0..5 {
        for o in 0..3 {
            let mut expect = b[o];
            for i in 0..6 {
                expect += w[o * 6 + i] * x[s * 6 + i].max(0.0);
            }
            assert!((y[s * 3 + o] - expect).abs() < 1e-5, "{} vs {}", y[s * 3 + o], expect);
        }
    }
    Ok(())
}

#[test]
fn convolutional_residual_and_gate_predict_as_their_descriptions() -> Result<()> {
    let spec = "x=input:2x5x5,conv:2x3x3:p1,relu,c=conv:2x3x3:p1,add(x,c),relu,flatten,dense:3";
    let mut m = Model::new()?;
    let x = m.input(&[2, 5, 5])?;
    named(&mut m, x, "x")?;
    let conv = nnlib::Conv2dOptions { padding: (1, 1), ..Default::default() };
    let h = m.apply(Layer::conv2d(2, (3, 3), conv)?, &[x])?;
    let h = m.apply(Layer::relu()?, &[h])?;
    let c = m.apply(Layer::conv2d(2, (3, 3), conv)?, &[h])?;
    named(&mut m, c, "c")?;
    let sum = m.apply(Layer::add()?, &[x, c])?;
    let h = m.apply(Layer::relu()?, &[sum])?;
    let h = m.apply(Layer::flatten()?, &[h])?;
    m.apply(Layer::dense(0, 3, true)?, &[h])?; // the newest node is the output
    let (mut m, mut parsed) = twin(m, spec)?;
    assert_eq!(m.spec()?, spec);
    let images = data(4 * 50, 2);
    assert_eq!(m.predict(&images)?, parsed.predict(&images)?);

    // g is not named: a name prints only where an item refers to it
    let gate = "x=input:4,h=dense:4,dense:4(x),s=sigmoid,multiply(h,s),dense:2";
    let mut m = Model::new()?;
    let x = m.input(&[4])?;
    named(&mut m, x, "x")?;
    let h = m.apply(Layer::dense(0, 4, true)?, &[x])?;
    named(&mut m, h, "h")?;
    let g = m.apply(Layer::dense(0, 4, true)?, &[x])?;
    let s = m.apply(Layer::sigmoid()?, &[g])?;
    named(&mut m, s, "s")?;
    let gated = m.apply(Layer::multiply()?, &[h, s])?;
    m.apply(Layer::dense(0, 2, true)?, &[gated])?;
    let (mut m, mut parsed) = twin(m, gate)?;
    assert_eq!(m.spec()?, gate);
    let x = data(6 * 4, 3);
    assert_eq!(m.predict(&x)?, parsed.predict(&x)?);
    Ok(())
}

#[test]
fn two_input_model_predicts_as_its_description() -> Result<()> {
    let (mut m, mut parsed) = twin(two_inputs()?, TWO_INPUTS)?;
    assert_eq!(m.spec()?, TWO_INPUTS);
    assert_eq!(m.input_count(), 2);
    assert_eq!(m.input_shape_at(0)?, vec![3]);
    assert_eq!(m.input_shape_at(1)?, vec![2]);
    // 19 samples: more than the compiled batch, predicted in chunks
    let (xa, xb) = (data(19 * 3, 4), data(19 * 2, 5));
    let y = m.predict_inputs(&[&xa, &xb])?;
    assert_eq!(y.len(), 19 * 2);
    assert_eq!(y, parsed.predict_inputs(&[&xa, &xb])?);
    // by hand: tanh of [dense(a), dense(b)] joined along the features
    let layer = |m: &Model, l: usize| {
        let r = m.layer(l).unwrap();
        (r.param(0).unwrap().to_vec(), r.param(1).unwrap().to_vec())
    };
    let ((wa, ba), (wb, bb), (wh, bh)) = (layer(&m, 0), layer(&m, 1), layer(&m, 4));
    for s in 0..19 {
        let mut h = Vec::new();
        for o in 0..4 {
            h.push(ba[o] + (0..3).map(|i| wa[o * 3 + i] * xa[s * 3 + i]).sum::<f32>());
        }
        for o in 0..4 {
            h.push(bb[o] + (0..2).map(|i| wb[o * 2 + i] * xb[s * 2 + i]).sum::<f32>());
        }
        for o in 0..2 {
            let expect = bh[o] + (0..8).map(|i| wh[o * 8 + i] * h[i].tanh()).sum::<f32>();
            assert!((y[s * 2 + o] - expect).abs() < 1e-5, "{} vs {}", y[s * 2 + o], expect);
        }
    }
    let bytes = m.to_bytes(false)?;
    let mut again = Model::from_bytes(&bytes)?;
    assert_eq!(again.predict_inputs(&[&xa, &xb])?, y);
    let mut workspaces = m.workspaces(1)?;
    assert_eq!(workspaces[0].predict_inputs(&[&xa, &xb])?, y);
    Ok(())
}

#[test]
fn nodes_read_back_the_graph() -> Result<()> {
    let mut m = two_inputs()?;
    let nodes = m.nodes()?;
    assert_eq!(nodes.len(), 7);
    let names: Vec<Option<&str>> = nodes.iter().map(|n| n.name.as_deref()).collect();
    assert_eq!(names, vec![Some("a"), Some("b"), Some("da"), Some("db"), None, None, None]);
    assert_eq!((nodes[0].input_index, nodes[1].input_index), (Some(0), Some(1)));
    assert!(nodes[0].layer.is_none() && nodes[0].shape == Some(vec![3]));
    assert_eq!(nodes[4].layer.as_ref().unwrap().kind(), LayerKind::Concat);
    assert_eq!(nodes[4].inputs.iter().map(|n| n.index()).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(nodes[4].layer_index, Some(2));
    assert!(nodes[6].is_output && !nodes[5].is_output);
    assert_eq!(nodes[2].node.index(), 2);
    drop(nodes);
    m.compile_graph(2, Loss::Mse, None, 0)?;
    assert_eq!(m.node(4)?.shape, Some(vec![8]));
    assert_eq!(m.node(9).err().unwrap().status, Status::OutOfRange);
    Ok(())
}

/// The mean loss at xs, for finite differences.
fn loss_at(m: &mut Model, xs: &[Vec<f32>], t: &[f32]) -> f64 {
    let slices: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
    m.evaluate_inputs(&slices, t).unwrap().0.unwrap() as f64
}

#[test]
fn input_gradients_match_finite_differences() -> Result<()> {
    let mut m = two_inputs()?;
    m.compile_graph(4, Loss::Mse, None, 3)?;
    let mut xs = vec![data(3 * 3, 6), data(3 * 2, 7)];
    let t = data(3 * 2, 8);
    m.set_input_gradients(true)?;
    assert_eq!(m.input_gradient(0).unwrap_err().status, Status::WrongState);
    m.backward_inputs(&[&xs[0], &xs[1]], &t)?;
    let grads = m.input_gradients()?;
    assert_eq!((grads[0].len(), grads[1].len()), (9, 6));
    let h = 1e-2f32;
    for input in 0..2 {
        for i in 0..xs[input].len() {
            let keep = xs[input][i];
            xs[input][i] = keep + h;
            let (up, plus) = (loss_at(&mut m, &xs, &t), xs[input][i] as f64);
            xs[input][i] = keep - h;
            let (down, minus) = (loss_at(&mut m, &xs, &t), xs[input][i] as f64);
            xs[input][i] = keep;
            let fd = (up - down) / (plus - minus);
            let bp = grads[input][i] as f64;
            assert!((bp - fd).abs() <= 2e-4 + 2e-2 * fd.abs(), "input {} element {}: {} vs {}", input, i, bp, fd);
        }
    }
    Ok(())
}

#[test]
fn two_input_model_trains_with_slices() -> Result<()> {
    let mut m = two_inputs()?;
    m.compile_graph(16, Loss::Mse, Some(Optimizer::with_defaults(OptimizerKind::Adam, 0.02)?), 2)?;
    let target = |a: &[f32], b: &[f32]| -> Vec<f32> {
        (0..a.len() / 3).flat_map(|s| vec![a[s * 3] + 0.5 * b[s * 2 + 1], a[s * 3 + 1] - b[s * 2]]).collect()
    };
    let (xa, xb) = (data(64 * 3, 12), data(64 * 2, 13));
    let (va, vb) = (data(16 * 3, 14), data(16 * 2, 15));
    let (t, vt) = (target(&xa, &xb), target(&va, &vb));
    let before = m.evaluate_inputs(&[&va, &vb], &vt)?.0.unwrap();
    let vx: [&[f32]; 2] = [&va, &vb];
    let validation = ValidationInputs { x: &vx, target: &vt, patience: 0, min_delta: 0.0, restore_best: false };
    let history =
        m.fit_validated_inputs(&[&xa, &xb], &t, FitOptions { epochs: 40, batch_size: 16, ..Default::default() }, &validation)?;
    assert_eq!((history.losses.len(), history.validation_losses.len()), (40, 40));
    assert!(history.losses[39] < 0.3 * history.losses[0], "{:?}", history.losses);
    let after = m.evaluate_inputs(&[&va, &vb], &vt)?.0.unwrap();
    assert!(after < 0.3 * before, "{} -> {}", before, after);
    assert!((history.validation_losses[39] - after).abs() <= 1e-5 * after);
    let losses = m.fit_inputs(&[&xa, &xb], &t, FitOptions { epochs: 2, ..Default::default() })?;
    assert_eq!(losses.len(), 2);
    assert!(m.step_inputs(&[&xa[..24], &xb[..16]], &t[..16])?.is_finite());
    assert!(m.gradcheck_inputs(&[&xa[..12], &xb[..8]], &t[..8])? < 1e-2);
    Ok(())
}

#[test]
fn bad_graphs_and_data_give_the_library_statuses() -> Result<()> {
    // a node of another model
    let mut other = Model::new()?;
    let foreign = other.input(&[3])?;
    let mut m = Model::new()?;
    let x = m.input(&[3])?;
    let err = m.apply(Layer::dense(0, 2, true)?, &[foreign]).unwrap_err();
    assert_eq!(err.status, Status::InvalidArgument);
    // a merge of one node, a dense layer on two (the layers are consumed)
    assert_eq!(m.apply(Layer::add()?, &[x]).unwrap_err().status, Status::InvalidArgument);
    assert_eq!(m.apply(Layer::dense(0, 2, true)?, &[x, x]).unwrap_err().status, Status::InvalidArgument);
    // the output is named once
    let y = m.apply(Layer::dense(0, 2, true)?, &[x])?;
    m.set_output(y)?;
    assert_eq!(m.set_output(y).unwrap_err().status, Status::WrongState);
    assert_eq!(m.set_node_name(y, "not a name").unwrap_err().status, Status::InvalidArgument);

    // shapes that do not match in a merge, named in the message
    let mut m = Model::new()?;
    let a = m.input(&[3])?;
    let b = m.input(&[2])?;
    let sum = m.apply(Layer::add()?, &[a, b])?;
    m.set_node_name(sum, "sum")?;
    let err = m.compile_graph(2, Loss::Mse, None, 0).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);
    assert!(err.message.contains("sum"), "{}", err.message);

    // an input the output does not use
    let mut m = Model::new()?;
    let u = m.input(&[3])?;
    let unused = m.input(&[3])?;
    m.set_node_name(unused, "unused")?;
    m.apply(Layer::dense(0, 1, true)?, &[u])?;
    let err = m.compile_graph(2, Loss::Mse, None, 0).unwrap_err();
    assert_eq!(err.status, Status::InvalidArgument);
    assert!(err.message.contains("unused"), "{}", err.message);

    // the wrong number of slices, a wrong shape for one input
    let mut m = two_inputs()?;
    m.compile_graph(4, Loss::Mse, None, 0)?;
    let (xa, xb, t) = (data(2 * 3, 1), data(2 * 2, 2), data(2 * 2, 3));
    assert_eq!(m.predict_inputs(&[&xa]).unwrap_err().status, Status::InvalidArgument);
    assert_eq!(m.predict_inputs(&[&xa, &xb, &xb]).unwrap_err().status, Status::InvalidArgument);
    assert_eq!(m.step_inputs(&[&xa], &t).unwrap_err().status, Status::InvalidArgument);
    assert_eq!(m.predict(&xa).unwrap_err().status, Status::InvalidArgument);
    let three_samples = data(3 * 2, 4);
    assert_eq!(m.predict_inputs(&[&xa, &three_samples]).unwrap_err().status, Status::ShapeMismatch);
    assert_eq!(m.predict_inputs(&[&xa, &xb[..3]]).unwrap_err().status, Status::ShapeMismatch);
    // compiled: no more nodes
    assert_eq!(m.input(&[2]).unwrap_err().status, Status::WrongState);
    Ok(())
}

#[test]
fn chain_models_take_one_slice_or_a_list_of_one() -> Result<()> {
    let mut m = Model::from_spec("dense:3,tanh,dense:1")?;
    m.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.1, 0.0, false, 0.0)?), 1)?;
    assert_eq!(m.input_count(), 1);
    let (x, t) = ([0.0, 1.0, 1.0, 0.0], [1.0, 0.0]);
    assert_eq!(m.predict(&x)?, m.predict_inputs(&[&x])?);
    m.set_input_gradients(true)?;
    m.backward(&x, &t)?;
    let g = m.input_gradient(0)?;
    assert_eq!(g.len(), 4);
    m.backward_inputs(&[&x], &t)?;
    assert_eq!(m.input_gradient(0)?, g);
    Ok(())
}
