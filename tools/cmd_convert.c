/* cmd_convert.c - nnlib convert: ONNX to an nnlib model file and back, the
 * direction taken from the two file names. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void convert_usage(void) {
  printf(
      "usage: nnlib convert IN OUT [--max-batch N] [--onnx-output NAME]\n"
      "                           [--onnx-whole-sample]\n\n"
      "  nnlib convert model.onnx model.nnl   import an ONNX model (opsets "
      "13 to 17)\n"
      "                                       and save it as an nnlib "
      "model file\n"
      "  nnlib convert model.nnl model.onnx   export a saved model as ONNX "
      "(opset 17)\n\n"
      "--max-batch N  the largest batch the imported model is compiled "
      "for\n"
      "               (default %d; imports only)\n"
      "--onnx-output NAME  the graph output the imported model computes,\n"
      "               for an ONNX graph of several outputs (imports only)\n"
      "--onnx-whole-sample  each graph input, of a fixed shape, is one whole\n"
      "               sample: ONNX's axis 0 is no batch axis, and operators\n"
      "               may mix it (imports only)\n"
      "-h, --help     this help\n"
      "See docs/ONNX.md for the operators that map onto nnlib's layers.\n",
      CLI_ONNX_MAX_BATCH);
}

/* .onnx -> .nnl: the import compiles the model for inference (no loss);
 * the file keeps no optimizer. */
static int import_onnx(const char *in, const char *out, int64_t max_batch,
                       const cli_onnx_flags *flags) {
  nnlib_model *m = NULL;
  nnlib_status st =
      cli_import_onnx(&m, NULL, 0, in, max_batch, NNLIB_LOSS_NONE, flags);
  if (st != NNLIB_OK)
    return cli_fail("convert", in, st);
  st = nnlib_model_save(m, out, 0);
  nnlib_model_free(m);
  if (st != NNLIB_OK)
    return cli_fail("convert", out, st);
  return 0;
}

/* .nnl -> .onnx */
static int export_onnx(const char *in, const char *out) {
  nnlib_model *m = NULL;
  nnlib_status st = nnlib_model_load(&m, in);
  if (st != NNLIB_OK)
    return cli_fail("convert", in, st);
  int rc = cli_save_onnx("convert", m, out);
  nnlib_model_free(m);
  return rc;
}

static bool has_word(int argc, char **argv, const char *word) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], word) == 0)
      return true;
  return false;
}

int cmd_convert(int argc, char **argv) {
  cli_args a;
  if (!cli_args_init(&a, argc, argv))
    return 1;
  if (cli_has_flag(&a, "help")) {
    convert_usage();
    cli_args_free(&a);
    return 0;
  }
  int64_t max_batch;
  bool ok = cli_get_i64(&a, "max-batch", CLI_ONNX_MAX_BATCH, 1, INT32_MAX,
                        &max_batch);
  cli_onnx_flags flags = cli_get_onnx_flags(&a);
  const char *in = cli_positional(&a), *out = cli_positional(&a);
  ok = ok && cli_all_used(&a, "convert");
  cli_args_free(&a);
  if (!ok)
    return 2;
  if (in == NULL || out == NULL) {
    fprintf(stderr, "nnlib convert: which files? (nnlib convert IN OUT)\n");
    return 2;
  }
  bool in_onnx = cli_has_extension(in, ".onnx"),
       in_nnl = cli_has_extension(in, ".nnl");
  bool out_onnx = cli_has_extension(out, ".onnx"),
       out_nnl = cli_has_extension(out, ".nnl");
  if (in_onnx && out_nnl)
    return import_onnx(in, out, max_batch, &flags);
  if (in_nnl && out_onnx) {
    if (has_word(argc, argv, "--max-batch")) {
      fprintf(stderr, "nnlib convert: --max-batch is for imports (.onnx to "
                      ".nnl); an export keeps the model's own\n");
      return 2;
    }
    if (!cli_onnx_flags_fit("convert", in, &flags))
      return 2;
    return export_onnx(in, out);
  }
  fprintf(stderr,
          "nnlib convert: cannot convert '%s' to '%s': give IN.onnx OUT.nnl "
          "(import) or IN.nnl OUT.onnx (export)\n",
          in, out);
  return 2;
}
