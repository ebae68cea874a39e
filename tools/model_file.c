/* model_file.c - the model files the tool reads: nnlib's own (.nnl, and
 * any name not ending in .onnx) and ONNX models, imported on load. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

cli_onnx_flags cli_get_onnx_flags(cli_args *a) {
  cli_onnx_flags f = {cli_get(a, "onnx-output", NULL),
                      cli_has_flag(a, "onnx-whole-sample")};
  return f;
}

nnlib_status cli_import_onnx(nnlib_model **out, const void *data, size_t size,
                             const char *path, int64_t max_batch,
                             nnlib_loss loss, const cli_onnx_flags *flags) {
  nnlib_onnx_options o;
  nnlib_status st = nnlib_onnx_options_init(&o);
  if (st != NNLIB_OK)
    return st;
  o.max_batch = max_batch;
  o.loss = loss;
  if (flags != NULL) {
    o.output = flags->output;
    o.whole_sample = flags->whole_sample;
  }
  /* with a loss and no optimizer the model gets plain SGD: evaluation
   * never steps it */
  if (data != NULL)
    return nnlib_model_load_onnx_buffer(out, data, size, &o);
  return nnlib_model_load_onnx(out, path, &o);
}

nnlib_status cli_load_model(nnlib_model **out, const char *path,
                            nnlib_loss onnx_loss,
                            const cli_onnx_flags *flags) {
  if (cli_has_extension(path, ".onnx"))
    return cli_import_onnx(out, NULL, 0, path, CLI_ONNX_MAX_BATCH, onnx_loss,
                           flags);
  return nnlib_model_load(out, path);
}

bool cli_onnx_flags_fit(const char *command, const char *file,
                        const cli_onnx_flags *flags) {
  if (file == NULL || cli_has_extension(file, ".onnx"))
    return true;
  if (flags->output != NULL)
    fprintf(stderr, "nnlib %s: --onnx-output is for .onnx files (it names "
                    "the graph output an import computes); '%s' is not one\n",
            command, file);
  else if (flags->whole_sample)
    fprintf(stderr, "nnlib %s: --onnx-whole-sample is for .onnx files (it "
                    "says how an import reads the graph's inputs); '%s' is "
                    "not one\n",
            command, file);
  return flags->output == NULL && !flags->whole_sample;
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

int cli_save_onnx(const char *command, const nnlib_model *m, const char *path) {
  nnlib_status st = nnlib_model_save_onnx(m, path);
  return st == NNLIB_OK ? 0 : cli_fail(command, path, st);
}

bool cli_can_save(const char *command, const char *path) {
  struct stat target;
  if (stat(path, &target) == 0 && !S_ISREG(target.st_mode)) {
    fprintf(stderr, "nnlib %s: --out %s exists and is not a regular file\n",
            command, path);
    return false;
  }
  size_t tmp_size = strlen(path) + sizeof ".tmp-XXXXXX";
  char *tmp = malloc(tmp_size);
  if (tmp == NULL)
    return true; /* the save will say so */
  snprintf(tmp, tmp_size, "%s.tmp-XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd >= 0) {
    close(fd);
    unlink(tmp);
  } else {
    fprintf(stderr, "nnlib %s: --out %s: cannot create a file there: %s\n",
            command, path, strerror(errno));
  }
  free(tmp);
  return fd >= 0;
}
