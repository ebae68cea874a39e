/* cli_args.c - "--name value" options, "--flag" switches and positional
 * words, with every leftover argument reported as an error. The first
 * error found (a value missing, an option given twice, a value that is no
 * number) is printed, as the only line; every later getter then fails
 * quietly. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_args_init(cli_args *a, int argc, char **argv) {
  a->count = argc;
  a->argv = argv;
  a->failed = false;
  a->used = calloc((size_t)argc + 1, sizeof(bool));
  if (a->used == NULL)
    fprintf(stderr, "nnlib: out of memory\n");
  return a->used != NULL;
}

void cli_args_free(cli_args *a) { free(a->used); }

bool cli_ok(const cli_args *a) { return !a->failed; }

/* Prints the first error only: one line for a command line, however many
 * things are wrong with it. */
static void report(cli_args *a, const char *format, ...) {
  if (a->failed)
    return;
  a->failed = true;
  va_list ap;
  va_start(ap, format);
  vfprintf(stderr, format, ap);
  va_end(ap);
}

/* --name; for "help", -h too (every command takes both). */
static bool is_option(const char *arg, const char *name) {
  if (strcmp(name, "help") == 0 && strcmp(arg, "-h") == 0)
    return true;
  return arg[0] == '-' && arg[1] == '-' && strcmp(arg + 2, name) == 0;
}

static int find(cli_args *a, const char *name, int from) {
  for (int i = from; i < a->count; i++)
    if (!a->used[i] && is_option(a->argv[i], name))
      return i;
  return -1;
}

/* An option named once more after argv[after] (past its value, if any). */
static void refuse_repeat(cli_args *a, const char *name, int after) {
  if (find(a, name, after + 1) >= 0)
    report(a, "nnlib: --%s is given twice\n", name);
}

bool cli_has_flag(cli_args *a, const char *name) {
  int i = find(a, name, 0);
  if (i < 0)
    return false;
  a->used[i] = true;
  if (strcmp(name, "help") != 0)
    refuse_repeat(a, name, i);
  else /* --help --help (or -h) asks for help all the same */
    while ((i = find(a, name, i + 1)) >= 0)
      a->used[i] = true;
  return true;
}

/* --name's value: the next argument; with any_value false, one that looks
 * like another option ("--...") is no value. */
static const char *get_value(cli_args *a, const char *name,
                             const char *fallback, bool any_value, bool once) {
  int i = find(a, name, 0);
  if (i < 0)
    return fallback;
  a->used[i] = true;
  if (i + 1 >= a->count || a->used[i + 1] ||
      (!any_value && strncmp(a->argv[i + 1], "--", 2) == 0)) {
    report(a, "nnlib: --%s needs a value\n", name);
    return fallback;
  }
  a->used[i + 1] = true;
  if (once)
    refuse_repeat(a, name, i + 1);
  return a->argv[i + 1];
}

const char *cli_get(cli_args *a, const char *name, const char *fallback) {
  return get_value(a, name, fallback, false, true);
}

const char *cli_get_text(cli_args *a, const char *name, const char *fallback) {
  return get_value(a, name, fallback, true, true);
}

const char *cli_get_next(cli_args *a, const char *name) {
  return get_value(a, name, NULL, false, false);
}

bool cli_get_i64(cli_args *a, const char *name, int64_t fallback, int64_t min,
                 int64_t max, int64_t *out) {
  const char *text = cli_get(a, name, NULL);
  *out = fallback;
  if (text == NULL)
    return cli_ok(a);
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || end == text || v < min || v > max) {
    report(a, "nnlib: --%s %s: expected a whole number in %lld..%lld\n", name,
           text, (long long)min, (long long)max);
    return false;
  }
  *out = v;
  return cli_ok(a);
}

bool cli_get_float(cli_args *a, const char *name, float fallback, bool positive,
                   float *out) {
  const char *text = cli_get(a, name, NULL);
  *out = fallback;
  if (text == NULL)
    return cli_ok(a);
  char *end;
  float v = strtof(text, &end);
  if (*end != '\0' || end == text || !isfinite(v) || v < 0.0f ||
      (positive && v == 0.0f)) {
    report(a, "nnlib: --%s %s: expected a number %s 0\n", name, text,
           positive ? ">" : ">=");
    return false;
  }
  *out = v;
  return cli_ok(a);
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
  if (a->failed)
    return false;
  for (int i = 0; i < a->count; i++)
    if (!a->used[i]) {
      fprintf(stderr, "nnlib %s: unknown or misplaced argument '%s' (see "
                      "nnlib %s --help)\n",
              command, a->argv[i], command);
      return false;
    }
  return true;
}
