//! Links libnnlib: from $NNLIB_LIB_DIR if set, else from the directory
//! `pkg-config --variable=libdir nnlib` names (pkg-config run as a program;
//! no crates), else from the linker's default search path.
use std::env;
use std::process::Command;

fn pkg_config_libdir() -> Option<String> {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(program)
        .args(["--variable=libdir", "nnlib"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_string();
    if dir.is_empty() {
        None
    } else {
        Some(dir)
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=NNLIB_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    let dir = match env::var("NNLIB_LIB_DIR") {
        Ok(d) if !d.is_empty() => Some(d),
        _ => pkg_config_libdir(),
    };
    match dir {
        Some(d) => {
            println!("cargo:rustc-link-search=native={}", d);
            // DEP_NNLIB_LIB_DIR for dependents (the nnlib crate sets an rpath)
            println!("cargo:lib_dir={}", d);
        }
        None => println!(
            "cargo:warning=nnlib-sys: neither NNLIB_LIB_DIR nor pkg-config \
             named libnnlib's directory; linking -lnnlib from the default path"
        ),
    }
    println!("cargo:rustc-link-lib=dylib=nnlib");
}
