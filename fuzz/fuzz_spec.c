/* fuzz_spec: the text model description parser (nnlib_model_add_spec) on
 * arbitrary text. A description that parses must print back
 * (nnlib_model_get_spec) into a text that parses into the same layers and
 * prints the same again (a fixed point); one that does not parse adds no
 * layer. A parsed model is compiled for a small input of rank 1, 2 or 3
 * (whichever its first layer takes; int32 token ids for an input that an
 * embedding reads) and predicts one batch (the capped allocator turns
 * huge widths into NNLIB_ERR_OUT_OF_MEMORY) and refuses an id outside
 * the vocabulary as out of range; a language model (ids [T] in,
 * logits [T, V] out) generates a few tokens, with or without the cache. */
/* A parameter block of 4M floats at most: a description asks for any size
 * in a few bytes (embedding:2653305:4 is 42 MB), and drawing that many
 * initial weights takes seconds under ASan, which is the text's request,
 * not a bug; larger ones are NNLIB_ERR_OUT_OF_MEMORY at once. */
#define FUZZ_MAX_ALLOC ((size_t)16 << 20)
#include "fuzz_common.h"

enum { SPEC_MAX = 4096 };

/* The description of m into buf; false if it does not fit. */
static bool spec_of(const nnlib_model *m, char *buf) {
  size_t needed = 0;
  FUZZ_CHECK(nnlib_model_get_spec(m, buf, SPEC_MAX, &needed) == NNLIB_OK);
  FUZZ_CHECK(strlen(buf) == (needed < SPEC_MAX ? needed : SPEC_MAX - 1));
  return needed < SPEC_MAX;
}

static void check_fixed_point(const nnlib_model *m) {
  static char first[SPEC_MAX], second[SPEC_MAX];
  if (!spec_of(m, first))
    return;
  nnlib_model *again = NULL;
  if (nnlib_model_create(&again) != NNLIB_OK)
    return;
  nnlib_status st = nnlib_model_add_spec(again, first);
  fuzz_expect(st);
  if (st != NNLIB_ERR_OUT_OF_MEMORY) {
    if (st != NNLIB_OK)
      fprintf(stderr, "printed spec \"%s\" does not parse: %s\n", first,
              nnlib_last_error_message());
    FUZZ_CHECK(st == NNLIB_OK);
    FUZZ_CHECK(nnlib_model_get_layer_count(again) ==
               nnlib_model_get_layer_count(m));
    FUZZ_CHECK(spec_of(again, second));
    FUZZ_CHECK(strcmp(first, second) == 0);
  }
  nnlib_model_free(again);
}

/* The description declares its inputs (input:DIMS items): node 0 has a
 * shape before compile. */
static bool declares_inputs(nnlib_model *m) {
  nnlib_node_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  return nnlib_model_get_node(m, 0, &info) == NNLIB_OK && info.rank > 0;
}

/* Compiles the description for a small input of each rank (features,
 * [T, F] sequences, [C, H, W] images): the first that plans predicts one
 * batch. */
static void compile_and_predict(const char *text, size_t size) {
  int64_t n = 1 + (int64_t)(size % 7);
  const int64_t shapes[3][3] = {{n, 0, 0}, {3, n, 0}, {2, 5 + n, 6}};
  for (size_t rank = 1; rank <= 3; rank++) {
    nnlib_model *m = NULL;
    if (nnlib_model_create(&m) != NNLIB_OK)
      return;
    nnlib_status st = nnlib_model_add_spec(m, text);
    fuzz_expect(st);
    if (st == NNLIB_OK && nnlib_model_get_layer_count(m) == 0) {
      nnlib_model_free(m); /* only inputs declared: nothing to compile */
      return;
    }
    if (st == NNLIB_OK && declares_inputs(m)) {
      st = nnlib_model_compile_graph(m, 2, NNLIB_LOSS_NONE, NULL, 1);
      rank = 3; /* the declared shapes are the only ones to try */
    } else if (st == NNLIB_OK) {
      st = nnlib_model_compile(m, shapes[rank - 1], rank, 2, NNLIB_LOSS_NONE,
                               NULL, 1);
    }
    /* a graph whose output does not use every node is refused as an
     * invalid argument (an unused input, a dead-end branch) */
    if (st != NNLIB_ERR_INVALID_ARGUMENT)
      fuzz_expect(st);
    if (st == NNLIB_OK) {
      int32_t tokens[4];
      fuzz_expect(fuzz_predict(m, 2, NULL));
      fuzz_check_bad_ids(m, 2);
      fuzz_generate(m, (int)(size & 1), size, tokens, 4);
    }
    nnlib_model_free(m);
    if (st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY)
      return;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 2 * SPEC_MAX)
    return 0;
  fuzz_begin();
  char *text = malloc(size + 1);
  FUZZ_CHECK(text != NULL);
  memcpy(text, data, size);
  text[size] = '\0'; /* an embedded NUL just ends the text early */

  nnlib_model *m = NULL;
  FUZZ_CHECK(nnlib_model_create(&m) == NNLIB_OK);
  nnlib_status st = nnlib_model_add_spec(m, text);
  fuzz_expect(st);
  if (st != NNLIB_OK)
    FUZZ_CHECK(nnlib_model_get_layer_count(m) == 0);
  else
    check_fixed_point(m);
  nnlib_model_free(m);
  if (st == NNLIB_OK)
    compile_and_predict(text, size);
  free(text);
  fuzz_end();
  return 0;
}
