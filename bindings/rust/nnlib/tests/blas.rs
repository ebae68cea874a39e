//! nnlib::blas_info: what OpenBLAS chose, and the CPU's vector set against
//! /proc/cpuinfo's flags, read here independently of the library (an upper
//! bound: an emulator such as valgrind may offer the process less).

use nnlib::Simd;

fn simd_from_proc_cpuinfo() -> Option<Simd> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("flags"))?;
    let flags: Vec<&str> = line.split_whitespace().collect();
    let has = |f: &str| flags.contains(&f);
    Some(if has("avx512f") && has("avx512bw") && has("avx512dq") && has("avx512vl") {
        Simd::Avx512
    } else if has("avx2") && has("fma") {
        Simd::Avx2
    } else if has("avx") {
        Simd::Avx
    } else {
        Simd::Sse
    })
}

#[test]
fn blas_info_describes_this_process() {
    let info = nnlib::blas_info().unwrap();
    assert!(!info.kernels.is_empty());
    assert!(info.config.contains("OpenBLAS"), "{}", info.config);
    if let Some(simd) = simd_from_proc_cpuinfo() {
        assert!(info.cpu_simd <= simd, "{:?} above {:?}", info.cpu_simd, simd);
        assert!(info.cpu_simd >= Simd::Sse);
    }
    if std::env::var("OPENBLAS_CORETYPE").as_deref() == Ok("Haswell") {
        assert_eq!(info.kernels, "Haswell");
        assert_eq!(info.kernels_simd, Simd::Avx2);
        assert!(!info.kernels_are_fallback);
    }
    // kernels to set instead only for a fallback of a DYNAMIC_ARCH build
    assert_eq!(
        info.suggested_kernels.is_some(),
        info.kernels_are_fallback && info.config.contains("DYNAMIC_ARCH")
    );
}
