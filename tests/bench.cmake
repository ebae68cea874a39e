# nnlib-bench's JSON lines and to_markdown.py's tables, briefly (the field
# names are read by scripts outside the project; speed is not judged here).
if(TARGET nnlib-bench)
  add_test(NAME bench_smoke
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/bench_smoke.py
            $<TARGET_FILE:nnlib-bench>
            ${PROJECT_SOURCE_DIR}/benchmarks/to_markdown.py)
  # ASan, valgrind and busy machines slow the gpt rounds down several times
  set_tests_properties(bench_smoke PROPERTIES TIMEOUT 900)
endif()

# compare_onnxruntime.py with one round of two small cases (mlp-small batch
# 32, gpt batch 1), its result fields and the refusal of outputs that
# disagree; skipped (77) without node or onnxruntime-node (scripts/ort_setup.sh).
set(NNLIB_ORT_DIR ${PROJECT_SOURCE_DIR}/build-ort CACHE PATH
    "where scripts/ort_setup.sh installed onnxruntime-node (node_modules/ inside)")
if(TARGET nnlib-bench AND EXISTS /usr/bin/python3)
  add_test(NAME ort_bench_smoke
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/ort_bench_smoke.py
            $<TARGET_FILE:nnlib-bench> ${NNLIB_ORT_DIR}
            ${CMAKE_CURRENT_BINARY_DIR}/ort_bench_smoke)
  set_tests_properties(ort_bench_smoke PROPERTIES SKIP_RETURN_CODE 77
                       TIMEOUT 600)
endif()

# The recording of a step's GEMMs and its replay (issue 17), with the
# benchmark's own sources, linked as nnlib-bench is: nnlib's static archive
# with its GEMM seam wrapped, so the library's products are recorded here
# too. The archive comes first, so the library's calls resolve to it.
if(TARGET nnlib-bench)
  add_executable(bench_replay_unit bench_replay_unit.c
    ${PROJECT_SOURCE_DIR}/benchmarks/bench_models.c
    ${PROJECT_SOURCE_DIR}/benchmarks/bench_record.c
    ${PROJECT_SOURCE_DIR}/benchmarks/bench_replay.c)
  target_include_directories(bench_replay_unit PRIVATE
    ${PROJECT_SOURCE_DIR}/benchmarks ${PROJECT_SOURCE_DIR}/src
    ${OPENBLAS_INCLUDE_DIRS})
  target_link_libraries(bench_replay_unit PRIVATE nnlib_static
    nnlib_test_support)
  target_link_options(bench_replay_unit PRIVATE "LINKER:--wrap=nnlib__gemm"
                      "LINKER:--wrap=nnlib__gemm_batch"
                      "LINKER:--wrap=nnlib__gemm_units_run")
  add_test(NAME bench_replay_unit COMMAND bench_replay_unit)
  set_tests_properties(bench_replay_unit PROPERTIES
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endif()
