/* parallel.c - the passes around the GEMMs on the threads the user gave
 * nnlib (nnlib_set_num_threads), beside OpenBLAS's own.
 *
 * OpenBLAS runs the matrix products on its threads; everything else a step
 * does (lowering, normalisation, activations, pooling, softmax, the
 * optimizer) used to run on the calling thread alone while OpenBLAS's other
 * threads waited. nnlib__parallel_for splits such a pass over a small pool:
 * the caller takes the first range, workers the others.
 *
 * Workers spin briefly after a job (yielding the core, so that OpenBLAS's
 * threads, which do the same between GEMMs, keep theirs) and then sleep on a
 * condition variable: an idle nnlib uses no CPU, and two pools never both
 * spin on one core for long.
 *
 * Determinism: the caller's function must compute each index the same way
 * whatever range it arrives in (no sums across indices that the split could
 * cut), so the results do not depend on the thread count or on which
 * thread ran what.
 *
 * One job runs at a time. A second caller (another thread predicting through
 * its workspace) or a call from inside a job runs its loop inline. */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_WORKERS 63
/* How long an idle worker keeps looking for the next job before it sleeps.
 * Waking a sleeping worker costs tens of microseconds on a virtual machine
 * (the idle vCPU has to be woken too), as much as a small pass or product
 * saves by the split: with 20 us, predicting one image of the benchmark CNN
 * on two threads ran at 0.90x of one thread, its workers asleep between the
 * jobs of each call; with 200 us at 1.35x of the 20 us spin (medians of 5
 * interleaved rounds of 1 s), the other models within the noise (gpt
 * training 1.03x). The spin yields the core on every turn, and OpenBLAS,
 * kept to one thread (core/blas.c), has no threads of its own left to
 * compete with it for the next GEMM. */
#define SPIN_NS 200000

typedef struct {
  pthread_mutex_t submit; /* one job at a time                            */
  pthread_mutex_t lock;   /* guards sleeping and waking                    */
  pthread_cond_t wake;
  atomic_uint_fast64_t generation; /* bumped once per job                 */
  atomic_int sleepers;
  atomic_int remaining; /* workers that have not yet finished the job    */
  atomic_bool stop;
  /* the job, written before generation is bumped */
  nnlib__range_fn fn;
  void *ctx;
  int64_t n;
  int parts;
  int workers; /* started so far; only the submitter changes it           */
  pthread_t thread[MAX_WORKERS];
  /* the generation before a worker's first job: read by the new thread,
   * which may start only after that job was published */
  uint64_t first_seen[MAX_WORKERS];
} pool_state;

