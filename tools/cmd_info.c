/* cmd_info.c - nnlib info: what a model file (.nnl, or .onnx imported)
 * holds. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_shape(const int64_t *dims, size_t rank) {
  printf("[");
  for (size_t i = 0; i < rank; i++)
    printf("%s%lld", i ? ", " : "", (long long)dims[i]);
  printf("]");
}

static int64_t param_count(nnlib_layer *l) {
  int64_t count = 0;
  for (size_t p = 0; p < nnlib_layer_get_param_tensor_count(l); p++) {
    nnlib_tensor *v;
    if (nnlib_layer_get_param(l, p, &v, NULL) == NNLIB_OK)
      count += nnlib_tensor_get_size(v);
  }
  return count;
}

/* untrained state such as batchnorm's running statistics */
static void print_buffers(nnlib_layer *l) {
  for (size_t b = 0; b < nnlib_layer_get_buffer_count(l); b++) {
    nnlib_tensor *v;
    if (nnlib_layer_get_buffer(l, b, &v) == NNLIB_OK)
      printf("%s%s [%lld]", b ? ", " : "; buffers ",
             nnlib_layer_get_buffer_name(l, b),
             (long long)nnlib_tensor_get_size(v));
  }
}

static nnlib_node_info node_info(nnlib_model *m, size_t i) {
  nnlib_node_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  nnlib_model_get_node(m, i, &info);
  return info;
}

/* One input, every layer reading the node before it: 1.2's listing. */
static bool is_chain(nnlib_model *m) {
  if (nnlib_model_get_input_count(m) != 1)
    return false;
  for (size_t i = 0; i < nnlib_model_get_node_count(m); i++) {
    nnlib_node_info info = node_info(m, i);
    if (info.name != NULL)
      return false;
    if (i > 0 && (info.input_count != 1 ||
                  info.inputs[0] != node_info(m, i - 1).node))
      return false;
  }
  return node_info(m, nnlib_model_get_node_count(m) - 1).is_output;
}

static void print_chain(nnlib_model *m) {
  int64_t dims[NNLIB_MAX_RANK];
  size_t rank;
  nnlib_model_get_input_shape(m, dims, NNLIB_MAX_RANK, &rank);
  printf("input    ");
  print_shape(dims, rank);
  printf("\n");
  for (size_t i = 0; i < nnlib_model_get_layer_count(m); i++) {
    nnlib_layer *l = nnlib_model_get_layer(m, i);
    nnlib_layer_get_output_shape(l, dims, NNLIB_MAX_RANK, &rank);
    printf("%-3zu %-12s -> ", i, nnlib_layer_get_name(l));
    print_shape(dims, rank);
    printf("  %lld parameters", (long long)param_count(l));
    print_buffers(l);
    printf("\n");
  }
}

/* The node a handle names, as "name" or "#index", appended to buf. */
static void append_ref(nnlib_model *m, nnlib_node node, char *buf,
                       size_t size) {
  size_t used = strlen(buf);
  for (size_t i = 0; i < nnlib_model_get_node_count(m) && used < size; i++) {
    nnlib_node_info info = node_info(m, i);
    if (info.node != node)
      continue;
    if (info.name != NULL)
      snprintf(buf + used, size - used, "%s", info.name);
    else
      snprintf(buf + used, size - used, "#%zu", i);
    return;
  }
}

/* Every node: number, name, layer (or input), the nodes it reads, its
 * output shape and parameters. */
static void print_graph(nnlib_model *m) {
  printf("node name         layer        inputs          output\n");
  for (size_t i = 0; i < nnlib_model_get_node_count(m); i++) {
    nnlib_node_info info = node_info(m, i);
    char inputs[256] = "";
    for (size_t k = 0; k < info.input_count; k++) {
      if (k > 0)
        strncat(inputs, ",", sizeof inputs - strlen(inputs) - 1);
      append_ref(m, info.inputs[k], inputs, sizeof inputs);
    }
    printf("#%-3zu %-12s %-12s %-15s -> ", i, info.name ? info.name : "-",
           info.layer ? nnlib_layer_get_name(info.layer) : "input", inputs);
    print_shape(info.shape, info.rank);
    if (info.layer != NULL) {
      printf("  %lld parameters", (long long)param_count(info.layer));
      print_buffers(info.layer);
    }
    printf("%s\n", info.is_output ? "  (output)" : "");
  }
}

