# The command-line tool end to end: `cli` trains on Fashion-MNIST (needs the
# data package), `cli_text` trains byte-level language models on a few KB of
# text the script writes itself (no data set needed).
if(TARGET nnlib_cli)
  add_test(NAME cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli_test.sh
                            $<TARGET_FILE:nnlib_cli> mnist)
  set_tests_properties(cli PROPERTIES TIMEOUT 600 LABELS data
                       ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
  add_test(NAME cli_text COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli_test.sh
                                 $<TARGET_FILE:nnlib_cli> text)
  set_tests_properties(cli_text PROPERTIES TIMEOUT 120
                       ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endif()
