/* cmd_eval.c - nnlib eval: test accuracy and the confusion matrix of a saved
 * model, with Fashion-MNIST's class names. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void eval_usage(void) {
  printf("usage: nnlib eval FILE.nnl [--data DIR] [--limit N]\n"
         "       nnlib eval FILE.onnx [--data DIR] [--limit N] "
         "[--onnx-output NAME]\n"
         "                 [--onnx-whole-sample]\n\n"
         "Accuracy and confusion matrix of a saved model on the test split of\n"
         "an MNIST-format directory (default: %s).\n"
         "An ONNX model is imported first; it must output 10 classes from\n"
         "784 pixels per sample ([1, 28, 28], [28, 28] or [784]). Its\n"
         "test_loss is the softmax cross-entropy of its outputs (the loss\n"
         "nnlib train uses), 0 when the model ends in a softmax.\n"
         "--onnx-output NAME picks the graph output to score, for an ONNX\n"
         "graph of several outputs; --onnx-whole-sample imports each graph\n"
         "input, of a fixed shape, as one whole sample (docs/ONNX.md).\n"
         "-h, --help: this help.\n",
         nnlib_dataset_default_dir());
}

static int64_t argmax(const float *v, int64_t k) {
  int64_t best = 0;
  for (int64_t i = 1; i < k; i++)
    if (v[i] > v[best])
      best = i;
  return best;
}

/* rows: true class, columns: predicted class */
static void print_confusion(const int64_t counts[10][10]) {
  printf("\nconfusion matrix (rows: true class, columns: predicted)\n");
  printf("%-12s", "");
  for (int c = 0; c < 10; c++)
    printf(" %5d", c);
  printf("   recall\n");
  for (int r = 0; r < 10; r++) {
    int64_t total = 0;
    printf("%d %-10s", r, cli_class_names[r]);
    for (int c = 0; c < 10; c++) {
      printf(" %5lld", (long long)counts[r][c]);
      total += counts[r][c];
    }
    printf("   %.3f\n", total ? (double)counts[r][r] / (double)total : 0.0);
  }
}

/* report_loss: evaluate the model's loss too (else test_loss prints 0) */
static int evaluate(nnlib_model *m, const nnlib_tensor *x,
                    const nnlib_tensor *y, bool report_loss) {
  int64_t n = nnlib_tensor_get_dim(x, 0), k = 0;
  size_t rank;
  nnlib_status st = nnlib_model_get_output_shape(m, &k, 1, &rank);
  if (st != NNLIB_OK || rank != 1 || k != 10) {
    fprintf(stderr, "nnlib eval: the model's output is not 10 classes\n");
    return 1;
  }
  float loss = 0.0f, acc;
  st = nnlib_model_evaluate(m, x, y, report_loss ? &loss : NULL, &acc);
  if (st != NNLIB_OK)
    return cli_fail("eval", "evaluating", st);
  nnlib_tensor *out = NULL;
  int64_t shape[2] = {n, 10};
  if ((st = nnlib_tensor_create(&out, shape, 2)) != NNLIB_OK ||
      (st = nnlib_model_predict(m, x, out)) != NNLIB_OK) {
    /* the message first: the next nnlib call may replace it */
    int rc = cli_fail("eval", "predicting", st);
    nnlib_tensor_free(out);
    return rc;
  }
  static int64_t counts[10][10];
  memset(counts, 0, sizeof counts);
  const float *p = nnlib_tensor_get_data(out);
  const float *t = nnlib_tensor_get_data_const(y);
  bool one_hot = nnlib_tensor_get_rank(y) == 2;
  for (int64_t i = 0; i < n; i++) {
    int64_t truth = one_hot ? argmax(t + i * 10, 10) : (int64_t)t[i];
    counts[truth][argmax(p + i * 10, 10)]++;
  }
  nnlib_tensor_free(out);
  print_confusion((const int64_t(*)[10])counts);
  printf("\ntest_accuracy=%.4f test_loss=%.4f samples=%lld\n", acc, loss,
         (long long)n);
  return 0;
}

/* A model's loss is reported when it has one; an imported ONNX model that
 * ends in a softmax outputs probabilities, which cross-entropy on logits
 * would misjudge. */
static bool reports_loss(nnlib_model *m, const char *file) {
  if (nnlib_model_get_loss(m) == NNLIB_LOSS_NONE)
    return false;
  return !cli_has_extension(file, ".onnx") ||
         strcmp(cli_output_layer_name(m), "softmax") != 0;
}

/* Class indices serve softmax cross-entropy only; a model trained with MSE
 * or without a loss (an ONNX import saved by nnlib convert) is scored
 * against one-hot rows, which every model with 10 outputs accepts. */
static int one_hot_labels(nnlib_model *m) {
  nnlib_loss loss = nnlib_model_get_loss(m);
  return loss == NNLIB_LOSS_MSE || loss == NNLIB_LOSS_NONE;
}

int cmd_eval(int argc, char **argv) {
  cli_args a;
  if (!cli_args_init(&a, argc, argv))
    return 1;
  if (cli_has_flag(&a, "help")) {
    eval_usage();
    cli_args_free(&a);
    return 0;
  }
  const char *data = cli_get(&a, "data", NULL);
  cli_onnx_flags flags = cli_get_onnx_flags(&a);
  int64_t limit;
  bool ok = cli_get_i64(&a, "limit", 0, 0, INT64_MAX, &limit);
  const char *file = cli_positional(&a);
  ok = ok && cli_all_used(&a, "eval") &&
       cli_onnx_flags_fit("eval", file, &flags);
  cli_args_free(&a);
  if (!ok || file == NULL) {
    if (ok)
      fprintf(stderr, "nnlib eval: which model file? (nnlib eval FILE.nnl)\n");
    return 2;
  }
  nnlib_model *m = NULL;
  nnlib_tensor *x = NULL, *y = NULL;
  /* an ONNX file holds no loss: its logits are scored as nnlib train's
   * classifiers are, with softmax cross-entropy */
  nnlib_status st = cli_load_model(&m, file, NNLIB_LOSS_SOFTMAX_CE, &flags);
  int rc;
  if (st != NNLIB_OK)
    rc = cli_fail("eval", file, st);
  else if ((st = nnlib_dataset_load_split(&x, &y, data, NNLIB_SPLIT_TEST, limit,
                                          one_hot_labels(m))) != NNLIB_OK)
    rc = cli_fail("eval", "loading the test set", st);
  else
    rc = evaluate(m, x, y, reports_loss(m, file));
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  return rc;
}
