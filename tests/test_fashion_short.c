/* A short run on real data: 4000 Fashion-MNIST training images, one epoch of
 * a 784-128-10 ReLU MLP with Adam, then the 10000 test images. Chance is
 * 0.10; a working data path, model and optimizer reach well over 0.70.
 * The data set is a declared dependency (scripts/setup.sh installs
 * dataset-fashion-mnist), so its absence fails the test loudly. */
#include "test_support.h"

#include <stdio.h>

enum { TRAIN_SAMPLES = 4000, BATCH = 32, CLASSES = 10 };

static void load_split(nnlib_split split, int64_t limit, nnlib_tensor **x,
                       nnlib_tensor **y) {
  const char *dir = nnlib_dataset_default_dir();
  nnlib_status st = nnlib_dataset_load_split(x, y, dir, split, limit, 0);
  if (st != NNLIB_OK)
    fail_msg("this test needs Fashion-MNIST, not readable in %s: %s: %s "
             "(scripts/setup.sh installs it)",
             dir, nnlib_status_string(st), nnlib_last_error_message());
}

static nnlib_model *mlp(void) {
  nnlib_optimizer_options o;
  nnlib_optimizer *adam = NULL;
  ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
  ASSERT_OK(nnlib_optimizer_create(&adam, &o));
  return ts_model(28 * 28, BATCH, NNLIB_LOSS_SOFTMAX_CE, adam, 42,
                  ts_dense(0, 128, 1), ts_act(NNLIB_ACT_RELU, 0.0f),
                  ts_dense(0, CLASSES, 1), NULL);
}

static void test_one_epoch_beats_070(void **s) {
  (void)s;
  nnlib_tensor *train_x = NULL, *train_y = NULL, *test_x = NULL,
               *test_y = NULL;
  load_split(NNLIB_SPLIT_TRAIN, TRAIN_SAMPLES, &train_x, &train_y);
  load_split(NNLIB_SPLIT_TEST, 0, &test_x, &test_y);
  assert_int_equal(nnlib_tensor_get_dim(train_x, 0), TRAIN_SAMPLES);
  assert_int_equal(nnlib_tensor_get_dim(test_x, 0), 10000);

  nnlib_model *m = mlp();
  nnlib_fit_options fit;
  ASSERT_OK(nnlib_fit_options_init(&fit));
  fit.epochs = 1;
  fit.batch_size = BATCH;
  ASSERT_OK(nnlib_model_fit(m, train_x, train_y, &fit));
  float loss = 0.0f, accuracy = 0.0f;
  ASSERT_OK(nnlib_model_evaluate(m, test_x, test_y, &loss, &accuracy));
  printf("one epoch on %d samples: test loss %.4f, test accuracy %.4f\n",
         TRAIN_SAMPLES, (double)loss, (double)accuracy);
  assert_true(accuracy > 0.70f);

  nnlib_model_free(m);
  nnlib_tensor_free(train_x);
  nnlib_tensor_free(train_y);
  nnlib_tensor_free(test_x);
  nnlib_tensor_free(test_y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_epoch_beats_070),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
