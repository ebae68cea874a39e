# Reliability checks that run on every build (docs/RELIABILITY.md); the
# longer ones (sanitizers, valgrind, tsan, fuzzing, ABI) are scripts/check_*.

# --- fuzz regressions: every fuzz/fuzz_<name>.c is also linked with
# fuzz/replay.c (no libFuzzer, any compiler) into replay_<name>, which
# replays fuzz/regressions/<name>/ (findings, kept forever) and
# fuzz/corpus/<name>/ (the seeds).
set(_nnlib_fuzz_dir ${PROJECT_SOURCE_DIR}/fuzz)
file(GLOB _nnlib_fuzz_targets CONFIGURE_DEPENDS ${_nnlib_fuzz_dir}/fuzz_*.c)
foreach(_source ${_nnlib_fuzz_targets})
  get_filename_component(_target ${_source} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" _name ${_target})
  add_executable(replay_${_name} ${_nnlib_fuzz_dir}/replay.c ${_source})
  target_link_libraries(replay_${_name} PRIVATE nnlib ZLIB::ZLIB m)
  target_compile_definitions(replay_${_name} PRIVATE
    NNLIB_FUZZ_REGRESSIONS="${_nnlib_fuzz_dir}/regressions/${_name}"
    NNLIB_FUZZ_CORPUS="${_nnlib_fuzz_dir}/corpus/${_name}")
  add_test(NAME fuzz_replay_${_name} COMMAND replay_${_name})
  set_tests_properties(fuzz_replay_${_name} PROPERTIES
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1" LABELS fuzz)
endforeach()

# --- the public header alone, as C11 and C++11, warnings as errors.
if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  find_program(NNLIB_CXX_FOR_HEADER NAMES clang++ clang++-14 c++)
else()
  find_program(NNLIB_CXX_FOR_HEADER NAMES g++ c++)
endif()
if(NNLIB_CXX_FOR_HEADER)
  set(_nnlib_header_flags)
  if(NNLIB_SANITIZE)
    list(APPEND _nnlib_header_flags -fsanitize=${NNLIB_SANITIZE})
  endif()
  add_test(NAME header_c_cxx
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_header.sh ${CMAKE_C_COMPILER}
            ${NNLIB_CXX_FOR_HEADER} ${PROJECT_SOURCE_DIR}/include
            $<TARGET_FILE:nnlib> ${_nnlib_header_flags})
else()
  message(WARNING "no C++ compiler found: the header_c_cxx test is skipped")
endif()
