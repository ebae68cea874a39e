# ONNX import against ONNX's own backend test cases (libonnx-testdata):
# tests/onnx_conformance.c lists the cases that must pass and those skipped
# with a reason; the test is skipped (77) when the test data is not
# installed. Included by tests/CMakeLists.txt (it includes every
# tests/*.cmake).
add_executable(onnx_conformance ${CMAKE_CURRENT_LIST_DIR}/onnx_conformance.c)
target_link_libraries(onnx_conformance PRIVATE nnlib m)
set(_nnlib_onnx_data /usr/share/libonnx-testdata/data)
if(EXISTS ${_nnlib_onnx_data}/node)
  add_test(NAME onnx_conformance
    COMMAND onnx_conformance ${_nnlib_onnx_data})
  set_tests_properties(onnx_conformance PROPERTIES
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
else()
  message(STATUS "${_nnlib_onnx_data} not found (apt-get install "
                 "libonnx-testdata): the onnx_conformance test is not "
                 "registered")
endif()
