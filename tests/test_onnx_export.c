/* ONNX export (nnlib_model_save_onnx[_to_buffer]).
 *
 * Every layer kind, and the example models' descriptions at small sizes,
 * are exported into a directory (NNLIB_ONNX_EXPORT_DIR, default
 * ./onnx_export_cases) beside random inputs and nnlib's predictions for
 * them. Two more ctest tests (tests/onnx_export.cmake) read that
 * directory: tests/onnx_export/check_export.py runs ONNX's own checker
 * (full_check, with strict shape inference) on every file, and
 * tests/onnx_export/run_ort.js runs every file in ONNX Runtime and
 * compares its outputs with nnlib's. This file checks what needs no
 * outside tool: the bytes start as an IR 8 ModelProto, the file equals the
 * buffer, exports are deterministic, and the refusals (NULL, uncompiled,
 * an unwritable path, every allocation failing) with their exact
 * statuses and no leaks.
 *
 * Files per case NAME: NAME.onnx; NAME.txt, one line per graph input
 * ("input f32|i32 DIMS... FILE") and one for the output ("output DIMS...
 * FILE"), the data raw little-endian float32 / int32, batch first; the
 * list of cases in cases.txt. Four cases are PyTorch exports imported
 * first (the attention, GPT-like, residual and patch-embedding models of
 * tests/make_onnx_fixtures.py): nnlib's export of an imported model. */
#include "test_support.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH 3

typedef struct export_case {
  const char *name;
  const char *spec; /* starts with its input items */
  int32_t vocab;    /* ids in [0, vocab) for int32 inputs */
} export_case;

