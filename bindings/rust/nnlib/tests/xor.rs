//! XOR: the architecture and seed of examples/xor.c learn it, and give the
//! same predictions the C example prints.

use nnlib::{FitOptions, Layer, Loss, Model, Optimizer};

const X: [f32; 8] = [0., 0., 0., 1., 1., 0., 1., 1.];
const T: [f32; 4] = [0., 1., 1., 0.];

fn xor_model() -> nnlib::Result<Model> {
    let mut m = Model::new()?
        .with(Layer::dense(2, 4, true))?
        .with(Layer::sigmoid())?
        .with(Layer::dense(4, 1, true))?
        .with(Layer::sigmoid())?;
    m.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.5, 0.9, false, 0.0)?), 7)?;
    Ok(m)
}

#[test]
fn xor_learns_with_steps_like_the_c_example() {
    let mut m = xor_model().unwrap();
    let mut loss = 0.0;
    for _ in 0..2000 {
        loss = m.step(&X, &T).unwrap();
    }
    let y = m.predict(&X).unwrap();
    assert_eq!(y.len(), 4);
    for (yi, ti) in y.iter().zip(T.iter()) {
        assert_eq!(*yi > 0.5, *ti > 0.5, "{:?}", y);
    }
    assert!(loss < 0.01, "loss {}", loss);
    assert_eq!(m.step_count().unwrap(), 2000);
    // what examples/xor.c prints for this seed (to 3 decimals)
    if let Ok(path) = std::env::var("NNLIB_XOR_EXAMPLE") {
        let out = std::process::Command::new(path).env("OPENBLAS_NUM_THREADS", "1").output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines: Vec<String> = (0..4)
            .map(|i| format!("{} xor {} = {:.3} (want {})", X[2 * i], X[2 * i + 1], y[i], T[i]))
            .collect();
        lines.push(format!("final_loss={:.6} correct=4/4", loss));
        assert_eq!(text.trim().lines().collect::<Vec<_>>(), lines);
    }
}

#[test]
fn xor_learns_with_fit_and_evaluate() {
    let mut m = xor_model().unwrap();
    let losses = m.fit(&X, &T, FitOptions { epochs: 1500, ..Default::default() }).unwrap();
    assert_eq!(losses.len(), 1500);
    assert!(losses[1499] < losses[0]);
    let (loss, accuracy) = m.evaluate(&X, &T).unwrap();
    assert_eq!(accuracy, 1.0);
    assert!(loss.unwrap() < 0.05);
}

#[test]
fn same_seed_same_weights_and_params_are_slices() {
    let a = xor_model().unwrap();
    let b = xor_model().unwrap();
    let wa = a.layer(0).unwrap().param(0).unwrap();
    let wb = b.layer(0).unwrap().param(0).unwrap();
    assert_eq!(wa, wb);
    assert_eq!(wa.len(), 8);
    assert_eq!(a.layer(0).unwrap().param_shape(0).unwrap(), vec![4, 2]);
    assert_eq!(a.layer(0).unwrap().param_names(), vec!["weight", "bias"]);
    assert_eq!(a.param_count().unwrap(), 17);
    assert_eq!(a.input_shape().unwrap(), vec![2]);
    assert_eq!(a.output_shape().unwrap(), vec![1]);
    let names: Vec<String> = a.layers().iter().map(|l| l.name()).collect();
    assert_eq!(names, ["dense", "sigmoid", "dense", "sigmoid"]);
    assert_eq!(a.layer(1).unwrap().kind(), nnlib::LayerKind::Activation);
}

#[test]
fn writing_a_parameter_changes_the_model() {
    let mut m = xor_model().unwrap();
    m.param_mut(2, 0).unwrap().iter_mut().for_each(|w| *w = 0.0);
    m.param_mut(2, 1).unwrap()[0] = 3.0;
    let y = m.predict(&X).unwrap();
    let expected = 1.0 / (1.0 + (-3.0f32).exp());
    for v in y {
        assert!((v - expected).abs() < 1e-6);
    }
}

#[test]
fn workspaces_predict_from_threads() {
    let mut m = xor_model().unwrap();
    for _ in 0..500 {
        m.step(&X, &T).unwrap();
    }
    let expected = m.predict(&X).unwrap();
    let workspaces = m.workspaces(4).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = workspaces
            .into_iter()
            .map(|mut w| s.spawn(move || (0..200).map(|_| w.predict(&X).unwrap()).last().unwrap()))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), expected);
        }
    });
}

#[test]
fn profiling_and_numerics_checks() {
    let mut m = xor_model().unwrap();
    m.set_profiling(true).unwrap();
    for _ in 0..3 {
        m.step(&X, &T).unwrap();
    }
    let p = m.layer_profile(0).unwrap();
    assert_eq!((p.forward_calls, p.backward_calls), (3, 3));
    assert_eq!(m.layer_profile(1).unwrap().fused, 1);
    assert_eq!(m.layer_profile(7).unwrap_err().status, nnlib::Status::OutOfRange);
    m.set_check_numerics(true).unwrap();
    m.param_mut(0, 0).unwrap()[0] = f32::INFINITY;
    let err = m.step(&X, &T).unwrap_err();
    assert_eq!(err.status, nnlib::Status::Numerical);
    assert!(err.message.contains("layer"), "{}", err.message);
}
