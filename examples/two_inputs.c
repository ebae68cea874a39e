/* two_inputs.c - a model with two inputs on Fashion-MNIST: the image, and
 * a small vector of side information about it, joined before the
 * classifier.
 *
 *   two_inputs [--data DIR] [--epochs N] [--batch B] [--limit N] [--seed S]
 *              [--lr X]
 *
 * The side information is computed here in C from the image itself: 4
 * numbers per sample, the mean intensity of each 14x14 quadrant (top left,
 * top right, bottom left, bottom right). A real application would feed
 * something the image does not hold (a sensor reading, a category); the
 * point here is the plumbing: two inputs, two branches, one concat.
 *
 *   image [1, 28, 28] -> conv 8 3x3 pad 1 -> relu -> maxpool 2
 *                     -> conv 16 3x3 pad 1 -> relu -> maxpool 2
 *                     -> dense 64 -> relu                      f [64]
 *   quadrants [4]     -> dense 8 -> relu                       v [8]
 *   concat(f, v) [72] -> dense 10
 *
 * Softmax cross-entropy on class indices, Adam (lr 1e-3), batches of 64,
 * 3 epochs by default. Every call that takes data takes one tensor per
 * input, in the order the inputs were declared: {images, quadrants}.
 * Prints the model description, one line per epoch, then the summary line
 * test_accuracy=... epochs=... seconds=... where seconds is the wall time
 * of the training loop (the per-epoch test evaluations included). */
