# The data tests: test_idx writes gzip fixtures itself through zlib, which
# libnnlib links privately; the short Fashion-MNIST run trains for real.
if(TARGET test_idx)
  target_link_libraries(test_idx PRIVATE ZLIB::ZLIB)
endif()
if(TEST test_fashion_short)
  set_tests_properties(test_fashion_short PROPERTIES TIMEOUT 600 LABELS data)
endif()