/* Small models covering every layer kind, and the examples' models. */
static const export_case cases[] = {
    /* the MLP of the README and examples */
    {"mlp", "input:784,dense:256,relu,dense:128,relu,dense:10", 0},
    /* every activation after a dense layer (fused into it in nnlib) */
    {"act_identity", "input:6,dense:8,identity", 0},
    {"act_step", "input:6,dense:8,step", 0},
    {"act_sigmoid", "input:6,dense:8,sigmoid", 0},
    {"act_tanh", "input:6,dense:8,tanh", 0},
    {"act_relu", "input:6,dense:8,relu", 0},
    {"act_leaky_relu", "input:6,dense:8,leaky_relu:0.2", 0},
    {"act_softplus", "input:6,dense:8,softplus", 0},
    {"act_softmax", "input:6,dense:8,softmax", 0},
    {"act_gelu", "input:6,dense:8,gelu", 0},
    {"act_gelu_tanh", "input:6,dense:8,gelu_tanh", 0},
    {"dense_nobias_rank3", "input:2x3x4,dense:5:nobias,sigmoid", 0},
    /* the CNN of examples/fashion_cnn.c */
    {"fashion_cnn",
     "input:1x28x28,conv:32x3x3:p1:nobias,batchnorm,relu,maxpool:2,"
     "conv:64x3x3:p1:nobias,batchnorm,relu,maxpool:2,"
     "flatten,dense:256,relu,dropout:0.5,dense:10",
     0},
    /* conv geometry: strides, padding, dilation, bias; every pooling kind
     * with padding and strides; softmax over the last axis of [C, H, W] */
    {"conv_geometry",
     "input:3x13x11,conv:4x3x2:s2x1:p1x0:d1x2,tanh,"
     "conv:5x3x3:p2:d2:nobias,relu,softmax",
     0},
    {"maxpool_padded", "input:2x9x8,maxpool:3:s2:p1", 0},
    {"minpool_padded", "input:2x9x8,minpool:3:s2:p1", 0},
    {"minpool_plain", "input:2x8x8,minpool:2", 0},
    {"avgpool_padded", "input:2x9x8,avgpool:3x2:s2x1:p1", 0},
    /* the pooling options: padding per side, dilation, ceil mode (rows
     * here: the last window, which would start in the bottom padding, is
     * dropped), averages with and without the padding */
    {"maxpool_options", "input:2x10x9,maxpool:3:s2:p0x1x2x0:d1x2:ceil", 0},
    {"maxpool_ceil_dropped", "input:1x7x8,maxpool:2:s3:p1:ceil", 0},
    {"maxpool_dilated_pad", "input:1x7x7,maxpool:2:s1:p1:d3", 0},
    {"minpool_options", "input:2x9x8,minpool:2:s2:d2:ceil", 0},
    {"avgpool_ceil", "input:2x10x9,avgpool:3:s2:p1:ceil", 0},
    {"avgpool_asymmetric", "input:2x7x6,avgpool:3:s2:p2x1x0x2", 0},
    {"avgpool_exclude_pad",
     "input:2x9x8,avgpool:3x2:s2x1:p2x0x0x1:ceil:exclude_pad", 0},
    {"global_avgpool", "input:3x5x4,conv:6x3x3,global_avgpool,batchnorm", 0},
    {"batchnorm_features", "input:5,dense:6,batchnorm:0.1:0.001,relu", 0},
    {"flatten_dropout", "input:2x3x4,dropout:0.3,flatten,dense:3", 0},
    /* merges: add and multiply of three inputs, concat on both axes */
    {"merges",
     "a=input:4,b=input:4,da=dense:6(a),db=dense:6(b),dc=dense:6(a),"
     "s=add(da,db,dc),p=multiply(da,db,dc),q=multiply(s,s),"
     "c=concat(s,p,q),dense:3",
     0},
    {"concat_channels",
     "x=input:2x5x5,c1=conv:3x3x3:p1(x),c2=conv:4x1x1(x),c3=conv:3x1x1(x),"
     "k=concat(c1,c2),l=concat:-1(c1,c3),flatten(k),f=dense:4,"
     "flatten(l),g=dense:4,add(f,g)",
     0},
    /* recurrent layers, every step and the last one */
    {"lstm_classifier", "input:28x28,lstm:32,last,dense:10", 0},
    {"rnn_tanh_seq", "input:5x3,rnn:4", 0},
    {"rnn_relu_last", "input:5x3,rnn:4:relu:nobias,last", 0},
    {"gru_seq_last", "input:6x4,gru:5,gru:3:nobias,last,dense:2", 0},
    /* gru of ONNX's default form (linear_before_reset 0) */
    {"gru_lbr0", "input:6x4,gru:5:lbr0,gru:3:nobias:lbr0,last,dense:2", 0},
    {"lstm_nobias_seq", "input:4x3,lstm:5:nobias,lstm:2", 0},
    /* text layers */
    {"char_gpt",
     "input:8,embedding:256:16,positional,transformer:16:2:causal,"
     "transformer:16:2:causal,layernorm,linear:256",
     256},
    {"text_plain",
     "input:6,embedding:20:8,positional:10,layernorm:0.001,"
     "attention:2:nobias,layernorm:noaffine,linear:5:nobias,gelu_tanh",
     20},
    {"char_lstm", "input:7,embedding:30:6,lstm:8,linear:30", 30},
    {"linear_rank3", "input:2x3x4,linear:5,relu,linear:2:nobias", 0},
    /* transposes: channels last and back around a linear over the
     * channels; a rank-4 permutation as the output */
    {"transpose_channels_last",
     "input:3x4x5,conv:4x3x3:p1,transpose:1x2x0,linear:3,transpose:2x0x1,"
     "flatten,dense:2",
     0},
    {"transpose_rank4", "input:2x3x4x5,transpose:3x1x0x2", 0},
    /* PyTorch exports imported (tests/make_onnx_fixtures.py): the
     * attention subgraph, the GPT-like model, the residual CNN, the ViT
     * patch embedding */
    {"imported_attention_causal", "onnx:attention_causal", 0},
    {"imported_gpt", "onnx:gpt", 13},
    {"imported_resnet", "onnx:resnet", 0},
    {"imported_vit", "onnx:vit", 0},
};
#define CASE_COUNT (sizeof cases / sizeof cases[0])

/* The residual CNN of examples/fashion_resnet.c (blocks 1, width w):
 * stem, three stages of one basic block (the last two with stride 2 and a
 * projection shortcut), global average pooling, dropout 0.3, dense 10. */
static void resnet_spec(char *buf, size_t size, int w) {
  int n = snprintf(buf, size,
                   "image=input:1x28x28,conv:%dx3x3:p1:nobias,batchnorm,"
                   "stem=relu",
                   w);
  const char *x = "stem";
  static const char *outs[3] = {"out1", "out2", "out3"};
  for (int stage = 1; stage <= 3; stage++) {
    int c = w << (stage - 1), s = stage > 1 ? 2 : 1;
    n += snprintf(buf + n, size - (size_t)n,
                  ",conv:%dx3x3:s%d:p1:nobias(%s),batchnorm,relu,"
                  "conv:%dx3x3:p1:nobias,h%d=batchnorm",
                  c, s, x, c, stage);
    if (stage == 1)
      n += snprintf(buf + n, size - (size_t)n, ",add(h1,%s)", x);
    else
      n += snprintf(buf + n, size - (size_t)n,
                    ",conv:%dx1x1:s2:nobias(%s),p%d=batchnorm,add(h%d,p%d)",
                    c, x, stage, stage, stage);
    n += snprintf(buf + n, size - (size_t)n, ",%s=relu", outs[stage - 1]);
    x = outs[stage - 1];
  }
  snprintf(buf + n, size - (size_t)n,
           ",global_avgpool,dropout:0.3,dense:10");
}

