//! Lets this crate's tests and examples find libnnlib at run time without
//! LD_LIBRARY_PATH: an rpath to the directory nnlib-sys linked from.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_NNLIB_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_NNLIB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
    }
}