static void print_model(nnlib_model *m) {
  int64_t params = 0;
  if (is_chain(m))
    print_chain(m);
  else
    print_graph(m);
  nnlib_model_get_param_count(m, &params);
  char spec[1024];
  size_t needed;
  if (nnlib_model_get_spec(m, spec, sizeof spec, &needed) == NNLIB_OK)
    printf("description %s%s\n", spec, needed >= sizeof spec ? "..." : "");
  printf("parameters %lld\nmax_batch %lld\n", (long long)params,
         (long long)nnlib_model_get_max_batch(m));
  nnlib_optimizer *opt = nnlib_model_get_optimizer(m);
  if (opt != NULL)
    printf("optimizer saved, %lld steps taken\n",
           (long long)nnlib_optimizer_get_step_count(opt));
}

/* The whole file in memory (NULL and a message when it cannot be read). */
static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "nnlib info: %s: cannot open: %s\n", path, strerror(errno));
    return NULL;
  }
  unsigned char *data = NULL;
  size_t cap = 0;
  int err = 0;
  *size = 0;
  for (;;) {
    if (*size == cap) {
      unsigned char *grown = realloc(data, cap ? cap * 2 : 65536);
      if (grown == NULL) {
        err = ENOMEM;
        break;
      }
      data = grown;
      cap = cap ? cap * 2 : 65536;
    }
    errno = 0;
    size_t got = fread(data + *size, 1, cap - *size, f);
    *size += got;
    if (got == 0) {
      err = ferror(f) ? (errno != 0 ? errno : EIO) : 0;
      break;
    }
  }
  fclose(f);
  if (err != 0) {
    fprintf(stderr, "nnlib info: %s: cannot read the file: %s\n", path,
            strerror(err));
    free(data);
    return NULL;
  }
  return data;
}

/* An ONNX file: the model its import makes (for inference, the default
 * maximum batch). */
static int onnx_info_of(const char *file, const unsigned char *data,
                        size_t size, const cli_onnx_flags *flags) {
  nnlib_model *m = NULL;
  nnlib_status st = cli_import_onnx(&m, data, size, file, CLI_ONNX_MAX_BATCH,
                                    NNLIB_LOSS_NONE, flags);
  if (st != NNLIB_OK)
    return cli_fail("info", file, st);
  printf("file %s: ONNX model, %zu bytes, imported\n", file, size);
  print_model(m);
  nnlib_model_free(m);
  return 0;
}

static int info_of(const char *file, const cli_onnx_flags *flags) {
  size_t size;
  unsigned char *data = read_file(file, &size);
  if (data == NULL)
    return 1;
  if (cli_has_extension(file, ".onnx")) {
    int rc = onnx_info_of(file, data, size, flags);
    free(data);
    return rc;
  }
  nnlib_model_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.struct_size = sizeof fi;
  nnlib_model *m = NULL;
  nnlib_status st = nnlib_model_file_get_info(data, size, &fi);
  if (st == NNLIB_OK)
    st = nnlib_model_load_buffer(&m, data, size);
  free(data);
  if (st != NNLIB_OK)
    return cli_fail("info", file, st);
  printf("file %s: nnlib model file format %u, %llu bytes, written by nnlib "
         "%u.%u.%u\n",
         file, fi.format_version, (unsigned long long)fi.file_size,
         fi.library_version / 10000, fi.library_version / 100 % 100,
         fi.library_version % 100);
  print_model(m);
  nnlib_model_free(m);
  return 0;
}

int cmd_info(int argc, char **argv) {
  cli_args a;
  if (!cli_args_init(&a, argc, argv))
    return 1;
  if (cli_has_flag(&a, "help")) {
    printf("usage: nnlib info FILE.nnl\n       nnlib info FILE.onnx "
           "[--onnx-output NAME] [--onnx-whole-sample]\n\n"
           "Layers, shapes, parameter count and file format version of a "
           "saved model;\nof an ONNX model, those of the nnlib model its "
           "import makes\n(--onnx-output: the one computing that graph "
           "output; --onnx-whole-sample:\neach graph input one whole "
           "sample).\n-h, --help: this help.\n");
    cli_args_free(&a);
    return 0;
  }
  cli_onnx_flags flags = cli_get_onnx_flags(&a);
  const char *file = cli_positional(&a);
  bool ok = cli_all_used(&a, "info") &&
            cli_onnx_flags_fit("info", file, &flags);
  cli_args_free(&a);
  if (!ok || file == NULL) {
    if (ok)
      fprintf(stderr, "nnlib info: which model file? (nnlib info FILE.nnl)\n");
    return 2;
  }
  return info_of(file, &flags);
}
