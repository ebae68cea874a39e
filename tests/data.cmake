# The data tests: test_idx writes gzip fixtures itself through zlib, which
# libnnlib links privately; the short Fashion-MNIST run trains for real.
if(TARGET test_idx)
  target_link_libraries(test_idx PRIVATE ZLIB::ZLIB)
endif()
if(TEST test_fashion_short)
  set_tests_properties(test_fashion_short PROPERTIES TIMEOUT 600 LABELS data)
endif()
# The CNN example end to end on 2000 images for one epoch: it runs and
# prints its key=value summary line (the full run is in the README).
if(TARGET fashion_cnn)
  add_test(NAME example_fashion_cnn
           COMMAND fashion_cnn --limit 2000 --epochs 1 --lr 0.003)
  set_tests_properties(example_fashion_cnn PROPERTIES TIMEOUT 600 LABELS data
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "model=cnn params=824554 test_accuracy=0\\.[5-9][0-9]* epochs=1 seconds=")
endif()
# The graph examples the same way: the residual network (a stem, three
# stages of residual blocks) on 2000 images for one epoch, and the
# two-input model (image and quadrant means joined by concat).
if(TARGET fashion_resnet)
  add_test(NAME example_fashion_resnet
           COMMAND fashion_resnet --limit 2000 --epochs 1 --width 16)
  set_tests_properties(example_fashion_resnet PROPERTIES TIMEOUT 600
    LABELS data ENVIRONMENT "OPENBLAS_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "77754 parameters.*test_accuracy=0\\.[4-9][0-9]* epochs=1 seconds=")
endif()
if(TARGET two_inputs)
  add_test(NAME example_two_inputs
           COMMAND two_inputs --limit 2000 --epochs 1)
  set_tests_properties(example_two_inputs PROPERTIES TIMEOUT 600
    LABELS data ENVIRONMENT "OPENBLAS_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "52258 parameters.*test_accuracy=0\\.[4-9][0-9]* epochs=1 seconds=")
endif()
