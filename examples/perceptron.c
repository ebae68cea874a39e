/* perceptron.c - Rosenblatt's perceptron: one dense unit with a step
 * activation, trained with MSE + SGD (the step passes gradients straight
 * through, which makes this exactly the perceptron learning rule).
 * AND, OR and NOT are linearly separable and are learned; XOR is not, and no
 * single line can separate it, so the perceptron never gets all four right. */
#include <nnlib.h>
#include <stdio.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    nnlib_status st_ = (call);                                                 \
    if (st_ != NNLIB_OK) {                                                     \
      fprintf(stderr, "%s: %s\n", nnlib_status_string(st_),                    \
              nnlib_last_error_message());                                     \
      return -1;                                                               \
    }                                                                          \
  } while (0)

/* Trains a perceptron on n samples of `inputs` features; returns how many of
 * the n it gets right afterwards, and prints its answers. */
static int train(const char *name, int inputs, int n, float *x, float *t) {
  nnlib_model *model;
  nnlib_layer *dense, *step;
  nnlib_optimizer *sgd;
  CHECK(nnlib_model_create(&model));
  CHECK(nnlib_dense_create(&dense, inputs, 1, 1));
  CHECK(nnlib_model_add(model, dense));
  CHECK(nnlib_activation_create(&step, NNLIB_ACT_STEP, 0.0f));
  CHECK(nnlib_model_add(model, step));
  CHECK(nnlib_sgd_create(&sgd, 0.1f, 0.0f, 0, 0.0f));
  int64_t in_shape[1] = {inputs};
  CHECK(nnlib_model_compile(model, in_shape, 1, 1, NNLIB_LOSS_MSE, sgd, 42));

  nnlib_tensor *X, *T, *Y;
  int64_t xs[2] = {n, inputs}, ts[2] = {n, 1};
  CHECK(nnlib_tensor_wrap(&X, x, xs, 2));
  CHECK(nnlib_tensor_wrap(&T, t, ts, 2));
  CHECK(nnlib_tensor_create(&Y, ts, 2));
  nnlib_fit_options fit;
  nnlib_fit_options_init(&fit);
  fit.epochs = 100;
  fit.batch_size = 1; /* one sample at a time, as Rosenblatt did */
  CHECK(nnlib_model_fit(model, X, T, &fit));
  CHECK(nnlib_model_predict(model, X, Y));

  int right = 0;
  const float *y = nnlib_tensor_get_data(Y);
  for (int i = 0; i < n; i++) {
    printf("  %-4s", i == 0 ? name : "");
    for (int j = 0; j < inputs; j++)
      printf(" %g", x[i * inputs + j]);
    printf(" -> %g (want %g)\n", y[i], t[i]);
    right += y[i] == t[i];
  }
  printf("  %s: %d/%d correct%s\n\n", name, right, n,
         right == n ? "" : " - not linearly separable");
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_tensor_free(Y);
  nnlib_model_free(model);
  return right;
}

int main(void) {
  float x2[8] = {0, 0, 0, 1, 1, 0, 1, 1};
  float and_t[4] = {0, 0, 0, 1}, or_t[4] = {0, 1, 1, 1}, xor_t[4] = {0, 1, 1, 0};
  float x1[2] = {0, 1}, not_t[2] = {1, 0};
  printf("perceptron (dense + step, MSE, SGD lr 0.1, 100 epochs)\n\n");
  int ok = train("AND", 2, 4, x2, and_t) == 4;
  ok &= train("OR", 2, 4, x2, or_t) == 4;
  ok &= train("NOT", 1, 2, x1, not_t) == 2;
  int xor_right = train("XOR", 2, 4, x2, xor_t);
  printf("AND, OR, NOT learned: %s; XOR learned: %s\n", ok ? "yes" : "no",
         xor_right == 4 ? "yes" : "no (it needs a hidden layer: see xor.c)");
  return ok && xor_right >= 0 && xor_right < 4 ? 0 : 1;
}
