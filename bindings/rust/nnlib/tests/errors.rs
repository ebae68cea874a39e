//! Errors carry the status and the library's message; ownership holds on
//! failure paths; panics in the progress closure stop training cleanly.

use nnlib::{Error, FitOptions, Layer, Loss, Model, Optimizer, Status};

const X: [f32; 8] = [0., 0., 0., 1., 1., 0., 1., 1.];
const T: [f32; 4] = [0., 1., 1., 0.];

fn model() -> Model {
    let mut m = Model::new().unwrap().with(Layer::dense(2, 3, true)).unwrap().with(Layer::tanh()).unwrap()
        .with(Layer::dense(3, 1, true)).unwrap();
    m.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.1, 0.0, false, 0.0).unwrap()), 1).unwrap();
    m
}

#[test]
fn every_status_maps_both_ways_with_the_library_text() {
    for code in -18..=-1 {
        let s = Status::from_code(code);
        assert!(!matches!(s, Status::Unknown(_)), "{}", code);
        assert_eq!(s.code(), code);
        assert_ne!(s.text(), "unknown status");
    }
    assert_eq!(Status::from_code(-99), Status::Unknown(-99));
    assert_eq!(Status::ShapeMismatch.text(), "shape mismatch");
}

#[test]
fn shape_mismatch_carries_code_and_message() {
    let mut m = Model::new().unwrap().with(Layer::dense(3, 4, true)).unwrap();
    let err = m.compile(&[2], 1, Loss::None, None, 0).unwrap_err();
    assert_eq!(err.status, Status::ShapeMismatch);
    assert_eq!(err.code(), -3);
    assert!(err.message.contains("dense: input has 2 features, layer expects 3"), "{}", err.message);
    assert_eq!(err.to_string(), format!("shape mismatch: {}", err.message));
}

#[test]
fn invalid_arguments_and_states() {
    assert_eq!(Layer::dense(0, -1, true).err().unwrap().status, Status::InvalidArgument);
    let err = Optimizer::sgd(-1.0, 0.0, false, 0.0).err().unwrap();
    assert_eq!(err.status, Status::InvalidArgument);
    assert!(err.message.contains("learning rate"));
    let mut m = Model::new().unwrap().with(Layer::dense(2, 1, true)).unwrap();
    assert_eq!(m.predict(&X).unwrap_err().status, Status::WrongState);
    let mut m = model();
    let big = [0f32; 20]; // 10 samples > max batch 4
    assert_eq!(m.step(&big, &[0f32; 10]).unwrap_err().status, Status::TooLarge);
    assert_eq!(m.layer(0).unwrap().param(9).unwrap_err().status, Status::OutOfRange);
    // slices that are not whole samples are refused before reaching C
    assert_eq!(m.predict(&[1.0, 2.0, 3.0]).unwrap_err().status, Status::ShapeMismatch);
    assert_eq!(m.step(&X, &[0.0; 3]).unwrap_err().status, Status::ShapeMismatch);
    let mut nan = X;
    nan[0] = f32::NAN;
    assert_eq!(m.step(&nan, &T).unwrap_err().status, Status::Numerical);
}

#[test]
fn failed_add_and_compile_consume_their_arguments() {
    let mut m = model();
    // compiled: add fails and frees the layer (no double free at drop)
    assert_eq!(m.add(Layer::relu().unwrap()).unwrap_err().status, Status::WrongState);
    let mut bad = Model::new().unwrap().with(Layer::dense(5, 1, true)).unwrap();
    let err = bad.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.1, 0.0, false, 0.0).unwrap()), 0);
    assert_eq!(err.unwrap_err().status, Status::ShapeMismatch);
}

#[test]
fn progress_closure_sees_every_batch_and_can_stop() {
    let mut m = model();
    let mut seen = Vec::new();
    let mut f = |p: &nnlib::Progress| {
        seen.push((p.epoch, p.batch, p.samples_done));
        true
    };
    let losses = m.fit(&X, &T, FitOptions { epochs: 3, batch_size: 3, shuffle: true, progress: Some(&mut f) }).unwrap();
    assert_eq!(losses.len(), 3);
    assert_eq!(seen, vec![(0, 0, 3), (0, 1, 4), (1, 0, 3), (1, 1, 4), (2, 0, 3), (2, 1, 4)]);

    let mut stop = |p: &nnlib::Progress| p.batch < 1;
    let err: Error = m.fit(&X, &T, FitOptions { epochs: 5, batch_size: 1, shuffle: false, progress: Some(&mut stop) })
        .unwrap_err();
    assert_eq!(err.status, Status::Cancelled);
    assert!(err.message.contains("epoch 0, batch 1"), "{}", err.message);
}

#[test]
fn panic_in_progress_closure_stops_training_and_resumes() {
    let mut m = model();
    let before = m.step_count().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut f = |p: &nnlib::Progress| {
            if p.epoch == 1 {
                panic!("stop in epoch 1");
            }
            true
        };
        let _ = m.fit(&X, &T, FitOptions { epochs: 10, batch_size: 4, shuffle: true, progress: Some(&mut f) });
    }));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"stop in epoch 1"));
    assert_eq!(m.step_count().unwrap(), before + 2); // nothing after the panic
    assert_eq!(m.predict(&X).unwrap().len(), 4); // still usable
}
