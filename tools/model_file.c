/* model_file.c - the model files the tool reads: nnlib's own (.nnl, and
 * any name not ending in .onnx) and ONNX models, imported on load. */
#include "cli.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool cli_has_extension(const char *path, const char *ext) {
  size_t n = strlen(path), k = strlen(ext);
  if (n <= k)
    return false;
  const char *tail = path + n - k;
  for (size_t i = 0; i < k; i++)
    if (tolower((unsigned char)tail[i]) != tolower((unsigned char)ext[i]))
      return false;
  return true;
}

nnlib_status cli_import_onnx(nnlib_model **out, const void *data, size_t size,
                             const char *path, int64_t max_batch,
                             nnlib_loss loss, const char *output) {
  nnlib_onnx_options o;
  nnlib_status st = nnlib_onnx_options_init(&o);
  if (st != NNLIB_OK)
    return st;
  o.max_batch = max_batch;
  o.loss = loss;
  o.output = output;
  /* with a loss and no optimizer the model gets plain SGD: evaluation
   * never steps it */
  if (data != NULL)
    return nnlib_model_load_onnx_buffer(out, data, size, &o);
  return nnlib_model_load_onnx(out, path, &o);
}

nnlib_status cli_load_model(nnlib_model **out, const char *path,
                            nnlib_loss onnx_loss, const char *onnx_output) {
  if (cli_has_extension(path, ".onnx"))
    return cli_import_onnx(out, NULL, 0, path, CLI_ONNX_MAX_BATCH, onnx_loss,
                           onnx_output);
  return nnlib_model_load(out, path);
}

bool cli_onnx_output_fits(const char *command, const char *file,
                          const char *onnx_output) {
  if (onnx_output == NULL || file == NULL || cli_has_extension(file, ".onnx"))
    return true;
  fprintf(stderr, "nnlib %s: --onnx-output is for .onnx files (it names the "
                  "graph output an import computes); '%s' is not one\n",
          command, file);
  return false;
}

const char *cli_output_layer_name(nnlib_model *m) {
  for (size_t i = 0; i < nnlib_model_get_node_count(m); i++) {
    nnlib_node_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (nnlib_model_get_node(m, i, &info) == NNLIB_OK && info.is_output)
      return info.layer ? nnlib_layer_get_name(info.layer) : "input";
  }
  return "";
}
