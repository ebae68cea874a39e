# Old clients (docs/ABI_POLICY.md, docs/RELIABILITY.md): tests/old_clients/
# old_client.c built against the released 1.0.0 and 1.2.0 headers alone
# (tests/old_clients/include-1.x/nnlib.h; this tree's include/ is not on
# its path) and linked to this build's shared library by file, so that it
# calls the library exactly as a program compiled back then would.
foreach(version 1.0 1.2)
  string(REPLACE "." "_" id ${version})
  set(target test_old_client_${id})
  add_executable(${target} ${CMAKE_CURRENT_SOURCE_DIR}/old_clients/old_client.c)
  target_include_directories(${target} PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/old_clients/include-${version})
  target_link_libraries(${target} PRIVATE $<TARGET_FILE:nnlib> m)
  add_dependencies(${target} nnlib)
  add_test(NAME ${target} COMMAND ${target})
  set_tests_properties(${target} PROPERTIES
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endforeach()
