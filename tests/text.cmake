# The text data source against benchmarks/char_gpt_torch.py: the script
# re-implements nnlib's generator and file rules in Python so that it trains
# on the same windows; text_offsets prints the library's first offsets and
# tests/check_text_offsets.sh compares the two, on the repository's docs/
# (always there) and on Debian's fortunes (skipped when not installed).
# Included by tests/CMakeLists.txt (it includes every tests/*.cmake).
add_executable(text_offsets ${CMAKE_CURRENT_LIST_DIR}/text_offsets.c)
target_link_libraries(text_offsets PRIVATE nnlib_static)
target_include_directories(text_offsets PRIVATE ${PROJECT_SOURCE_DIR}/src)

find_program(NNLIB_TEXT_PYTHON3 NAMES python3
             PATHS /usr/bin NO_DEFAULT_PATH)
if(NNLIB_TEXT_PYTHON3)
  foreach(corpus docs fortunes)
    if(corpus STREQUAL "docs")
      set(_nnlib_text_dir ${PROJECT_SOURCE_DIR}/docs)
    else()
      set(_nnlib_text_dir /usr/share/games/fortunes)
    endif()
    add_test(NAME text_offsets_${corpus}
      COMMAND ${CMAKE_CURRENT_LIST_DIR}/check_text_offsets.sh
              $<TARGET_FILE:text_offsets> ${NNLIB_TEXT_PYTHON3}
              ${PROJECT_SOURCE_DIR}/benchmarks/char_gpt_torch.py
              ${_nnlib_text_dir})
    set_tests_properties(text_offsets_${corpus} PROPERTIES
      SKIP_RETURN_CODE 77 ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
  endforeach()
else()
  message(STATUS "/usr/bin/python3 not found: the text_offsets tests are "
                 "not registered")
endif()