static uint32_t rng_state = 12345;

/* "onnx:NAME": tests/fixtures/onnx/NAME.onnx (a PyTorch export) imported,
 * to export again with torch's weights. */
static nnlib_model *import_fixture(const char *name) {
  char path[1024];
  const char *root = getenv("NNLIB_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s.onnx",
           root ? root : "..", name);
  nnlib_onnx_options o;
  ASSERT_OK(nnlib_onnx_options_init(&o));
  o.max_batch = BATCH;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_onnx(&m, path, &o));
  return m;
}

static nnlib_model *build(const char *spec) {
  nnlib_model *m;
  if (strncmp(spec, "onnx:", 5) == 0)
    return import_fixture(spec + 5);
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile_graph(m, BATCH, NNLIB_LOSS_NONE, NULL, 7));
  ts_randomise_state(m, &rng_state);
  return m;
}

static const char *out_dir(void) {
  const char *d = getenv("NNLIB_ONNX_EXPORT_DIR");
  return d != NULL && d[0] != '\0' ? d : "onnx_export_cases";
}

static void path_of(char *buf, size_t size, const char *name,
                    const char *suffix) {
  snprintf(buf, size, "%s/%s%s", out_dir(), name, suffix);
}

static void write_bytes(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    fail_msg("cannot write %s: %s", path, strerror(errno));
  assert_int_equal(fwrite(data, 1, size, f), size);
  assert_int_equal(fclose(f), 0);
}

/* "d0 d1 ..." of the batch and a per-sample shape. */
static void dims_text(FILE *f, const int64_t *dims, size_t rank) {
  fprintf(f, " %d", BATCH);
  for (size_t i = 0; i < rank; i++)
    fprintf(f, " %lld", (long long)dims[i]);
}

/* Random inputs for the case, their data files and manifest lines. */
static void make_inputs(const export_case *c, nnlib_model *m, FILE *manifest,
                        nnlib_tensor **x) {
  size_t count = nnlib_model_get_input_count(m);
  for (size_t k = 0; k < count; k++) {
    int64_t shape[NNLIB_MAX_RANK + 1] = {BATCH};
    size_t rank;
    nnlib_dtype dtype;
    ASSERT_OK(nnlib_model_get_input_shape_at(m, k, shape + 1, NNLIB_MAX_RANK,
                                             &rank));
    ASSERT_OK(nnlib_model_get_input_dtype(m, k, &dtype));
    char file[64], path[512];
    snprintf(file, sizeof file, "%s.in%zu.bin", c->name, k);
    path_of(path, sizeof path, file, "");
    if (dtype == NNLIB_DTYPE_INT32) {
      ASSERT_OK(nnlib_tensor_create_int32(&x[k], shape, rank + 1));
      int32_t *ids = nnlib_tensor_get_data_int32(x[k]);
      for (int64_t i = 0; i < nnlib_tensor_get_size(x[k]); i++) {
        rng_state = rng_state * 1664525u + 1013904223u;
        ids[i] = (int32_t)((rng_state >> 8) % (uint32_t)c->vocab);
      }
      write_bytes(path, ids, 4 * (size_t)nnlib_tensor_get_size(x[k]));
    } else {
      ASSERT_OK(nnlib_tensor_create(&x[k], shape, rank + 1));
      float *v = nnlib_tensor_get_data(x[k]);
      ts_fill_uniform(v, nnlib_tensor_get_size(x[k]), -1.5f, 1.5f,
                      &rng_state);
      write_bytes(path, v, 4 * (size_t)nnlib_tensor_get_size(x[k]));
    }
    fprintf(manifest, "input %s", dtype == NNLIB_DTYPE_INT32 ? "i32" : "f32");
    dims_text(manifest, shape + 1, rank);
    fprintf(manifest, " %s\n", file);
  }
}

/* An IR 8 ModelProto starts with field 1 (ir_version) = 8: bytes 08 08;
 * the producer "nnlib" follows as field 2. */
