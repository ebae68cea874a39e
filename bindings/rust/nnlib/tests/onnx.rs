//! ONNX through the safe wrapper: a model exported and imported again
//! predicts exactly as before (an MLP and a CNN, as bytes and through a
//! file); bad bytes fail with the library's status; an import with a loss
//! and an optimizer trains; `output` picks one output of a PyTorch export
//! of two; `whole_sample` reads a fixed-shape PyTorch export whose bias
//! varies along axis 0 as one sample.

mod common;

use nnlib::{sys, Loss, Model, OnnxOptions, Optimizer, OptimizerKind, Status};

fn mlp() -> Model {
    let mut m = Model::from_spec("dense:16,tanh,dense:8,relu,dense:3").unwrap();
    m.compile(&[6], 8, Loss::None, None, 3).unwrap();
    m
}

/// A CNN whose batchnorm running statistics have moved away from 0 and 1
/// (two training steps), so that the exported statistics matter.
fn cnn() -> Model {
    let mut m = Model::from_spec("conv:4x3x3:p1,batchnorm,relu,maxpool:2,conv:6x3x3,relu,flatten,dense:5").unwrap();
    m.compile(&[2, 8, 8], 8, Loss::Mse, Some(Optimizer::sgd(0.05, 0.0, false, 0.0).unwrap()), 4).unwrap();
    let x = common::data(8 * 2 * 8 * 8, 7);
    let t = common::data(8 * 5, 8);
    for _ in 0..2 {
        m.step(&x, &t).unwrap();
    }
    m
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nnlib-rust-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn defaults_are_the_libraries() {
    let mut c: sys::nnlib_onnx_options = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<sys::nnlib_onnx_options>();
    assert_eq!(unsafe { sys::nnlib_onnx_options_init_size(&mut c, size) }, sys::NNLIB_OK);
    assert_eq!(c.struct_size, size);
    let d = OnnxOptions::default();
    assert_eq!((c.max_batch, c.loss, c.seed), (d.max_batch, d.loss.code(), d.seed));
    assert!(c.optimizer.is_null() && d.optimizer.is_none());
    assert!(c.output.is_null() && d.output.is_none());
    assert_eq!(c.whole_sample, 0);
    assert!(!d.whole_sample);
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../tests/fixtures/onnx/");

/// tests/fixtures/onnx/NAME.txt: "key count values..." lines.
fn fixture_values(name: &str, key: &str) -> Vec<f32> {
    let text = std::fs::read_to_string(format!("{}{}.txt", FIXTURES, name)).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{} ", key))).unwrap();
    line.split_whitespace().skip(2).map(|v| v.parse().unwrap()).collect()
}

/// A PyTorch export of two outputs (y = relu(h), s = sigmoid(h);
/// tests/make_onnx_outputs_fixture.py): `output` picks either, which
/// predicts as PyTorch; no choice, or a name that is no output, fails with
/// the library's status.
#[test]
fn output_picks_one_of_several_graph_outputs() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../tests/fixtures/onnx/two_outputs.onnx");
    let x = fixture_values("two_outputs", "x");
    for name in ["y", "s"] {
        let options = OnnxOptions { output: Some(name.to_string()), ..Default::default() };
        let mut m = Model::from_onnx_file(path, &options).unwrap();
        let got = m.predict(&x).unwrap();
        for (g, w) in got.iter().zip(fixture_values("two_outputs", name)) {
            assert!((g - w).abs() <= 1e-5 * w.abs() + 1e-6, "{}: {} against {}", name, g, w);
        }
    }
    let err = Model::from_onnx_file(path, &OnnxOptions::default()).unwrap_err();
    assert_eq!(err.status, Status::Unsupported);
    assert!(err.message.contains("the graph has 2 outputs ('y', 's')"));
    let options = OnnxOptions { output: Some("z".into()), ..Default::default() };
    let err = Model::from_onnx_file(path, &options).unwrap_err();
    assert_eq!(err.status, Status::InvalidArgument);
    assert!(err.message.contains("output 'z' is not an output of the graph"));
}

/// x [3, 4] of a fixed shape -> Linear, + P [3, 2], Sigmoid, reshape to
/// [6] (tests/make_onnx_whole_fixture.py): batch-first import refuses P,
/// which varies along axis 0; whole_sample takes x as one sample and
/// predicts as PyTorch.
#[test]
fn whole_sample_reads_a_fixed_input_as_one_sample() {
    let path = format!("{}whole_sample.onnx", FIXTURES);
    let err = Model::from_onnx_file(&path, &OnnxOptions::default()).unwrap_err();
    assert_eq!(err.status, Status::Unsupported);
    assert!(err.message.contains("a constant added to a graph tensor"));
    let options = OnnxOptions { max_batch: 1, whole_sample: true, ..Default::default() };
    let mut m = Model::from_onnx_file(&path, &options).unwrap();
    assert_eq!(m.input_shape().unwrap(), vec![3, 4]);
    let got = m.predict(&fixture_values("whole_sample", "x")).unwrap();
    let want = fixture_values("whole_sample", "y");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5 * w.abs() + 1e-6, "{} against {}", g, w);
    }
}

