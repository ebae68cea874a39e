/* bench_util.c - timing, statistics and JSON-lines output for benchmarks. */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

bench_stats bench_summarise(double *times, int count) {
  bench_stats s = {count, NAN, NAN, NAN};
  if (count <= 0)
    return s;
  qsort(times, (size_t)count, sizeof *times, cmp_double);
  s.min_s = times[0];
  s.max_s = times[count - 1];
  s.median_s = count % 2 ? times[count / 2]
                         : 0.5 * (times[count / 2 - 1] + times[count / 2]);
  return s;
}

int bench_reps_for(double budget_s, double one_s, int min_reps, int max_reps) {
  double want = one_s > 0.0 ? budget_s / one_s : (double)max_reps;
  if (want < min_reps)
    return min_reps;
  if (want > max_reps)
    return max_reps;
  return (int)want;
}

static int json_fields;
static const char *tag_key, *tag_value;

void bench_json_tag(const char *key, const char *value) {
  tag_key = value != NULL ? key : NULL;
  tag_value = value;
}

void bench_json_begin(void) {
  json_fields = 0;
  fputc('{', stdout);
}

static void json_key(const char *key) {
  printf("%s\"%s\":", json_fields++ ? "," : "", key);
}

static void json_str_field(const char *key, const char *value);

void bench_json_str(const char *key, const char *value) {
  json_str_field(key, value);
  /* the tag follows "bench", so every line names it near the front */
  if (tag_key != NULL && strcmp(key, "bench") == 0)
    json_str_field(tag_key, tag_value);
}

static void json_str_field(const char *key, const char *value) {
  json_key(key);
  fputc('"', stdout);
  for (const char *p = value; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if ((unsigned char)*p < 0x20)
      printf("\\u%04x", (unsigned)(unsigned char)*p);
    else
      fputc(*p, stdout);
  }
  fputc('"', stdout);
}

void bench_json_int(const char *key, long long value) {
  json_key(key);
  printf("%lld", value);
}

void bench_json_num(const char *key, double value) {
  json_key(key);
  if (isfinite(value))
    printf("%.6g", value);
  else
    fputs("null", stdout);
}

void bench_json_stats(const bench_stats *s) {
  bench_json_int("reps", s->reps);
  bench_json_num("median_s", s->median_s);
  bench_json_num("min_s", s->min_s);
  bench_json_num("max_s", s->max_s);
}

void bench_json_end(void) {
  fputs("}\n", stdout);
  fflush(stdout);
}

void bench_fill(float *v, size_t n, float lo, float hi, uint32_t *state) {
  for (size_t i = 0; i < n; i++) {
    *state = *state * 1664525u + 1013904223u;
    v[i] = lo + (hi - lo) * (float)(*state >> 8) / 16777216.0f;
  }
}

/* The value of `line` if it reads "key<tabs or spaces>: value", else
 * NULL: "model" must not take "model name"'s line. */
static const char *cpuinfo_value(const char *line, const char *key) {
  size_t len = strlen(key);
  if (strncmp(line, key, len) != 0)
    return NULL;
  const char *at = line + len;
  while (*at == ' ' || *at == '\t')
    at++;
  if (*at != ':')
    return NULL;
  at++;
  while (*at == ' ' || *at == '\t')
    at++;
  return at;
}

void bench_cpuinfo(const char *key, char *buf, size_t capacity) {
  snprintf(buf, capacity, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f == NULL)
    return;
  char line[512];
  while (fgets(line, sizeof line, f) != NULL) {
    const char *value = cpuinfo_value(line, key);
    if (value == NULL)
      continue;
    snprintf(buf, capacity, "%s", value);
    buf[strcspn(buf, "\n")] = '\0';
    break;
  }
  fclose(f);
}

long long bench_proc_status_bytes(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL)
    return -1;
  char line[256];
  long long kib = -1;
  size_t len = strlen(field);
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, field, len) == 0 && line[len] == ':') {
      kib = strtoll(line + len + 1, NULL, 10);
      break;
    }
  fclose(f);
  return kib < 0 ? -1 : kib * 1024;
}