static void check_head(const unsigned char *data, size_t size) {
  assert_true(size > 9);
  assert_int_equal(data[0], 0x08);
  assert_int_equal(data[1], 0x08);
  assert_int_equal(data[2], 0x12);
  assert_int_equal(data[3], 5);
  assert_memory_equal(data + 4, "nnlib", 5);
}

static void file_equals(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  unsigned char *buf = malloc(size + 1);
  assert_non_null(buf);
  size_t got = fread(buf, 1, size + 1, f);
  fclose(f);
  assert_int_equal(got, size);
  assert_memory_equal(buf, data, size);
  free(buf);
}

static void export_one(const export_case *c, FILE *list) {
  nnlib_model *m = build(c->spec);
  char path[512];
  path_of(path, sizeof path, c->name, ".txt");
  FILE *manifest = fopen(path, "w");
  assert_non_null(manifest);
  nnlib_tensor *x[8] = {NULL};
  size_t count = nnlib_model_get_input_count(m);
  assert_true(count <= 8);
  make_inputs(c, m, manifest, x);

  int64_t shape[NNLIB_MAX_RANK + 1] = {BATCH};
  size_t rank;
  ASSERT_OK(nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK, &rank));
  nnlib_tensor *y;
  ASSERT_OK(nnlib_tensor_create(&y, shape, rank + 1));
  ASSERT_OK(nnlib_model_predict_inputs(m, (const nnlib_tensor *const *)x,
                                       count, y));
  path_of(path, sizeof path, c->name, ".out.bin");
  write_bytes(path, nnlib_tensor_get_data(y),
              4 * (size_t)nnlib_tensor_get_size(y));
  fprintf(manifest, "output");
  dims_text(manifest, shape + 1, rank);
  fprintf(manifest, " %s.out.bin\n", c->name);
  assert_int_equal(fclose(manifest), 0);

  path_of(path, sizeof path, c->name, ".onnx");
  ASSERT_OK(nnlib_model_save_onnx(m, path));
  void *data, *again;
  size_t size, again_size;
  ASSERT_OK(nnlib_model_save_onnx_to_buffer(&data, &size, m));
  ASSERT_OK(nnlib_model_save_onnx_to_buffer(&again, &again_size, m));
  check_head(data, size);
  file_equals(path, data, size);
  assert_int_equal(size, again_size); /* the same model, the same bytes */
  assert_memory_equal(data, again, size);
  nnlib_free(data);
  nnlib_free(again);
  fprintf(list, "%s\n", c->name);

  for (size_t k = 0; k < count; k++)
    nnlib_tensor_free(x[k]);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

static void test_export_cases(void **state) {
  (void)state;
  if (mkdir(out_dir(), 0777) != 0 && errno != EEXIST)
    fail_msg("cannot make %s: %s", out_dir(), strerror(errno));
  char path[512], resnet[2048];
  path_of(path, sizeof path, "cases", ".txt");
  FILE *list = fopen(path, "w");
  assert_non_null(list);
  for (size_t i = 0; i < CASE_COUNT; i++)
    export_one(&cases[i], list);
  resnet_spec(resnet, sizeof resnet, 4);
  export_case r = {"fashion_resnet_w4", resnet, 0};
  export_one(&r, list);
  assert_int_equal(fclose(list), 0);
  printf("exported %zu models to %s\n", CASE_COUNT + 1, out_dir());
}

static void test_bad_arguments(void **state) {
  (void)state;
  nnlib_model *m;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "input:4,dense:3"));
  void *data = (void *)1;
  size_t size = 7;
  /* not compiled */
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_save_onnx(m, "x.onnx"));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE,
                nnlib_model_save_onnx_to_buffer(&data, &size, m));
  assert_null(data);
  assert_int_equal(size, 0);
  ASSERT_OK(nnlib_model_compile_graph(m, 2, NNLIB_LOSS_NONE, NULL, 1));
  /* NULL arguments */
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_save_onnx(NULL, "a"));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_save_onnx(m, NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_save_onnx_to_buffer(NULL, &size, m));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_save_onnx_to_buffer(&data, NULL, m));
  data = (void *)1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_save_onnx_to_buffer(&data, &size, NULL));
  assert_null(data);
  /* a path that cannot be opened: a missing directory, a directory */
  ASSERT_STATUS(NNLIB_ERR_IO,
                nnlib_model_save_onnx(m, "/nonexistent-nnlib-dir/m.onnx"));
  ts_expect_message("/nonexistent-nnlib-dir/m.onnx");
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_save_onnx(m, "/"));
  nnlib_model_free(m);
}

