//! The convolutional layers through the safe crate: a small CNN learns a
//! toy task, its description names every layer, and a saved copy predicts
//! the same bits.

use nnlib::{Conv2dOptions, Layer, LayerKind, Loss, Model, Optimizer, Pool2dOptions, PoolKind};

const N: usize = 8;

/// Images of 1x6x6: class 1 has a bright left half, class 0 a bright right.
fn data() -> (Vec<f32>, Vec<f32>) {
    let mut x = vec![0.0f32; N * 36];
    let mut t = vec![0.0f32; N];
    for s in 0..N {
        t[s] = (s % 2) as f32;
        for i in 0..36 {
            let left = i % 6 < 3;
            x[s * 36 + i] = if left == (s % 2 == 1) { 1.0 } else { 0.1 * (i % 5) as f32 };
        }
    }
    (x, t)
}

fn cnn() -> nnlib::Result<Model> {
    let conv = Conv2dOptions { padding: (1, 1), bias: false, ..Default::default() };
    let mut m = Model::new()?
        .with(Layer::conv2d(4, (3, 3), conv))?
        .with(Layer::batch_norm(0.1, 1e-5))?
        .with(Layer::relu())?
        .with(Layer::max_pool2d(2))?
        .with(Layer::pool2d(PoolKind::Average, (3, 3), Some((1, 1)), (1, 1)))?
        .with(Layer::pool2d(PoolKind::Min, (1, 1), None, (0, 0)))?
        .with(Layer::dropout(0.25))?
        .with(Layer::global_avg_pool())?
        .with(Layer::flatten())?
        .with(Layer::dense(0, 2, true))?;
    m.compile(&[1, 6, 6], N as i64, Loss::SoftmaxCe, Some(Optimizer::sgd(0.1, 0.9, false, 0.0)?), 5)?;
    Ok(m)
}

#[test]
fn a_small_cnn_learns_and_round_trips() {
    let mut m = cnn().unwrap();
    assert_eq!(
        m.spec().unwrap(),
        "conv:4x3x3:p1:nobias,batchnorm,relu,maxpool:2,avgpool:3:s1:p1,minpool:1,dropout:0.25,global_avgpool,flatten,dense:2"
    );
    assert_eq!(m.layer(0).unwrap().kind(), LayerKind::Conv2d);
    assert_eq!(m.layer(3).unwrap().output_shape().unwrap(), vec![4, 3, 3]);
    let (x, t) = data();
    let first = m.step(&x, &t).unwrap();
    let mut last = first;
    for _ in 0..60 {
        last = m.step(&x, &t).unwrap();
    }
    assert!(last < first, "{} -> {}", first, last);
    let (_, accuracy) = m.evaluate(&x, &t).unwrap();
    assert_eq!(accuracy, 1.0);
    let bytes = m.to_bytes(false).unwrap();
    let mut again = Model::from_bytes(&bytes).unwrap();
    assert_eq!(again.predict(&x).unwrap(), m.predict(&x).unwrap());
}

#[test]
fn bad_shapes_and_arguments_are_errors() {
    assert!(Layer::conv2d(2, (3, 3), Conv2dOptions { stride: (0, 1), ..Default::default() }).is_err());
    assert!(Layer::dropout(1.0).is_err());
    let mut m = Model::new().unwrap().with(Layer::conv2d(2, (7, 7), Conv2dOptions::default())).unwrap();
    let err = m.compile(&[1, 6, 6], 2, Loss::Mse, None, 1).unwrap_err();
    assert!(err.to_string().contains("larger than the padded input"), "{}", err);
}

/// The pooling options of library 1.5 reach the layer: the description
/// names each, a ceil-mode pool has the extra row and column, and a bad
/// option is an error naming it.
#[test]
fn pool_options_reach_the_layer() {
    let max = Pool2dOptions { stride: Some((2, 2)), padding: (0, 1, 2, 0), dilation: (1, 2), ceil_mode: true, ..Default::default() };
    let avg = Pool2dOptions { padding: (1, 1, 1, 1), ceil_mode: true, count_include_pad: false, stride: Some((2, 2)), ..Default::default() };
    let mut m = Model::new()
        .unwrap()
        .with(Layer::pool2d_with(PoolKind::Max, (3, 3), max))
        .unwrap()
        .with(Layer::pool2d_with(PoolKind::Average, (2, 2), avg))
        .unwrap();
    m.compile(&[1, 10, 9], 2, Loss::None, None, 1).unwrap();
    assert_eq!(m.spec().unwrap(), "maxpool:3:s2:p0x1x2x0:d1x2:ceil,avgpool:2:p1:ceil:exclude_pad");
    // rows: (10 + 2 - 3) / 2 rounded up + 1 = 6, the last would start at
    // 10 (in the bottom padding): 5; columns: (9 + 1 - 5) / 2 up + 1 = 4
    assert_eq!(m.layer(0).unwrap().output_shape().unwrap(), vec![1, 5, 4]);
    // rows: 5 + 2 - 2 = 5, /2 up + 1 = 4, the last would start at 6 = 5 +
    // 1 (the bottom padding): 3; columns: 4 + 2 - 2 = 4, /2 + 1 = 3
    assert_eq!(m.layer(1).unwrap().output_shape().unwrap(), vec![1, 3, 3]);
    let dilated_average = Pool2dOptions { dilation: (2, 2), ..Default::default() };
    let err = Layer::pool2d_with(PoolKind::Average, (2, 2), dilated_average).err().expect("refused");
    assert!(err.to_string().contains("average pooling has none"), "{}", err);
}
