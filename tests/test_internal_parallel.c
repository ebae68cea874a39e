/* The pass pool (src/core/parallel.c): every index runs exactly once, in at
 * most one range per thread and none shorter than asked; ranges really run
 * on other threads; a call from inside a range, from several threads at
 * once, or in a forked child still covers everything. Run under
 * ThreadSanitizer by the reliability checks. */
#define _POSIX_C_SOURCE 200809L
#include "test_support.h"

#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_N = 100003 };

typedef struct coverage {
  atomic_int *hits;
  atomic_int ranges;
  atomic_long shortest;
  atomic_int foreign; /* ranges run by a thread other than the caller's */
  pthread_t caller;
} coverage;

static void count_range(void *ctx, int64_t begin, int64_t end) {
  coverage *c = ctx;
  for (int64_t i = begin; i < end; i++)
    atomic_fetch_add(&c->hits[i], 1);
  atomic_fetch_add(&c->ranges, 1);
  long len = (long)(end - begin);
  long cur = atomic_load(&c->shortest);
  while (len < cur && !atomic_compare_exchange_weak(&c->shortest, &cur, len))
    ;
  if (!pthread_equal(pthread_self(), c->caller))
    atomic_fetch_add(&c->foreign, 1);
}

/* Runs one job over [0, n) and checks it; returns the foreign range count. */
static int run_and_check(int threads, int64_t n, int64_t min_per_part) {
  coverage c = {.caller = pthread_self()};
  c.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *c.hits);
  assert_non_null(c.hits);
  atomic_store(&c.shortest, (long)n);
  nnlib__parallel_for(n, min_per_part, count_range, &c);
  for (int64_t i = 0; i < n; i++)
    assert_int_equal(atomic_load(&c.hits[i]), 1);
  int ranges = atomic_load(&c.ranges);
  assert_true(ranges <= threads);
  if (n == 0)
    assert_int_equal(ranges, 0);
  if (ranges > 1)
    assert_true(atomic_load(&c.shortest) >= min_per_part);
  free(c.hits);
  return atomic_load(&c.foreign);
}

static void test_every_index_once(void **state) {
  (void)state;
  static const int64_t sizes[] = {0, 1, 2, 3, 7, 100, 1000, MAX_N};
  static const int64_t mins[] = {1, 3, 1000};
  for (int threads = 1; threads <= 4; threads++) {
    ASSERT_OK(nnlib_set_num_threads(threads));
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
      for (size_t m = 0; m < sizeof mins / sizeof *mins; m++)
        run_and_check(threads, sizes[s], mins[m]);
  }
  ASSERT_OK(nnlib_set_num_threads(1));
}

static void test_ranges_run_on_other_threads(void **state) {
  (void)state;
  ASSERT_OK(nnlib_set_num_threads(2));
  int foreign = 0;
  for (int r = 0; r < 20; r++)
    foreign += run_and_check(2, 10000, 1);
  assert_int_equal(foreign, 20); /* exactly one foreign range each time */
  ASSERT_OK(nnlib_set_num_threads(1));
  assert_int_equal(run_and_check(1, 10000, 1), 0);
}

typedef struct nested {
  atomic_int inner_foreign;
  atomic_int inner_total;
} nested;

typedef struct inner_ctx {
  nested *outer;
  pthread_t owner;
} inner_ctx;

static void inner_range(void *ctx, int64_t begin, int64_t end) {
  inner_ctx *c = ctx;
  if (!pthread_equal(pthread_self(), c->owner))
    atomic_fetch_add(&c->outer->inner_foreign, 1);
  atomic_fetch_add(&c->outer->inner_total, (int)(end - begin));
}

static void outer_range(void *ctx, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    inner_ctx c = {.outer = ctx, .owner = pthread_self()};
    nnlib__parallel_for(50, 1, inner_range, &c);
  }
}

static void test_nested_call_runs_inline(void **state) {
  (void)state;
  ASSERT_OK(nnlib_set_num_threads(2));
  nested n = {0};
  nnlib__parallel_for(8, 1, outer_range, &n);
  assert_int_equal(atomic_load(&n.inner_total), 8 * 50);
  assert_int_equal(atomic_load(&n.inner_foreign), 0);
  ASSERT_OK(nnlib_set_num_threads(1));
}

static void *submitter(void *arg) {
  int *failures = arg;
  for (int r = 0; r < 100; r++) {
    coverage c = {.caller = pthread_self()};
    c.hits = calloc(5000, sizeof *c.hits);
    atomic_store(&c.shortest, 5000L);
    nnlib__parallel_for(5000, 16, count_range, &c);
    for (int i = 0; i < 5000; i++)
      if (atomic_load(&c.hits[i]) != 1)
        (*failures)++;
    free(c.hits);
  }
  return NULL;
}

static void test_concurrent_submitters(void **state) {
  (void)state;
  ASSERT_OK(nnlib_set_num_threads(2));
  pthread_t t[4];
  int failures[4] = {0};
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, submitter, &failures[i]), 0);
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(failures[i], 0);
  }
  ASSERT_OK(nnlib_set_num_threads(1));
}

/* A child of fork() has none of the parent's workers: its jobs must still
 * finish (they would wait forever for workers that do not exist). */
static void test_fork_child_runs_jobs(void **state) {
  (void)state;
  if (!ts_fork_with_threads_checkable())
    skip();
  ASSERT_OK(nnlib_set_num_threads(2));
  run_and_check(2, 10000, 1); /* the parent's worker exists now */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(20);
    coverage c = {.caller = pthread_self()};
    c.hits = calloc(10000, sizeof *c.hits);
    atomic_store(&c.shortest, 10000L);
    nnlib__parallel_for(10000, 1, count_range, &c);
    int ok = atomic_load(&c.ranges) == 2 && atomic_load(&c.foreign) == 1;
    for (int i = 0; i < 10000; i++)
      ok = ok && atomic_load(&c.hits[i]) == 1;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  ASSERT_OK(nnlib_set_num_threads(1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_index_once),
      cmocka_unit_test(test_ranges_run_on_other_threads),
      cmocka_unit_test(test_nested_call_runs_inline),
      cmocka_unit_test(test_concurrent_submitters),
      cmocka_unit_test(test_fork_child_runs_jobs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
