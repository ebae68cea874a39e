//! XOR with one hidden layer, as examples/xor.c: 2 inputs, 4 sigmoid units,
//! 1 sigmoid output, MSE, SGD with momentum, seed 7.
//!     cargo run --example xor
use nnlib::{Layer, Loss, Model, Optimizer};

fn main() -> nnlib::Result<()> {
    let x = [0., 0., 0., 1., 1., 0., 1., 1.];
    let t = [0., 1., 1., 0.];
    let mut model = Model::new()?
        .with(Layer::dense(2, 4, true))?
        .with(Layer::sigmoid())?
        .with(Layer::dense(4, 1, true))?
        .with(Layer::sigmoid())?;
    model.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.5, 0.9, false, 0.0)?), 7)?;
    let mut loss = 0.0;
    for _ in 0..2000 {
        loss = model.step(&x, &t)?;
    }
    let y = model.predict(&x)?;
    let mut right = 0;
    for i in 0..4 {
        println!("{} xor {} = {:.3} (want {})", x[2 * i], x[2 * i + 1], y[i], t[i]);
        right += ((y[i] > 0.5) == (t[i] > 0.5)) as i32;
    }
    println!("final_loss={:.6} correct={}/4", loss, right);
    if right == 4 {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