/* Allocation k of an export fails, for every k, alone and with every later
 * one failing too: NNLIB_ERR_OUT_OF_MEMORY, nothing leaked, no file. */
static void check_oom(nnlib_model *m, const char *path, const char *what) {
  ts_alloc_stats stats = {0};
  void *data;
  size_t size;
  ts_alloc_install(&stats);
  nnlib_status st = path != NULL ? nnlib_model_save_onnx(m, path)
                                 : nnlib_model_save_onnx_to_buffer(&data, &size,
                                                                   m);
  if (st == NNLIB_OK && path == NULL)
    nnlib_free(data);
  ts_alloc_uninstall();
  ASSERT_OK(st);
  assert_int_equal(stats.live, 0);
  long total = stats.allocs;
  assert_true(total >= 2); /* the buffer grows: several allocations */
  for (int persistent = 0; persistent <= 1; persistent++)
    for (long k = 1; k <= total; k++) {
      if (path != NULL)
        remove(path);
      stats.fail_at = k;
      ts_alloc_install(&stats);
      ts_alloc_fail_persistent(persistent);
      data = (void *)1;
      st = path != NULL ? nnlib_model_save_onnx(m, path)
                        : nnlib_model_save_onnx_to_buffer(&data, &size, m);
      ts_alloc_uninstall();
      if (st != NNLIB_ERR_OUT_OF_MEMORY)
        fail_msg("%s: allocation %ld of %ld failing gave %s", what, k, total,
                 nnlib_status_string(st));
      assert_int_equal(stats.live, 0);
      if (path != NULL) {
        FILE *f = fopen(path, "rb");
        assert_null(f); /* nothing written */
      } else {
        assert_null(data);
      }
    }
  printf("%s: %ld allocations, each failing: OUT_OF_MEMORY, no leak\n", what,
         total);
}

static void test_out_of_memory(void **state) {
  (void)state;
  const export_case *gpt = NULL;
  for (size_t i = 0; i < CASE_COUNT; i++)
    if (strcmp(cases[i].name, "char_gpt") == 0)
      gpt = &cases[i];
  assert_non_null(gpt);
  nnlib_model *m = build(gpt->spec);
  check_oom(m, NULL, "char_gpt to buffer");
  char path[512];
  if (mkdir(out_dir(), 0777) != 0 && errno != EEXIST)
    fail_msg("cannot make %s: %s", out_dir(), strerror(errno));
  path_of(path, sizeof path, "oom_probe", ".onnx");
  check_oom(m, path, "char_gpt to file");
  remove(path);
  nnlib_model_free(m);
}

/* The number of entries of `dir` whose name starts with `prefix`. */
static int entries_starting(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int count = 0;
  for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
    count += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return count;
}

/* A save that fails leaves the file that was there byte for byte and no
 * temporary file: the disk fills up (RLIMIT_FSIZE, writes past 4 KiB fail
 * with EFBIG), the target is a directory or a device (never replaced). */
static void test_failed_save_keeps_the_file(void **state) {
  (void)state;
  if (mkdir(out_dir(), 0777) != 0 && errno != EEXIST)
    fail_msg("cannot make %s: %s", out_dir(), strerror(errno));
  char path[512], dirpath[512];
  path_of(path, sizeof path, "keep", ".onnx");
  path_of(dirpath, sizeof dirpath, "keep_dir", ".onnx");
  static const char old[] = "the previous file";
  write_bytes(path, old, sizeof old);
  nnlib_model *m = build("input:64,dense:256,relu,dense:10");

  ASSERT_STATUS(NNLIB_ERR_IO,
                ts_save_with_file_limit(nnlib_model_save_onnx, m, path, 4096));
  ts_expect_message("nnlib_model_save_onnx: writing");
  file_equals(path, old, sizeof old);
  assert_int_equal(entries_starting(out_dir(), "keep.onnx.tmp-"), 0);

  assert_true(mkdir(dirpath, 0700) == 0 || errno == EEXIST);
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_save_onnx(m, dirpath));
  ts_expect_message("is not a regular file");
  struct stat st;
  assert_int_equal(stat(dirpath, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  rmdir(dirpath);
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_save_onnx(m, "/dev/full"));

  /* and a save that succeeds replaces it whole */
  ASSERT_OK(nnlib_model_save_onnx(m, path));
  void *data;
  size_t size;
  ASSERT_OK(nnlib_model_save_onnx_to_buffer(&data, &size, m));
  file_equals(path, data, size);
  nnlib_free(data);
  remove(path);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_failed_save_keeps_the_file),
      cmocka_unit_test(test_export_cases),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
