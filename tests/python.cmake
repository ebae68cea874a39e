# The Python bindings' pytest suite (bindings/python/tests), run with
# Debian's interpreter (python3-numpy, python3-pytest, python3-torch) against
# the library just built.
set(_nnlib_python_env
    "NNLIB_LIBRARY=$<TARGET_FILE:nnlib>"
    "OPENBLAS_NUM_THREADS=1"
    "PYTHONDONTWRITEBYTECODE=1")
if(TARGET xor)
  # the XOR parity test runs the C example and compares what both print
  list(APPEND _nnlib_python_env "NNLIB_XOR_EXAMPLE=$<TARGET_FILE:xor>")
endif()
add_test(NAME python_bindings
  COMMAND /usr/bin/python3 -m pytest -q bindings/python/tests
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(python_bindings PROPERTIES
  ENVIRONMENT "${_nnlib_python_env}"
  TIMEOUT 900)
