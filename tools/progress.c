/* progress.c - the per-epoch progress bar: drawn on a terminal at most ten
 * times a second, never written when stderr is not a terminal. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdio.h>
#include <time.h>

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum { BAR_WIDTH = 30 };

int cli_progress_callback(const nnlib_progress *p, void *user) {
  cli_progress *bar = user;
  if (!bar->tty)
    return 0;
  double now = cli_now();
  bool last = p->samples_done == p->samples;
  if (!last && now - bar->last_draw < 0.1)
    return 0;
  bar->last_draw = now;
  double elapsed = now - bar->start;
  double rate = elapsed > 0 ? (double)p->samples_done / elapsed : 0.0;
  double eta = rate > 0 ? (double)(p->samples - p->samples_done) / rate : 0.0;
  int filled = (int)(BAR_WIDTH * p->samples_done / p->samples);
  char bar_text[BAR_WIDTH + 1];
  for (int i = 0; i < BAR_WIDTH; i++)
    bar_text[i] = i < filled ? '#' : '.';
  bar_text[BAR_WIDTH] = '\0';
  fprintf(stderr, "\r  epoch %lld/%lld [%s] %3d%% %8.0f samples/s loss %.4f "
                  "ETA %3.0fs ",
          (long long)bar->epoch + 1, (long long)bar->epochs, bar_text,
          (int)(100 * p->samples_done / p->samples), rate, p->epoch_loss, eta);
  fflush(stderr);
  return 0;
}

void cli_progress_clear(cli_progress *p) {
  if (p->tty)
    fprintf(stderr, "\r%*s\r", 100, "");
}

/* The same bar over the steps of `nnlib train --text`: step, rate, the mean
 * training loss since the last printed line, time left. */
void cli_progress_steps(cli_progress *bar, int64_t step, int64_t steps,
                        double loss) {
  if (!bar->tty)
    return;
  double now = cli_now();
  if (step != steps && now - bar->last_draw < 0.1)
    return;
  bar->last_draw = now;
  double elapsed = now - bar->start;
  double rate = elapsed > 0 ? (double)step / elapsed : 0.0;
  double eta = rate > 0 ? (double)(steps - step) / rate : 0.0;
  int filled = (int)(BAR_WIDTH * step / steps);
  char bar_text[BAR_WIDTH + 1];
  for (int i = 0; i < BAR_WIDTH; i++)
    bar_text[i] = i < filled ? '#' : '.';
  bar_text[BAR_WIDTH] = '\0';
  fprintf(stderr, "\r  step %lld/%lld [%s] %3d%% %6.1f steps/s loss %.4f "
                  "ETA %3.0fs ",
          (long long)step, (long long)steps, bar_text,
          (int)(100 * step / steps), rate, loss, eta);
  fflush(stderr);
}
