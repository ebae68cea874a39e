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
