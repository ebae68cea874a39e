//! Model files, descriptions and data through the safe wrapper.

use nnlib::{FitOptions, Loss, Model, Optimizer, OptimizerKind, Status};

const X: [f32; 8] = [0., 0., 0., 1., 1., 0., 1., 1.];
const T: [f32; 4] = [0., 1., 1., 0.];

fn trained() -> Model {
    let mut m = Model::from_spec("dense:4,sigmoid,dense:1,sigmoid").unwrap();
    m.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.5, 0.9, false, 0.0).unwrap()), 7).unwrap();
    m.fit(&X, &T, FitOptions { epochs: 100, ..Default::default() }).unwrap();
    m
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nnlib-rust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn save_load_round_trip() {
    let mut m = trained();
    let expected = m.predict(&X).unwrap();
    let path = temp_path("xor.nnl");
    m.save(&path, false).unwrap();
    let mut loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.predict(&X).unwrap(), expected);
    assert_eq!(loaded.input_shape().unwrap(), vec![2]);
    assert_eq!(loaded.max_batch(), 4);
    assert_eq!(loaded.loss(), Some(Loss::Mse));
    assert_eq!(loaded.layer(0).unwrap().param(0).unwrap(), m.layer(0).unwrap().param(0).unwrap());
    std::fs::remove_file(&path).unwrap();
    let err = Model::load(&path).unwrap_err();
    assert_eq!(err.status, Status::Io);
}

#[test]
fn bytes_round_trip_resumes_training_identically() {
    let mut a = trained();
    let bytes = a.to_bytes(true).unwrap();
    let mut b = Model::from_bytes(&bytes).unwrap();
    assert_eq!(b.step_count().unwrap(), a.step_count().unwrap());
    for _ in 0..10 {
        assert_eq!(a.step(&X, &T).unwrap(), b.step(&X, &T).unwrap());
    }
    assert_eq!(a.predict(&X).unwrap(), b.predict(&X).unwrap());
    let info = nnlib::model_file_info(&bytes).unwrap();
    assert_eq!((info.layer_count, info.param_count, info.max_batch), (4, 17, 4));
    assert_eq!(info.has_optimizer, 1);
    assert_eq!(info.input_rank, 1);
    assert_eq!(info.input_shape[0], 2);
    // damaged bytes are refused with their own statuses
    assert_eq!(Model::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err().status, Status::Truncated);
    assert_eq!(Model::from_bytes(b"definitely not a model file, no").unwrap_err().status, Status::BadMagic);
}

#[test]
fn spec_and_set_optimizer() {
    let mut m = trained();
    assert_eq!(m.spec().unwrap(), "dense:4,sigmoid,dense:1,sigmoid");
    let err = Model::from_spec("dense:4,wobble").unwrap_err();
    assert_eq!(err.status, Status::Parse);
    assert!(err.message.contains("wobble"), "{}", err.message);
    m.set_optimizer(Optimizer::with_defaults(OptimizerKind::Adam, 0.01).unwrap()).unwrap();
    assert_eq!(m.step_count().unwrap(), 0);
    assert!((m.learning_rate().unwrap() - 0.01).abs() < 1e-9);
    m.set_learning_rate(0.02).unwrap();
    m.step(&X, &T).unwrap();
    assert_eq!(m.step_count().unwrap(), 1);
}

#[test]
fn idx_files_load_into_tensors() {
    // a 2-image 2x3 idx3 file and its labels, written here
    let images = temp_path("images-idx3-ubyte");
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
    bytes.extend_from_slice(&[0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 255]);
    std::fs::write(&images, &bytes).unwrap();
    let t = nnlib::load_idx_images(&images, 0).unwrap();
    assert_eq!(t.shape(), vec![2, 2, 3]);
    assert_eq!(&t.as_slice()[..6], &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    let labels = temp_path("labels-idx1-ubyte");
    std::fs::write(&labels, [0u8, 0, 8, 1, 0, 0, 0, 2, 3, 1]).unwrap();
    let l = nnlib::load_idx_labels(&labels, 4, true, 0).unwrap();
    assert_eq!(l.as_slice(), &[0., 0., 0., 1., 0., 1., 0., 0.]);
    let err = nnlib::load_idx_labels(&labels, 2, false, 0).unwrap_err();
    assert_eq!(err.status, Status::OutOfRange);
    assert!(nnlib::dataset_default_dir().is_absolute());
}

#[test]
fn optimizer_options_read_back_also_from_bytes() {
    let mut o = nnlib::optimizer_options(OptimizerKind::AdamW).unwrap();
    o.learning_rate = 0.004;
    o.beta1 = 0.8;
    o.clip_norm = 1.5;
    let opt = Optimizer::new(&o).unwrap();
    let back = opt.options().unwrap();
    assert_eq!((back.learning_rate, back.beta1, back.clip_norm), (0.004, 0.8, 1.5));
    assert_eq!(back.weight_decay, 0.01); // AdamW's default
    let mut m = Model::from_spec("dense:4,sigmoid,dense:1,sigmoid").unwrap();
    m.compile(&[2], 4, Loss::Mse, Some(opt), 7).unwrap();
    m.set_learning_rate(0.002).unwrap();
    let loaded = Model::from_bytes(&m.to_bytes(true).unwrap()).unwrap();
    let got = loaded.optimizer_options().unwrap();
    assert_eq!(got.kind, OptimizerKind::AdamW.code());
    assert_eq!((got.learning_rate, got.beta1, got.clip_norm), (0.002, 0.8, 1.5));
    let plain = Model::from_bytes(&m.to_bytes(false).unwrap()).unwrap();
    assert_eq!(plain.optimizer_options().unwrap_err().status, Status::WrongState);
}


#[test]
fn fit_validated_stops_early_and_restores_the_best_epoch() {
    let make = || {
        let mut m = Model::from_spec("dense:4,sigmoid,dense:1,sigmoid").unwrap();
        m.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.5, 0.9, false, 0.0).unwrap()), 7).unwrap();
        m
    };
    // validation targets opposite to the training ones: learning XOR makes
    // the validation loss worse, so the best epoch is the first
    let flipped: Vec<f32> = T.iter().map(|t| 1.0 - t).collect();
    let opts = || FitOptions { epochs: 30, shuffle: false, ..Default::default() };
    let mut twin = make();
    twin.fit(&X, &T, FitOptions { epochs: 1, shuffle: false, ..Default::default() }).unwrap();
    let (best_loss, _) = twin.evaluate(&X, &flipped).unwrap();
    let mut m = make();
    let v = nnlib::Validation { x: &X, target: &flipped, patience: 3, min_delta: 0.0, restore_best: true };
    let h = m.fit_validated(&X, &T, opts(), &v).unwrap();
    assert!(h.losses.len() < 30 && h.losses.len() == h.validation_losses.len());
    let best = h.validation_losses.iter().cloned().fold(f32::INFINITY, f32::min);
    assert_eq!(h.validation_losses[0], best_loss.unwrap());
    let (now, _) = m.evaluate(&X, &flipped).unwrap();
    assert_eq!(now.unwrap(), best);
    let bad = nnlib::Validation { x: &X[..6], target: &flipped, patience: 0, min_delta: 0.0, restore_best: false };
    assert_eq!(m.fit_validated(&X, &T, opts(), &bad).unwrap_err().status, Status::ShapeMismatch);
}
