//! The Rust structs have the C sizes: each *_options_init writes the
//! library's own sizeof into struct_size, and fit reports it in progress.

use std::mem::size_of;

use nnlib::sys;
use nnlib::{FitOptions, Layer, Loss, Model, Optimizer, OptimizerKind};

#[test]
fn options_structs_have_the_library_sizes() {
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW, OptimizerKind::RmsProp] {
        let o = nnlib::optimizer_options(kind).unwrap();
        assert_eq!(o.struct_size, size_of::<sys::nnlib_optimizer_options>());
        assert_eq!(o.kind, kind.code());
    }
    unsafe {
        let mut f: sys::nnlib_fit_options = std::mem::zeroed();
        assert_eq!(sys::nnlib_fit_options_init(&mut f), sys::NNLIB_OK);
        assert_eq!(f.struct_size, size_of::<sys::nnlib_fit_options>());
        assert_eq!((f.epochs, f.batch_size, f.shuffle), (1, 0, 1));
        let mut g: sys::nnlib_gradcheck_options = std::mem::zeroed();
        assert_eq!(sys::nnlib_gradcheck_options_init(&mut g), sys::NNLIB_OK);
        assert_eq!(g.struct_size, size_of::<sys::nnlib_gradcheck_options>());
    }
    // the allocator hook has no init function: pointer-sized fields only
    assert_eq!(size_of::<sys::nnlib_allocator>(), 4 * size_of::<usize>());
}

#[test]
fn progress_struct_has_the_library_size() {
    let mut m = Model::new().unwrap().with(Layer::dense(1, 1, true)).unwrap();
    m.compile(&[1], 2, Loss::Mse, Some(Optimizer::sgd(0.1, 0.0, false, 0.0).unwrap()), 0).unwrap();
    let mut sizes = Vec::new();
    let mut f = |p: &nnlib::Progress| {
        sizes.push(p.struct_size);
        true
    };
    m.fit(&[1.0, 2.0], &[0.0, 1.0], FitOptions { epochs: 2, progress: Some(&mut f), ..Default::default() }).unwrap();
    assert_eq!(sizes, vec![size_of::<sys::nnlib_progress>(); 2]);
}

#[test]
fn enum_values_agree_with_the_library() {
    // kinds and names the library reports for layers it builds
    let cases = [
        (nnlib::Activation::Identity, "identity"),
        (nnlib::Activation::Step, "step"),
        (nnlib::Activation::Sigmoid, "sigmoid"),
        (nnlib::Activation::Tanh, "tanh"),
        (nnlib::Activation::Relu, "relu"),
        (nnlib::Activation::LeakyRelu, "leaky_relu"),
        (nnlib::Activation::Softplus, "softplus"),
        (nnlib::Activation::Softmax, "softmax"),
    ];
    for (act, name) in cases {
        let l = Layer::activation(act, 0.01).unwrap();
        assert_eq!(l.kind(), nnlib::LayerKind::Activation);
        assert_eq!(l.name(), name);
    }
    assert_eq!(Layer::dense(1, 1, false).unwrap().kind(), nnlib::LayerKind::Dense);
    for loss in [Loss::None, Loss::Mse, Loss::BceLogits, Loss::SoftmaxCe] {
        let mut m = Model::new().unwrap().with(Layer::dense(2, 2, true)).unwrap();
        m.compile(&[2], 1, loss, None, 0).unwrap();
        assert_eq!(m.loss(), Some(loss));
    }
    assert_eq!(nnlib::version() / 10000, sys::NNLIB_VERSION_MAJOR);
    assert!(nnlib::version_string().starts_with("1."));
}
