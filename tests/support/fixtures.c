/* fixtures.c - see fixtures.h. */
#include "fixtures.h"
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

FILE *fx_open(const char *file, char version[64]) {
  const char *src = getenv("NNLIB_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/fixtures/%s", src ? src : ".", file);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    fail_msg("cannot open %s (set NNLIB_SOURCE_DIR)", path);
  char word[16];
  if (fscanf(f, "%15s %63s", word, version) != 2 ||
      strcmp(word, "torch") != 0)
    fail_msg("%s: no torch version line", path);
  return f;
}

static void read_tensor(FILE *f, fx_tensor *t) {
  unsigned rank;
  if (fscanf(f, "%31s %u", t->name, &rank) != 2 || rank == 0 ||
      rank > NNLIB_MAX_RANK)
    fail_msg("bad tensor header");
  t->rank = rank;
  t->size = 1;
  for (size_t i = 0; i < rank; i++) {
    long long d;
    if (fscanf(f, "%lld", &d) != 1 || d < 1)
      fail_msg("tensor %s: bad dims", t->name);
    t->dims[i] = d;
    t->size *= d;
  }
  t->data = malloc((size_t)t->size * sizeof(float));
  assert_non_null(t->data);
  for (int64_t i = 0; i < t->size; i++)
    if (fscanf(f, "%f", &t->data[i]) != 1)
      fail_msg("tensor %s: short", t->name);
}

bool fx_read_case(FILE *f, fx_case *c) {
  char word[32];
  memset(c, 0, sizeof *c);
  if (fscanf(f, "%31s", word) != 1)
    return false;
  assert_string_equal(word, "case");
  char line[512];
  if (fscanf(f, "%79s", c->name) != 1 || fgets(line, sizeof line, f) == NULL)
    fail_msg("bad case line");
  for (char *tok = strtok(line, " \n");
       tok != NULL && c->key_count < FX_MAX_KEYS; tok = strtok(NULL, " \n")) {
    char *eq = strchr(tok, '=');
    assert_non_null(eq);
    *eq = '\0';
    snprintf(c->keys[c->key_count], sizeof c->keys[0], "%s", tok);
    snprintf(c->values[c->key_count], sizeof c->values[0], "%s", eq + 1);
    c->key_count++;
  }
  while (fscanf(f, "%31s", word) == 1 && strcmp(word, "end") != 0) {
    assert_string_equal(word, "tensor");
    assert_true(c->tensor_count < FX_MAX_TENSORS);
    read_tensor(f, &c->tensors[c->tensor_count++]);
  }
  return true;
}

void fx_free_case(fx_case *c) {
  for (size_t i = 0; i < c->tensor_count; i++)
    free(c->tensors[i].data);
}

const char *fx_value(const fx_case *c, const char *key) {
  for (size_t i = 0; i < c->key_count; i++)
    if (strcmp(c->keys[i], key) == 0)
      return c->values[i];
  fail_msg("case %s has no %s", c->name, key);
  return NULL;
}

int64_t fx_int(const fx_case *c, const char *key) {
  return strtoll(fx_value(c, key), NULL, 10);
}

float fx_float(const fx_case *c, const char *key) {
  return strtof(fx_value(c, key), NULL);
}

const fx_tensor *fx_find(const fx_case *c, const char *name) {
  for (size_t i = 0; i < c->tensor_count; i++)
    if (strcmp(c->tensors[i].name, name) == 0)
      return &c->tensors[i];
  return NULL;
}

const fx_tensor *fx_need(const fx_case *c, const char *name) {
  const fx_tensor *t = fx_find(c, name);
  if (t == NULL)
    fail_msg("case %s has no tensor %s", c->name, name);
  return t;
}
