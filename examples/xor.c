/* xor.c - XOR with one hidden layer: 2 inputs, 4 sigmoid units, 1 sigmoid
 * output, MSE, SGD with momentum, from a fixed seed. The hidden layer bends
 * the input space so that one output unit can separate the classes. */
#include <nnlib.h>
#include <stdio.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    nnlib_status st_ = (call);                                                 \
    if (st_ != NNLIB_OK) {                                                     \
      fprintf(stderr, "%s: %s\n", nnlib_status_string(st_),                    \
              nnlib_last_error_message());                                     \
      return 1;                                                                \
    }                                                                          \
  } while (0)

int main(void) {
  float x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
  float t[4] = {0, 1, 1, 0};
  nnlib_model *model;
  nnlib_layer *layer;
  nnlib_optimizer *sgd;
  CHECK(nnlib_model_create(&model));
  CHECK(nnlib_dense_create(&layer, 2, 4, 1));
  CHECK(nnlib_model_add(model, layer));
  CHECK(nnlib_activation_create(&layer, NNLIB_ACT_SIGMOID, 0.0f));
  CHECK(nnlib_model_add(model, layer));
  CHECK(nnlib_dense_create(&layer, 4, 1, 1));
  CHECK(nnlib_model_add(model, layer));
  CHECK(nnlib_activation_create(&layer, NNLIB_ACT_SIGMOID, 0.0f));
  CHECK(nnlib_model_add(model, layer));
  CHECK(nnlib_sgd_create(&sgd, 0.5f, 0.9f, 0, 0.0f));
  int64_t in_shape[1] = {2};
  CHECK(nnlib_model_compile(model, in_shape, 1, 4, NNLIB_LOSS_MSE, sgd, 7));

  nnlib_tensor *X, *T, *Y;
  int64_t xs[2] = {4, 2}, ts[2] = {4, 1};
  CHECK(nnlib_tensor_wrap(&X, x, xs, 2));
  CHECK(nnlib_tensor_wrap(&T, t, ts, 2));
  CHECK(nnlib_tensor_create(&Y, ts, 2));
  float loss = 0.0f;
  for (int epoch = 0; epoch < 2000; epoch++)
    CHECK(nnlib_model_step(model, X, T, &loss));
  CHECK(nnlib_model_predict(model, X, Y));

  const float *y = nnlib_tensor_get_data(Y);
  int right = 0;
  for (int i = 0; i < 4; i++) {
    printf("%g xor %g = %.3f (want %g)\n", x[2 * i], x[2 * i + 1], y[i], t[i]);
    right += (y[i] > 0.5f) == (t[i] > 0.5f);
  }
  printf("final_loss=%.6f correct=%d/4\n", loss, right);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_tensor_free(Y);
  nnlib_model_free(model);
  return right == 4 ? 0 : 1;
}
