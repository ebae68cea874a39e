/* cli_args.c - "--name value" options, "--flag" switches and positional
 * words, with every leftover argument reported as an error. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_args_init(cli_args *a, int argc, char **argv) {
  a->count = argc;
  a->argv = argv;
  a->used = calloc((size_t)argc + 1, sizeof(bool));
  return a->used != NULL;
}

void cli_args_free(cli_args *a) { free(a->used); }

static int find(cli_args *a, const char *name) {
  for (int i = 0; i < a->count; i++)
    if (!a->used[i] && a->argv[i][0] == '-' && a->argv[i][1] == '-' &&
        strcmp(a->argv[i] + 2, name) == 0)
      return i;
  return -1;
}

bool cli_has_flag(cli_args *a, const char *name) {
  int i = find(a, name);
  if (i < 0)
    return false;
  a->used[i] = true;
  return true;
}

const char *cli_get(cli_args *a, const char *name, const char *fallback) {
  int i = find(a, name);
  if (i < 0 || i + 1 >= a->count)
    return fallback;
  a->used[i] = a->used[i + 1] = true;
  return a->argv[i + 1];
}

bool cli_get_i64(cli_args *a, const char *name, int64_t fallback, int64_t min,
                 int64_t max, int64_t *out) {
  const char *text = cli_get(a, name, NULL);
  *out = fallback;
  if (text == NULL)
    return true;
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || end == text || v < min || v > max) {
    fprintf(stderr, "nnlib: --%s %s: expected a whole number in %lld..%lld\n",
            name, text, (long long)min, (long long)max);
    return false;
  }
  *out = v;
  return true;
}

bool cli_get_float(cli_args *a, const char *name, float fallback, float *out) {
  const char *text = cli_get(a, name, NULL);
  *out = fallback;
  if (text == NULL)
    return true;
  char *end;
  float v = strtof(text, &end);
  if (*end != '\0' || end == text || !isfinite(v) || v < 0.0f) {
    fprintf(stderr, "nnlib: --%s %s: expected a number >= 0\n", name, text);
    return false;
  }
  *out = v;
  return true;
}

const char *cli_positional(cli_args *a) {
  for (int i = 0; i < a->count; i++)
    if (!a->used[i] && a->argv[i][0] != '-') {
      a->used[i] = true;
      return a->argv[i];
    }
  return NULL;
}

bool cli_all_used(cli_args *a, const char *command) {
  for (int i = 0; i < a->count; i++)
    if (!a->used[i]) {
      fprintf(stderr, "nnlib %s: unknown or misplaced argument '%s' (see "
                      "nnlib %s --help)\n",
              command, a->argv[i], command);
      return false;
    }
  return true;
}
