//! Drop frees every handle: with a counting allocator hooked into the
//! library, live allocations return to zero. One test in its own binary
//! (the hook is process-wide and must be set while no object is alive).

use std::alloc::{alloc, dealloc, Layout};
use std::os::raw::c_void;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use nnlib::sys;
use nnlib::{FitOptions, Layer, Loss, Model, Optimizer, Status, Tensor};

static LIVE: AtomicIsize = AtomicIsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);
const HEADER: usize = 64; // keeps the 64-byte alignment; holds the size

unsafe extern "C" fn counting_alloc(size: usize, alignment: usize, _user: *mut c_void) -> *mut c_void {
    assert!(alignment <= HEADER);
    let p = alloc(Layout::from_size_align(size + HEADER, HEADER).unwrap());
    if p.is_null() {
        return p as *mut c_void;
    }
    (p as *mut usize).write(size);
    LIVE.fetch_add(1, Ordering::SeqCst);
    TOTAL.fetch_add(1, Ordering::SeqCst);
    p.add(HEADER) as *mut c_void
}

unsafe extern "C" fn counting_free(ptr: *mut c_void, _user: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    let p = (ptr as *mut u8).sub(HEADER);
    let size = (p as *mut usize).read();
    dealloc(p, Layout::from_size_align(size + HEADER, HEADER).unwrap());
    LIVE.fetch_sub(1, Ordering::SeqCst);
}

fn churn() {
    // models with layers and optimizers, trained and dropped
    for i in 0..200u64 {
        let mut m = Model::new().unwrap().with(Layer::dense(2, 4, true)).unwrap().with(Layer::relu()).unwrap()
            .with(Layer::dense(4, 1, true)).unwrap();
        let opt = if i % 2 == 0 { Optimizer::sgd(0.1, 0.9, false, 0.0) } else {
            Optimizer::with_defaults(nnlib::OptimizerKind::Adam, 0.01)
        };
        m.compile(&[2], 4, Loss::Mse, Some(opt.unwrap()), i).unwrap();
        m.fit(&[0., 0., 0., 1., 1., 0., 1., 1.], &[0., 1., 1., 0.], FitOptions { epochs: 2, ..Default::default() })
            .unwrap();
        let _ = m.predict(&[1.0, 2.0]).unwrap();
        if i % 3 == 0 {
            let _ws = m.workspaces(2).unwrap();
        }
    }
    // layers and optimizers never added, tensors
    for _ in 0..200 {
        let _l = Layer::dense(3, 3, true).unwrap();
        let _o = Optimizer::sgd(0.1, 0.0, false, 0.0).unwrap();
        let mut t = Tensor::new(&[3, 4]).unwrap();
        t.fill(2.0).unwrap();
        assert_eq!(t.as_slice().iter().sum::<f32>(), 24.0);
        let _c = Tensor::from_slice(&[1.0, 2.0], &[2, 1]).unwrap();
    }
    // failure paths that take ownership
    for _ in 0..50 {
        let mut m = Model::new().unwrap().with(Layer::dense(3, 1, true)).unwrap();
        let err = m.compile(&[2], 1, Loss::Mse, Some(Optimizer::sgd(0.1, 0.0, false, 0.0).unwrap()), 0);
        assert_eq!(err.unwrap_err().status, Status::ShapeMismatch);
        let mut m = Model::new().unwrap().with(Layer::dense(2, 1, true)).unwrap();
        m.compile(&[2], 1, Loss::None, None, 0).unwrap();
        assert_eq!(m.add(Layer::tanh().unwrap()).unwrap_err().status, Status::WrongState);
    }
}

#[test]
fn drop_frees_every_allocation() {
    let hook = sys::nnlib_allocator {
        struct_size: std::mem::size_of::<sys::nnlib_allocator>(),
        alloc: Some(counting_alloc),
        free: Some(counting_free),
        user: std::ptr::null_mut(),
    };
    assert_eq!(unsafe { sys::nnlib_set_allocator(&hook) }, sys::NNLIB_OK);
    churn();
    let live = LIVE.load(Ordering::SeqCst);
    let total = TOTAL.load(Ordering::SeqCst);
    assert_eq!(unsafe { sys::nnlib_set_allocator(std::ptr::null()) }, sys::NNLIB_OK);
    assert!(total > 2000, "the hook saw only {} allocations", total);
    assert_eq!(live, 0, "{} of {} allocations were not freed", live, total);
}
