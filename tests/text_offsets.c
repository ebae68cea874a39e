/* text_offsets - the first offsets nnlib_text_sample draws, for comparison
 * with benchmarks/char_gpt_torch.py --print-offsets (tests/text.cmake runs
 * both and compares their output, tests/check_text_offsets.sh).
 *
 *   text_offsets DIR SEED COUNT CONTEXT
 *
 * Loads DIR with valid fraction 0.1 and SEED, prints
 * "train_size=N valid_size=M" and then COUNT lines, the offsets of the
 * first COUNT training windows of context CONTEXT. The offsets come from
 * the library's own generator (nnlib__rng_below over train_size - CONTEXT,
 * seeded like the text); every sampled row is checked to be the window at
 * its offset, so the printed numbers are those nnlib_text_sample used
 * (exit status 1 otherwise). Links the static library for nnlib__rng. */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
  fprintf(stderr, "text_offsets: %s: %s\n", what, nnlib_last_error_message());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s DIR SEED COUNT CONTEXT\n", argv[0]);
    return 2;
  }
  const char *paths[1] = {argv[1]};
  uint64_t seed = strtoull(argv[2], NULL, 10);
  int64_t count = strtoll(argv[3], NULL, 10);
  int64_t context = strtoll(argv[4], NULL, 10);
  nnlib_text *text = NULL;
  nnlib_tensor *x = NULL, *y = NULL;
  int64_t shape[2] = {1, context};
  if (nnlib_text_load(&text, paths, 1, 0.1, seed) != NNLIB_OK)
    return fail(argv[1]);
  if (nnlib_tensor_create_int32(&x, shape, 2) != NNLIB_OK ||
      nnlib_tensor_create_int32(&y, shape, 2) != NNLIB_OK)
    return fail("tensors");
  int64_t train = nnlib_text_get_size(text, NNLIB_TEXT_TRAIN);
  const uint8_t *bytes = nnlib_text_get_bytes(text, NNLIB_TEXT_TRAIN);
  printf("train_size=%lld valid_size=%lld\n", (long long)train,
         (long long)nnlib_text_get_size(text, NNLIB_TEXT_VALID));
  nnlib__rng rng;
  nnlib__rng_seed(&rng, seed);
  int status = 0;
  for (int64_t i = 0; i < count && status == 0; i++) {
    int64_t offset =
        (int64_t)nnlib__rng_below(&rng, (uint64_t)(train - context));
    if (nnlib_text_sample(text, NNLIB_TEXT_TRAIN, x, y) != NNLIB_OK)
      return fail("nnlib_text_sample");
    const int32_t *xd = nnlib_tensor_get_data_int32(x);
    const int32_t *yd = nnlib_tensor_get_data_int32(y);
    for (int64_t t = 0; t < context; t++)
      if (xd[t] != bytes[offset + t] || yd[t] != bytes[offset + t + 1]) {
        fprintf(stderr, "text_offsets: window %lld is not the one at %lld\n",
                (long long)i, (long long)offset);
        status = 1;
        break;
      }
    printf("%lld\n", (long long)offset);
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_text_free(text);
  return status;
}
