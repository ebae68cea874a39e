//! The transpose layer through the safe crate (library 1.6): forward and
//! backward of [2, 3, 4] -> [4, 2, 3] against index loops, the kind and
//! description read back, a file round trip, and the errors.

use nnlib::{Layer, LayerKind, Loss, Model, Status};

/// y[s, w, c, h] = x[s, c, h, w] for x [2, 2, 3, 4]: perm [2, 0, 1].
fn permuted(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for s in 0..2 {
        for c in 0..2 {
            for h in 0..3 {
                for w in 0..4 {
                    y[s * 24 + w * 6 + c * 3 + h] = x[s * 24 + c * 12 + h * 4 + w];
                }
            }
        }
    }
    y
}

#[test]
fn forward_and_backward_permute_like_loops() {
    let mut m = Model::new().unwrap().with(Layer::transpose(&[2, 0, 1])).unwrap();
    m.compile(&[2, 3, 4], 2, Loss::None, None, 1).unwrap();
    assert_eq!(m.output_shape().unwrap(), vec![4, 2, 3]);
    let layer = m.layer(0).unwrap();
    assert_eq!(layer.kind(), LayerKind::Transpose);
    assert_eq!(layer.name(), "transpose");
    assert_eq!(m.spec().unwrap(), "transpose:2x0x1");
    let x: Vec<f32> = (0..48).map(|k| k as f32 * 0.5 - 3.0).collect();
    assert_eq!(m.forward(&x).unwrap(), permuted(&x));
    m.set_input_gradients(true).unwrap();
    // dy laid out as y: dx[s, c, h, w] = dy[s, w, c, h]
    let dy: Vec<f32> = (0..48).map(|k| (k * 7 % 11) as f32).collect();
    m.backward_output(&dy).unwrap();
    let dx = m.input_gradient(0).unwrap();
    assert_eq!(permuted(&dx), dy);
    let bytes = m.to_bytes(false).unwrap();
    let mut again = Model::from_bytes(&bytes).unwrap();
    assert_eq!(again.spec().unwrap(), "transpose:2x0x1");
    assert_eq!(again.predict(&x).unwrap(), m.predict(&x).unwrap());
}

#[test]
fn bad_permutations_and_ranks_are_refused() {
    let err = Layer::transpose(&[1, 1]).err().unwrap();
    assert_eq!(err.status, Status::InvalidArgument);
    assert!(err.message.contains("perm[1] is 1 again"), "{}", err.message);
    assert_eq!(Layer::transpose(&[]).err().unwrap().status, Status::InvalidArgument);
    assert_eq!(Layer::transpose(&[0, 2]).err().unwrap().status, Status::InvalidArgument);
    let mut m = Model::new().unwrap().with(Layer::transpose(&[1, 0])).unwrap();
    let err = m.compile(&[2, 3, 4], 1, Loss::None, None, 0).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);
    assert!(err.message.contains("of rank 3"), "{}", err.message);
}