#include <nnlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    nnlib_status st_ = (call);                                                 \
    if (st_ != NNLIB_OK) {                                                     \
      fprintf(stderr, "%s: %s\n", nnlib_status_string(st_),                    \
              nnlib_last_error_message());                                     \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

enum { SIDE_FEATURES = 4 }; /* quadrant means */

typedef struct config {
  const char *data_dir; /* NULL: nnlib_dataset_default_dir() */
  int64_t epochs, limit, batch;
  uint64_t seed;
  float lr;
} config;

static void usage(const char *program) {
  fprintf(stderr, "usage: %s [--data DIR] [--epochs N] [--batch B] "
                  "[--limit N] [--seed S] [--lr X]\n",
          program);
  exit(2);
}

static config parse_args(int argc, char **argv) {
  config c = {NULL, 3, 0, 64, 1, 1e-3f};
  for (int i = 1; i < argc; i++) {
    const char *option = argv[i];
    if (i + 1 == argc)
      usage(argv[0]);
    const char *value = argv[++i];
    if (strcmp(option, "--data") == 0)
      c.data_dir = value;
    else if (strcmp(option, "--epochs") == 0)
      c.epochs = strtoll(value, NULL, 10);
    else if (strcmp(option, "--batch") == 0)
      c.batch = strtoll(value, NULL, 10);
    else if (strcmp(option, "--limit") == 0)
      c.limit = strtoll(value, NULL, 10);
    else if (strcmp(option, "--seed") == 0)
      c.seed = strtoull(value, NULL, 10);
    else if (strcmp(option, "--lr") == 0)
      c.lr = strtof(value, NULL);
    else
      usage(argv[0]);
  }
  if (c.epochs < 1 || c.limit < 0 || c.batch < 1 || !(c.lr > 0.0f))
    usage(argv[0]);
  return c;
}

/* The model takes the layer; the new node reads `inputs`. */
static nnlib_node apply(nnlib_model *m, nnlib_layer *layer,
                        const nnlib_node *inputs, size_t count) {
  nnlib_node node;
  CHECK(nnlib_model_apply(m, layer, inputs, count, &node));
  return node;
}

static nnlib_node conv_relu_pool(nnlib_model *m, nnlib_node x,
                                 int64_t channels) {
  nnlib_conv2d_options o;
  nnlib_layer *conv, *relu, *pool;
  CHECK(nnlib_conv2d_options_init(&o));
  o.padding_h = o.padding_w = 1;
  CHECK(nnlib_conv2d_create(&conv, channels, 3, 3, &o));
  CHECK(nnlib_activation_create(&relu, NNLIB_ACT_RELU, 0.0f));
  CHECK(nnlib_pool2d_create(&pool, NNLIB_LAYER_MAXPOOL2D, 2, 2, NULL));
  x = apply(m, conv, &x, 1);
  x = apply(m, relu, &x, 1);
  return apply(m, pool, &x, 1);
}

/* dense(features) -> relu: a dense layer flattens an image input itself. */
static nnlib_node dense_relu(nnlib_model *m, nnlib_node x, int64_t features) {
  nnlib_layer *dense, *relu;
  CHECK(nnlib_dense_create(&dense, 0, features, 1));
  CHECK(nnlib_activation_create(&relu, NNLIB_ACT_RELU, 0.0f));
  x = apply(m, dense, &x, 1);
  return apply(m, relu, &x, 1);
}

/* The graph of the header comment; the model's output is its last node. */
static void build_graph(nnlib_model *m) {
  int64_t image_shape[3] = {1, 28, 28}, side_shape[1] = {SIDE_FEATURES};
  nnlib_node image, side;
  CHECK(nnlib_model_input(m, image_shape, 3, &image)); /* input 0 */
  CHECK(nnlib_model_input(m, side_shape, 1, &side));   /* input 1 */
  CHECK(nnlib_model_set_node_name(m, image, "image"));
  CHECK(nnlib_model_set_node_name(m, side, "quadrants"));
  nnlib_node f = conv_relu_pool(m, image, 8);
  f = dense_relu(m, conv_relu_pool(m, f, 16), 64);
  nnlib_node v = dense_relu(m, side, 8);
  CHECK(nnlib_model_set_node_name(m, f, "f"));
  CHECK(nnlib_model_set_node_name(m, v, "v"));
  nnlib_layer *concat, *head;
  CHECK(nnlib_concat_create(&concat, 0)); /* features: [64] + [8] -> [72] */
  nnlib_node joined[2] = {f, v};
  nnlib_node x = apply(m, concat, joined, 2);
  CHECK(nnlib_dense_create(&head, 0, 10, 1));
  apply(m, head, &x, 1);
}

static nnlib_model *build_model(const config *c) {
  nnlib_model *m;
  nnlib_optimizer_options o;
  nnlib_optimizer *opt;
  CHECK(nnlib_model_create(&m));
  build_graph(m);
  CHECK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
  o.learning_rate = c->lr;
  CHECK(nnlib_optimizer_create(&opt, &o));
  CHECK(nnlib_model_compile_graph(m, c->batch, NNLIB_LOSS_SOFTMAX_CE, opt,
                                  c->seed));
  return m;
}

/* The side input of [N, 1, 28, 28] images: [N, 4], the mean intensity of
 * each 14x14 quadrant, in the order top left, top right, bottom left,
 * bottom right. */
static nnlib_tensor *quadrant_means(const nnlib_tensor *images) {
  int64_t n = nnlib_tensor_get_dim(images, 0);
  int64_t h = nnlib_tensor_get_dim(images, 2);
  int64_t w = nnlib_tensor_get_dim(images, 3);
  int64_t shape[2] = {n, SIDE_FEATURES};
  nnlib_tensor *side;
  CHECK(nnlib_tensor_create(&side, shape, 2));
  const float *x = nnlib_tensor_get_data_const(images);
  float *v = nnlib_tensor_get_data(side);
  for (int64_t s = 0; s < n; s++) {
    const float *image = x + s * h * w;
    double sums[SIDE_FEATURES] = {0};
    for (int64_t r = 0; r < h; r++)
      for (int64_t col = 0; col < w; col++)
        sums[2 * (r >= h / 2) + (col >= w / 2)] += image[r * w + col];
    for (int q = 0; q < SIDE_FEATURES; q++)
      v[s * SIDE_FEATURES + q] = (float)(sums[q] / (double)(h / 2 * (w / 2)));
  }
  return side;
}

static double now_seconds(void) {
  struct timespec t;
  timespec_get(&t, TIME_UTC);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* [N, 28, 28] images as [N, 1, 28, 28]: the same floats. */
static void as_nchw(nnlib_tensor *images) {
  int64_t shape[4] = {nnlib_tensor_get_dim(images, 0), 1,
                      nnlib_tensor_get_dim(images, 1),
                      nnlib_tensor_get_dim(images, 2)};
  CHECK(nnlib_tensor_set_shape(images, shape, 4));
}

static void print_model(const nnlib_model *m, int64_t samples,
                        int64_t batch) {
  char spec[1024];
  size_t needed = 0;
  int64_t params = 0;
  CHECK(nnlib_model_get_spec(m, spec, sizeof spec, &needed));
  CHECK(nnlib_model_get_param_count(m, &params));
  printf("%s\n%lld parameters, %lld training samples, batch %lld\n", spec,
         (long long)params, (long long)samples, (long long)batch);
}

int main(int argc, char **argv) {
  config c = parse_args(argc, argv);
  nnlib_tensor *train_x, *train_y, *test_x, *test_y;
  CHECK(nnlib_dataset_load_split(&train_x, &train_y, c.data_dir,
                                 NNLIB_SPLIT_TRAIN, c.limit, 0));
  CHECK(nnlib_dataset_load_split(&test_x, &test_y, c.data_dir, NNLIB_SPLIT_TEST,
                                 0, 0));
  as_nchw(train_x);
  as_nchw(test_x);
  nnlib_tensor *train_side = quadrant_means(train_x);
  nnlib_tensor *test_side = quadrant_means(test_x);
  const nnlib_tensor *train_in[2] = {train_x, train_side};
  const nnlib_tensor *test_in[2] = {test_x, test_side};
  nnlib_model *m = build_model(&c);
  print_model(m, nnlib_tensor_get_dim(train_x, 0), c.batch);

  nnlib_fit_options fit;
  CHECK(nnlib_fit_options_init(&fit));
  fit.batch_size = c.batch;
  float train_loss = 0.0f, test_loss = 0.0f, accuracy = 0.0f;
  fit.epoch_losses = &train_loss; /* fit runs one epoch per call */
  double start = now_seconds();
  for (int64_t e = 0; e < c.epochs; e++) {
    double epoch_start = now_seconds();
    CHECK(nnlib_model_fit_inputs(m, train_in, 2, train_y, &fit, NULL, NULL));
    double trained = now_seconds();
    CHECK(nnlib_model_evaluate_inputs(m, test_in, 2, test_y, &test_loss,
                                      &accuracy));
    printf("epoch %2lld  train_loss %.4f  test_loss %.4f  test_accuracy "
           "%.4f  %.1fs\n",
           (long long)e + 1, (double)train_loss, (double)test_loss,
           (double)accuracy, trained - epoch_start);
    fflush(stdout);
  }
  double seconds = now_seconds() - start;
  printf("test_accuracy=%.4f epochs=%lld seconds=%.1f\n", (double)accuracy,
         (long long)c.epochs, seconds);
  nnlib_model_free(m);
  nnlib_tensor_free(train_x);
  nnlib_tensor_free(train_y);
  nnlib_tensor_free(train_side);
  nnlib_tensor_free(test_x);
  nnlib_tensor_free(test_y);
  nnlib_tensor_free(test_side);
  return 0;
}