#[test]
fn mlp_round_trip_through_bytes_predicts_the_same() {
    let mut m = mlp();
    let x = common::data(5 * 6, 1);
    let expected = m.predict(&x).unwrap();
    let bytes = m.to_onnx_bytes().unwrap();
    assert_eq!(&bytes[..2], &[8, 8]); // field 1, ir_version, is 8
    let mut back = Model::from_onnx_bytes(&bytes, &OnnxOptions::default()).unwrap();
    assert_eq!(back.input_shape().unwrap(), vec![6]);
    assert_eq!(back.max_batch(), 64);
    assert_eq!(back.loss(), Some(Loss::None));
    assert_eq!(back.predict(&x).unwrap(), expected);
}

#[test]
fn cnn_round_trip_through_a_file_predicts_the_same() {
    let mut m = cnn();
    let x = common::data(5 * 2 * 8 * 8, 2);
    let expected = m.predict(&x).unwrap();
    let path = temp_path("cnn.onnx");
    m.save_onnx(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), m.to_onnx_bytes().unwrap());
    let options = OnnxOptions { max_batch: 5, ..Default::default() };
    let mut back = Model::from_onnx_file(&path, &options).unwrap();
    assert_eq!(back.max_batch(), 5);
    assert_eq!(back.input_shape().unwrap(), vec![2, 8, 8]);
    assert_eq!(back.predict(&x).unwrap(), expected);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(Model::from_onnx_file(&path, &options).unwrap_err().status, Status::Io);
}

#[test]
fn bad_bytes_fail_with_the_library_status() {
    let err = Model::from_onnx_bytes(b"\x0a\xff\x01 these are not an ONNX model", &OnnxOptions::default()).unwrap_err();
    assert_eq!(err.status, Status::CorruptFile);
    assert!(err.message.contains("ONNX"), "{}", err.message);
    let bytes = mlp().to_onnx_bytes().unwrap();
    let err = Model::from_onnx_bytes(&bytes[..bytes.len() / 2], &OnnxOptions::default()).unwrap_err();
    assert_eq!(err.status, Status::CorruptFile);
    // an optimizer made for a failed import is freed by it (valgrind)
    let options = OnnxOptions { loss: Loss::Mse, optimizer: Some(nnlib::optimizer_options(OptimizerKind::Adam).unwrap()), ..Default::default() };
    assert_eq!(Model::from_onnx_bytes(b"\x0a\xff\x01", &options).unwrap_err().status, Status::CorruptFile);
}

#[test]
fn fine_tuning_an_import_changes_the_loss() {
    let bytes = mlp().to_onnx_bytes().unwrap();
    let x = common::data(5 * 6, 5);
    let mut target = vec![0f32; 5 * 3];
    for (i, class) in [0usize, 1, 2, 1, 0].iter().enumerate() {
        target[i * 3 + class] = 1.0;
    }
    let mut adam = nnlib::optimizer_options(OptimizerKind::Adam).unwrap();
    adam.learning_rate = 0.01;
    let options = OnnxOptions { max_batch: 8, loss: Loss::SoftmaxCe, optimizer: Some(adam), seed: 2, output: None, whole_sample: false };
    // one options value serves several imports: each makes its own optimizer
    for _ in 0..2 {
        let mut m = Model::from_onnx_bytes(&bytes, &options).unwrap();
        assert_eq!(m.loss(), Some(Loss::SoftmaxCe));
        assert_eq!(m.optimizer_options().unwrap().kind, OptimizerKind::Adam.code());
        assert_eq!(m.step_count().unwrap(), 0);
        let before = m.predict(&x).unwrap();
        let first = m.step(&x, &target).unwrap();
        assert_eq!(m.step_count().unwrap(), 1);
        let (second, _) = m.evaluate(&x, &target).unwrap();
        assert!(first.is_finite() && second.unwrap() < first, "{} then {:?}", first, second);
        assert_ne!(m.predict(&x).unwrap(), before);
    }
    // a loss without an optimizer trains with plain SGD at 0.01
    let mut m = Model::from_onnx_bytes(&bytes, &OnnxOptions { loss: Loss::SoftmaxCe, ..Default::default() }).unwrap();
    assert_eq!(m.optimizer_options().unwrap().kind, OptimizerKind::Sgd.code());
    assert!((m.learning_rate().unwrap() - 0.01).abs() < 1e-9);
    let first = m.step(&x, &target).unwrap();
    assert!(m.evaluate(&x, &target).unwrap().0.unwrap() < first);
}
