/* cmd_info.c - nnlib info: what a model file holds. */
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

static void print_model(nnlib_model *m) {
  int64_t dims[NNLIB_MAX_RANK], params = 0;
  size_t rank;
  nnlib_model_get_input_shape(m, dims, NNLIB_MAX_RANK, &rank);
  printf("input    ");
  print_shape(dims, rank);
  printf("\n");
  for (size_t i = 0; i < nnlib_model_get_layer_count(m); i++) {
    nnlib_layer *l = nnlib_model_get_layer(m, i);
    int64_t count = 0;
    for (size_t p = 0; p < nnlib_layer_get_param_count(l); p++) {
      nnlib_tensor *v;
      if (nnlib_layer_get_param(l, p, &v, NULL) == NNLIB_OK)
        count += nnlib_tensor_get_size(v);
    }
    nnlib_layer_get_output_shape(l, dims, NNLIB_MAX_RANK, &rank);
    printf("%-3zu %-12s -> ", i, nnlib_layer_get_name(l));
    print_shape(dims, rank);
    printf("  %lld parameters", (long long)count);
    /* untrained state such as batchnorm's running statistics */
    for (size_t b = 0; b < nnlib_layer_get_buffer_count(l); b++) {
      nnlib_tensor *v;
      if (nnlib_layer_get_buffer(l, b, &v) == NNLIB_OK)
        printf("%s%s [%lld]", b ? ", " : "; buffers ",
               nnlib_layer_get_buffer_name(l, b),
               (long long)nnlib_tensor_get_size(v));
    }
    printf("\n");
  }
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
  *size = 0;
  for (;;) {
    if (*size == cap) {
      unsigned char *grown = realloc(data, cap ? cap * 2 : 65536);
      if (grown == NULL)
        break;
      data = grown;
      cap = cap ? cap * 2 : 65536;
    }
    size_t got = fread(data + *size, 1, cap - *size, f);
    *size += got;
    if (got == 0)
      break;
  }
  bool failed = ferror(f) || *size == cap;
  fclose(f);
  if (failed) {
    fprintf(stderr, "nnlib info: %s: cannot read the file\n", path);
    free(data);
    return NULL;
  }
  return data;
}

static int info_of(const char *file) {
  size_t size;
  unsigned char *data = read_file(file, &size);
  if (data == NULL)
    return 1;
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
    printf("usage: nnlib info FILE.nnl\n\nLayers, shapes, parameter count "
           "and file format version of a saved model.\n");
    cli_args_free(&a);
    return 0;
  }
  const char *file = cli_positional(&a);
  bool ok = cli_all_used(&a, "info");
  cli_args_free(&a);
  if (!ok || file == NULL) {
    if (ok)
      fprintf(stderr, "nnlib info: which model file? (nnlib info FILE.nnl)\n");
    return 2;
  }
  return info_of(file);
}