static pool_state pool = {
    .submit = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

/* True on pool workers and while a thread runs its own share of a job. */
static _Thread_local bool in_job;

/* Range `part` of [0, n) cut into `parts`: the first n % parts ranges one
 * index longer than the rest. */
int64_t nnlib__range_start(int64_t n, int64_t parts, int64_t part) {
  int64_t rem = n % parts;
  return part * (n / parts) + (part < rem ? part : rem);
}

static void run_part(int part) {
  int64_t begin = nnlib__range_start(pool.n, pool.parts, part);
  int64_t end = nnlib__range_start(pool.n, pool.parts, part + 1);
  if (begin < end)
    pool.fn(pool.ctx, begin, end);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Waits until the generation differs from `seen` or the pool stops. */
static uint64_t wait_for_job(uint64_t seen) {
  uint64_t start = now_ns();
  for (;;) {
    uint64_t g = atomic_load(&pool.generation);
    if (g != seen || atomic_load(&pool.stop))
      return g;
    if (now_ns() - start > SPIN_NS)
      break;
    sched_yield();
  }
  pthread_mutex_lock(&pool.lock);
  atomic_fetch_add(&pool.sleepers, 1);
  uint64_t g;
  while ((g = atomic_load(&pool.generation)) == seen &&
         !atomic_load(&pool.stop))
    pthread_cond_wait(&pool.wake, &pool.lock);
  atomic_fetch_sub(&pool.sleepers, 1);
  pthread_mutex_unlock(&pool.lock);
  return g;
}

static void *worker_main(void *arg) {
  int part = (int)(intptr_t)arg; /* worker w runs range w (1-based)        */
  in_job = true;
  uint64_t seen = pool.first_seen[part - 1];
  for (;;) {
    seen = wait_for_job(seen);
    if (atomic_load(&pool.stop))
      return NULL;
    /* every worker acknowledges every job, so that none still reads
     * this job's fields when the submitter writes the next one's */
    if (part < pool.parts)
      run_part(part);
    atomic_fetch_sub(&pool.remaining, 1);
  }
}

/* A child of fork() has none of its parent's workers (and its locks may
 * have been held by a thread that does not exist there): it starts over. */
static void reset_after_fork(void) {
  pthread_mutex_init(&pool.submit, NULL);
  pthread_mutex_init(&pool.lock, NULL);
  pthread_cond_init(&pool.wake, NULL);
  atomic_store(&pool.sleepers, 0);
  atomic_store(&pool.remaining, 0);
  pool.workers = 0;
  in_job = false;
}

/* Starts workers until there are `want`; returns how many there are. */
static int grow_pool(int want) {
  static bool fork_handler;
  if (!fork_handler)
    fork_handler = pthread_atfork(NULL, NULL, reset_after_fork) == 0;
  if (want > MAX_WORKERS)
    want = MAX_WORKERS;
  while (pool.workers < want) {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
      break;
    pool.first_seen[pool.workers] = atomic_load(&pool.generation);
    int rc = pthread_create(&pool.thread[pool.workers], &attr, worker_main,
                            (void *)(intptr_t)(pool.workers + 1));
    pthread_attr_destroy(&attr);
    if (rc != 0)
      break; /* fewer threads; the job still runs, in fewer ranges */
    pool.workers++;
  }
  return pool.workers;
}

/* Stops and joins the workers when the library is unloaded (or the program
 * exits), so that leak checkers and dlclose see no thread left behind. */
__attribute__((destructor)) static void stop_pool(void) {
  pthread_mutex_lock(&pool.submit);
  pthread_mutex_lock(&pool.lock);
  atomic_store(&pool.stop, true);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
  for (int w = 0; w < pool.workers; w++)
    pthread_join(pool.thread[w], NULL);
  pool.workers = 0;
  pthread_mutex_unlock(&pool.submit);
}

static void run_job(void) {
  atomic_store(&pool.remaining, pool.workers);
  atomic_fetch_add(&pool.generation, 1); /* publishes fn, ctx, n, parts  */
  if (atomic_load(&pool.sleepers) > 0) {
    pthread_mutex_lock(&pool.lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
  }
  in_job = true;
  run_part(0);
  in_job = false;
  while (atomic_load(&pool.remaining) > 0)
    sched_yield();
}

static int parts_for(int64_t n, int64_t min_per_part) {
  int threads = nnlib_get_num_threads();
  if (in_job || threads <= 1 || n <= 0)
    return 1;
  if (min_per_part < 1)
    min_per_part = 1;
  int64_t parts = n / min_per_part;
  if (parts > threads)
    parts = threads;
  if (parts > MAX_WORKERS + 1)
    parts = MAX_WORKERS + 1;
  return parts < 1 ? 1 : (int)parts;
}

void nnlib__parallel_for(int64_t n, int64_t min_per_part, nnlib__range_fn fn,
                         void *ctx) {
  int parts = parts_for(n, min_per_part);
  if (parts <= 1 || atomic_load(&pool.stop) ||
      pthread_mutex_trylock(&pool.submit) != 0) {
    if (n > 0)
      fn(ctx, 0, n);
    return;
  }
  int workers = grow_pool(parts - 1);
  if (workers + 1 < parts)
    parts = workers + 1;
  if (parts <= 1) {
    pthread_mutex_unlock(&pool.submit);
    fn(ctx, 0, n);
    return;
  }
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  pool.parts = parts;
  run_job();
  pthread_mutex_unlock(&pool.submit);
}

int64_t nnlib__parallel_grain(int64_t values_per_index, int64_t min_values) {
  if (values_per_index <= 0 || values_per_index >= min_values)
    return 1;
  return (min_values + values_per_index - 1) / values_per_index;
}
