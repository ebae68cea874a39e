# The cloned loops under emulated CPUs (tests/check_cpu_dispatch.sh): the
# gate passes' clone choice and the layers built on the clones (recurrent
# cells against PyTorch, GELU, the pool's AVX2 rows). Needs qemu-user
# (scripts/packages.txt); not under the sanitizers, whose runtimes do not
# run under qemu's user-mode emulation.
find_program(NNLIB_QEMU_X86_64 qemu-x86_64)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64)$" AND NOT NNLIB_SANITIZE)
  if(NNLIB_QEMU_X86_64)
    add_test(NAME cpu_dispatch
      COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_cpu_dispatch.sh
              ${NNLIB_QEMU_X86_64}
              $<TARGET_FILE:test_internal_gate_math>
              $<TARGET_FILE:test_internal_rnn_torch>
              $<TARGET_FILE:test_rnn>
              $<TARGET_FILE:test_gru_lbr0>
              $<TARGET_FILE:test_internal_linear_gelu>
              $<TARGET_FILE:test_internal_bnpool>
              $<TARGET_FILE:test_internal_pool_select>
              $<TARGET_FILE:test_internal_pool_fold>)
    set_tests_properties(cpu_dispatch PROPERTIES
      ENVIRONMENT "NNLIB_SOURCE_DIR=${PROJECT_SOURCE_DIR};OPENBLAS_NUM_THREADS=1")
  else()
    message(STATUS "qemu-x86_64 not found: the cpu_dispatch test is not "
                   "registered (sudo apt-get install qemu-user, or run "
                   "scripts/setup.sh)")
  endif()
endif()
