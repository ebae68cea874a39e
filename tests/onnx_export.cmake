# ONNX export checked by tools outside nnlib. test_onnx_export (the CMocka
# test, tests/test_onnx_export.c) exports small models of every layer kind
# into onnx_export_cases/ beside random inputs and nnlib's predictions;
# then ONNX's checker (python3-onnx, full_check) validates every file and
# ONNX Runtime (onnxruntime-node, installed by scripts/ort_setup.sh into
# build-ort/) runs them against nnlib's outputs. Each is skipped (exit 77)
# with a message when its tool is missing; scripts/test.sh installs both.
set(NNLIB_ONNX_CASES ${CMAKE_CURRENT_BINARY_DIR}/onnx_export_cases)
set(NNLIB_ORT_DIR ${PROJECT_SOURCE_DIR}/build-ort CACHE PATH
    "where scripts/ort_setup.sh installed onnxruntime-node (node_modules/ inside)")
set_property(TEST test_onnx_export APPEND PROPERTY ENVIRONMENT
             "NNLIB_ONNX_EXPORT_DIR=${NNLIB_ONNX_CASES}")
set_tests_properties(test_onnx_export PROPERTIES FIXTURES_SETUP onnx_export_cases)

if(EXISTS /usr/bin/python3)
  add_test(NAME onnx_export_checker
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/onnx_export/check_export.py
            ${NNLIB_ONNX_CASES})
else()
  add_test(NAME onnx_export_checker
    COMMAND sh -c "echo 'SKIP: /usr/bin/python3 not found'; exit 77")
endif()

find_program(NNLIB_NODE NAMES node nodejs)
if(NNLIB_NODE)
  add_test(NAME onnx_export_ort
    COMMAND ${NNLIB_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/onnx_export/run_ort.js
            ${NNLIB_ONNX_CASES} ${NNLIB_ORT_DIR})
else()
  add_test(NAME onnx_export_ort
    COMMAND sh -c "echo 'SKIP: node not found (scripts/ort_setup.sh installs it)'; exit 77")
endif()
set_tests_properties(onnx_export_checker onnx_export_ort PROPERTIES
  FIXTURES_REQUIRED onnx_export_cases SKIP_RETURN_CODE 77)
