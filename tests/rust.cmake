# The Rust bindings' tests (bindings/rust: nnlib-sys and nnlib), against the
# library just built, offline. Added only where cargo exists (Debian package
# `cargo`, listed in scripts/packages.txt). Build outputs go to the build
# tree (CARGO_TARGET_DIR) so the source tree stays clean.
find_program(NNLIB_CARGO cargo)
if(NNLIB_CARGO)
  set(_nnlib_rust_env
      "NNLIB_LIB_DIR=$<TARGET_FILE_DIR:nnlib>"
      "LD_LIBRARY_PATH=$<TARGET_FILE_DIR:nnlib>"
      "CARGO_TARGET_DIR=${PROJECT_BINARY_DIR}/cargo-target"
      "NNLIB_HEADER=${PROJECT_SOURCE_DIR}/include/nnlib.h"
      "OPENBLAS_NUM_THREADS=1")
  if(TARGET xor)
    list(APPEND _nnlib_rust_env "NNLIB_XOR_EXAMPLE=$<TARGET_FILE:xor>")
  endif()
  add_test(NAME rust_bindings
    COMMAND ${NNLIB_CARGO} test --offline
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/bindings/rust)
  set_tests_properties(rust_bindings PROPERTIES
    ENVIRONMENT "${_nnlib_rust_env}"
    TIMEOUT 1200)
else()
  message(STATUS "cargo not found: the Rust bindings' tests are not registered")
endif()
