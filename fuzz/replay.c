/* replay.c - runs a fuzz target's LLVMFuzzerTestOneInput over files without
 * libFuzzer, so any compiler builds it: ctest replays the committed seed
 * corpus and every regression file on each normal build, and a developer
 * reproduces a crash with `replay_<target> crash-file`.
 *
 *   replay_<target> [file-or-directory ...]
 *
 * Without arguments it replays the directories compiled in as
 * NNLIB_FUZZ_REGRESSIONS and NNLIB_FUZZ_CORPUS (a missing one is skipped).
 * Directories are read in name order; names starting with '.' are skipped.
 * A crash or failed invariant aborts, which fails the test. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long replayed;

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return 1;
  }
  size_t cap = 4096, size = 0;
  uint8_t *data = malloc(cap);
  size_t got;
  while (data != NULL && (got = fread(data + size, 1, cap - size, f)) > 0) {
    size += got;
    if (size == cap) {
      uint8_t *bigger = realloc(data, cap * 2);
      if (bigger == NULL) {
        free(data);
        data = NULL;
        break;
      }
      data = bigger;
      cap *= 2;
    }
  }
  int failed = ferror(f) || data == NULL;
  fclose(f);
  if (failed) {
    fprintf(stderr, "replay: cannot read %s\n", path);
    free(data);
    return 1;
  }
  /* an exact-size copy, so ASan sees a read past the input's end */
  uint8_t *exact = malloc(size ? size : 1);
  if (exact == NULL) {
    free(data);
    return 1;
  }
  memcpy(exact, data, size);
  free(data);
  LLVMFuzzerTestOneInput(exact, size);
  free(exact);
  replayed++;
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_path(const char *path, int must_exist) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (!must_exist)
      return 0;
    fprintf(stderr, "replay: no such file or directory: %s\n", path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode))
    return replay_file(path);
  DIR *dir = opendir(path);
  if (dir == NULL)
    return 1;
  char **names = NULL;
  size_t count = 0, cap = 0;
  int failed = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    if (count == cap) {
      cap = cap ? cap * 2 : 64;
      char **grown = realloc(names, cap * sizeof *names);
      if (grown == NULL) {
        failed = 1;
        break;
      }
      names = grown;
    }
    size_t len = strlen(path) + strlen(e->d_name) + 2;
    names[count] = malloc(len);
    if (names[count] == NULL) {
      failed = 1;
      break;
    }
    snprintf(names[count], len, "%s/%s", path, e->d_name);
    count++;
  }
  closedir(dir);
  if (count > 1)
    qsort(names, count, sizeof *names, by_name);
  for (size_t i = 0; i < count; i++) {
    if (!failed)
      failed |= replay_path(names[i], 1);
    free(names[i]);
  }
  free(names);
  return failed;
}

int main(int argc, char **argv) {
  int failed = 0;
  if (argc > 1) {
    for (int i = 1; i < argc; i++)
      failed |= replay_path(argv[i], 1);
  } else {
#if defined(NNLIB_FUZZ_REGRESSIONS) && defined(NNLIB_FUZZ_CORPUS)
    failed |= replay_path(NNLIB_FUZZ_REGRESSIONS, 0);
    failed |= replay_path(NNLIB_FUZZ_CORPUS, 0);
#else
    fprintf(stderr, "usage: %s file-or-directory...\n", argv[0]);
    return 2;
#endif
  }
  printf("replayed %ld inputs%s\n", replayed, failed ? ", with errors" : "");
  return failed;
}
