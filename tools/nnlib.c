/* nnlib.c - the command-line front end: train, eval, info, bench,
 * generate and convert. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *const cli_class_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static void usage(FILE *out) {
  fprintf(out,
          "usage: nnlib <command> [options]   (nnlib <command> --help, or -h)\n"
          "\n"
          "commands:\n"
          "  train     train a model on an MNIST-format data set, save it;\n"
          "            with --text PATH, a byte-level language model on text\n"
          "  generate  continue a prompt with a saved language model\n"
          "  eval      accuracy and confusion matrix of a saved model\n"
          "            (.nnl, or .onnx imported)\n"
          "  info      layers, shapes and parameters of a saved model\n"
          "            (.nnl, or .onnx imported)\n"
          "  bench     time training and inference of a model description\n"
          "  convert   ONNX to an nnlib model file and back (.onnx <-> .nnl)\n"
          "\n"
          "nnlib %s; data defaults to %s\n",
          nnlib_version_string(), nnlib_dataset_default_dir());
}

int cli_fail(const char *command, const char *what, nnlib_status st) {
  fprintf(stderr, "nnlib %s: %s: %s: %s\n", command, what,
          nnlib_status_string(st), nnlib_last_error_message());
  return 1;
}

/* Commands that run matrix products, and so are worth a warning when
 * OpenBLAS's kernels are a slow fallback. */
static bool computes(const char *cmd) {
  static const char *const computing[] = {"train", "eval", "bench", "generate"};
  for (size_t i = 0; i < sizeof computing / sizeof *computing; i++)
    if (strcmp(cmd, computing[i]) == 0)
      return true;
  return false;
}

/* A command asked for its help computes nothing: its stderr stays empty. */
static bool asks_for_help(int argc, char **argv) {
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
      return true;
  return false;
}

static int run(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
      strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("nnlib %s\n", nnlib_version_string());
    cli_print_blas(stdout);
    return 0;
  }
  if (computes(cmd) && !asks_for_help(argc, argv))
    cli_warn_slow_blas();
  if (strcmp(cmd, "train") == 0)
    return cmd_train(argc - 2, argv + 2);
  if (strcmp(cmd, "eval") == 0)
    return cmd_eval(argc - 2, argv + 2);
  if (strcmp(cmd, "info") == 0)
    return cmd_info(argc - 2, argv + 2);
  if (strcmp(cmd, "bench") == 0)
    return cmd_bench(argc - 2, argv + 2);
  if (strcmp(cmd, "generate") == 0)
    return cmd_generate(argc - 2, argv + 2);
  if (strcmp(cmd, "convert") == 0)
    return cmd_convert(argc - 2, argv + 2);
  fprintf(stderr, "nnlib: unknown command '%s' (try nnlib --help)\n", cmd);
  return 2;
}

bool cli_stdout_ok(void) {
  static bool reported;
  if (reported)
    return false;
  errno = 0;
  bool flush_failed = fflush(stdout) != 0;
  if (!flush_failed && !ferror(stdout))
    return true;
  if (flush_failed && errno != 0)
    fprintf(stderr, "nnlib: writing to stdout: %s\n", strerror(errno));
  else
    fprintf(stderr, "nnlib: writing to stdout failed\n");
  reported = true;
  return false;
}

/* Output that could not be written (a full disk, a closed pipe's reader
 * gone with SIGPIPE ignored) fails the command: a script must not take a
 * cut-off listing or summary line for a whole one. */
int main(int argc, char **argv) {
  int rc = run(argc, argv);
  if (!cli_stdout_ok())
    return rc != 0 ? rc : 1;
  return rc;
}
