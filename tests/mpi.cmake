# libnnlib_mpi's tests (issue 8), registered only where MPI and mpirun were
# found. Each runs under `mpirun -np K` for K = 2 and 3 (3 catches uneven
# shares) with a timeout, so that a rank left waiting fails the test instead
# of hanging the suite. Open MPI refuses root without --allow-run-as-root
# and more ranks than cores without --oversubscribe; shared memory and
# loopback only (btl self,vader: no network needed).
if(NOT TARGET nnlib_mpi)
  return()
endif()

# The companion as a library: exports, header, install and consumers.
add_test(NAME mpi_library
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/check_mpi_library.sh
          ${PROJECT_BINARY_DIR} $<TARGET_FILE:nnlib> $<TARGET_FILE:nnlib_mpi>
          ${PROJECT_SOURCE_DIR} "${NNLIB_SANITIZE}")
set_tests_properties(mpi_library PROPERTIES TIMEOUT 300 LABELS mpi)

if(NOT MPIEXEC_EXECUTABLE)
  message(STATUS "mpirun not found: libnnlib_mpi's tests are not registered")
  return()
endif()

# Ranks yield while they wait: ctest runs other tests beside them.
set(_nnlib_mpi_run ${MPIEXEC_EXECUTABLE} --oversubscribe --mca btl self,vader
                   --mca mpi_yield_when_idle 1)
execute_process(COMMAND id -u OUTPUT_VARIABLE _nnlib_uid
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(_nnlib_uid STREQUAL "0")
  list(APPEND _nnlib_mpi_run --allow-run-as-root)
endif()
# Under sanitizers (ignored otherwise): Open MPI keeps memory until exit,
# which is not nnlib's to judge; its components stay loaded and stacks are
# unwound fully, so that lsan_openmpi.supp can name them and nnlib's own
# leaks are still reported.
set(_nnlib_mpi_env "OPENBLAS_NUM_THREADS=1"
    "OMPI_MCA_mca_base_component_disable_dlclose=1"
    "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/mpi/lsan_openmpi.supp:print_suppressions=0"
    "ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1")

foreach(_name mpi_equivalence mpi_failure)
  add_executable(${_name} ${CMAKE_CURRENT_SOURCE_DIR}/mpi/${_name}.c)
  target_link_libraries(${_name} PRIVATE nnlib_mpi nnlib MPI::MPI_C m)
  foreach(_ranks 2 3)
    add_test(NAME ${_name}_np${_ranks}
      COMMAND ${_nnlib_mpi_run} -np ${_ranks} $<TARGET_FILE:${_name}>
              ${CMAKE_CURRENT_BINARY_DIR})
    set_tests_properties(${_name}_np${_ranks} PROPERTIES
      TIMEOUT 120 LABELS mpi ENVIRONMENT "${_nnlib_mpi_env}"
      FAIL_REGULAR_EXPRESSION "FAILED")
  endforeach()
endforeach()

# The command-line tool under mpirun, end to end on Fashion-MNIST.
if(TARGET nnlib_cli)
  add_test(NAME cli_mpi
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/cli_mpi_test.sh
            $<TARGET_FILE:nnlib_cli> ${_nnlib_mpi_run})
  set_tests_properties(cli_mpi PROPERTIES
    TIMEOUT 300 LABELS "mpi;data" ENVIRONMENT "${_nnlib_mpi_env}")
endif()
