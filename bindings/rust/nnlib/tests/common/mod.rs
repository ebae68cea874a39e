//! What the graph tests share: deterministic data and a two-input model.
#![allow(dead_code)] // each test binary uses its own part

use nnlib::{Layer, Model, Node, Result};

/// Deterministic values in [-1, 1).
pub fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn named(m: &mut Model, node: Node, name: &str) -> Result<Node> {
    m.set_node_name(node, name)?;
    Ok(node)
}

pub const TWO_INPUTS: &str = "a=input:3,b=input:2,da=dense:4(a),db=dense:4(b),concat(da,db),tanh,dense:2";

pub fn two_inputs() -> Result<Model> {
    let mut m = Model::new()?;
    let a = m.input(&[3])?;
    named(&mut m, a, "a")?;
    let b = m.input(&[2])?;
    named(&mut m, b, "b")?;
    let da = m.apply(Layer::dense(0, 4, true)?, &[a])?;
    named(&mut m, da, "da")?;
    let db = m.apply(Layer::dense(0, 4, true)?, &[b])?;
    named(&mut m, db, "db")?;
    let joined = m.apply(Layer::concat(0)?, &[da, db])?;
    let h = m.apply(Layer::tanh()?, &[joined])?;
    let y = m.apply(Layer::dense(0, 2, true)?, &[h])?;
    m.set_output(y)?;
    Ok(m)
}
