# The command-line tool end to end (needs the Fashion-MNIST package).
if(TARGET nnlib_cli)
  add_test(NAME cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli_test.sh
                            $<TARGET_FILE:nnlib_cli>)
  set_tests_properties(cli PROPERTIES TIMEOUT 600 LABELS data
                       ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endif()
