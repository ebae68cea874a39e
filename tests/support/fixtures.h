/* fixtures.h - the PyTorch fixture files of tests/fixtures/ (made by the
 * tests/make_torch_*.py scripts): a "torch VERSION" line, then cases of
 * "case NAME key=value ...", tensors "tensor NAME RANK DIMS... VALUES...",
 * and "end". */
#ifndef NNLIB_TEST_FIXTURES_H
#define NNLIB_TEST_FIXTURES_H

#include <nnlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { FX_MAX_TENSORS = 48, FX_MAX_KEYS = 20 };

typedef struct fx_tensor {
  char name[32];
  size_t rank;
  int64_t dims[NNLIB_MAX_RANK];
  int64_t size;
  float *data;
} fx_tensor;

typedef struct fx_case {
  char name[80];
  char keys[FX_MAX_KEYS][16];
  char values[FX_MAX_KEYS][24];
  size_t key_count;
  fx_tensor tensors[FX_MAX_TENSORS];
  size_t tensor_count;
} fx_case;

/* tests/fixtures/<file> under $NNLIB_SOURCE_DIR (or .), its torch version
 * into version[64]; fails the test when it cannot be read. */
FILE *fx_open(const char *file, char version[64]);
/* The next case into *c, or false at the end of the file. */
bool fx_read_case(FILE *f, fx_case *c);
void fx_free_case(fx_case *c);
/* A case's key as text, integer or float; fails the test when absent. */
const char *fx_value(const fx_case *c, const char *key);
int64_t fx_int(const fx_case *c, const char *key);
float fx_float(const fx_case *c, const char *key);
/* A case's tensor: NULL when absent (fx_find), else fails (fx_need). */
const fx_tensor *fx_find(const fx_case *c, const char *name);
const fx_tensor *fx_need(const fx_case *c, const char *name);

#endif
