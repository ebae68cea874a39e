// The Rust program printed in the top-level README.md (kept identical; cargo
// test builds every example, so the README cannot drift from the API).
use nnlib::{FitOptions, Layer, Loss, Model, Optimizer};
fn main() -> nnlib::Result<()> {
    let (x, t) = ([0., 0., 0., 1., 1., 0., 1., 1.], [0., 1., 1., 0.]);
    let mut m = Model::new()?
        .with(Layer::dense(2, 4, true))?.with(Layer::sigmoid())?
        .with(Layer::dense(4, 1, true))?.with(Layer::sigmoid())?;
    m.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.5, 0.9, false, 0.0)?), 7)?;
    m.fit(&x, &t, FitOptions { epochs: 2000, ..Default::default() })?;
    println!("{:?}", m.predict(&x)?);
    Ok(())
}
