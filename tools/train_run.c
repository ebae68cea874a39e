/* train_run.c - what `nnlib train` shares with its mpirun variant: loading
 * the data (and holding out --validation samples), the optimizer and model
 * the flags describe, and the lines it prints. */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <stdio.h>
#include <string.h>

const char *const train_optimizer_names[] = {"sgd", "adam", "adamw",
                                             "rmsprop", NULL};
static const nnlib_optimizer_kind optimizer_kinds[] = {
    NNLIB_OPT_SGD, NNLIB_OPT_ADAM, NNLIB_OPT_ADAMW, NNLIB_OPT_RMSPROP};

int train_name_index(const char *name, const char *const *names) {
  for (int i = 0; names[i] != NULL; i++)
    if (strcmp(names[i], name) == 0)
      return i;
  return -1;
}

/* The optimizer the flags describe; schedules count steps of the whole run. */
static nnlib_status make_optimizer(const train_config *c, int64_t steps,
                                   nnlib_optimizer **out) {
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(
      &o, optimizer_kinds[train_name_index(c->optimizer,
                                           train_optimizer_names)]);
  if (c->lr > 0.0f)
    o.learning_rate = c->lr;
  if (c->momentum >= 0.0f)
    o.momentum = c->momentum;
  if (c->weight_decay >= 0.0f)
    o.weight_decay = c->weight_decay;
  if (strcmp(c->schedule, "cosine") == 0) {
    o.schedule = NNLIB_SCHEDULE_COSINE;
    o.total_steps = steps;
  }
  return nnlib_optimizer_create(out, &o);
}

/* Prints the failure and passes its status on. */
static nnlib_status build_fail(const char *what, nnlib_status st) {
  cli_fail("train", what, st);
  return st;
}

/* A view of samples [first, first + count) of t (no copy; training may
 * not write it, but a view is writable, so t is too). */
static nnlib_status sample_view(nnlib_tensor *t, int64_t first,
                                int64_t count, nnlib_tensor **out) {
  int64_t shape[NNLIB_MAX_RANK];
  size_t rank = nnlib_tensor_get_rank(t);
  int64_t per = nnlib_tensor_get_size(t) / nnlib_tensor_get_dim(t, 0);
  for (size_t i = 0; i < rank; i++)
    shape[i] = nnlib_tensor_get_dim(t, i);
  shape[0] = count;
  return nnlib_tensor_wrap(out, nnlib_tensor_get_data(t) + first * per,
                           shape, rank);
}

/* --validation N: the last N loaded training samples become the
 * validation set; training sees the others. */
static nnlib_status hold_out(const train_config *c, run_data *r) {
  int64_t samples = nnlib_tensor_get_dim(r->x, 0);
  if (c->validation >= samples) {
    fprintf(stderr,
            "nnlib train: --validation %lld: must be below the %lld "
            "training samples loaded\n",
            (long long)c->validation, (long long)samples);
    return NNLIB_ERR_INVALID_ARGUMENT;
  }
  r->all_x = r->x;
  r->all_y = r->y;
  r->x = r->y = NULL;
  int64_t kept = samples - c->validation;
  nnlib_status st;
  if ((st = sample_view(r->all_x, 0, kept, &r->x)) != NNLIB_OK ||
      (st = sample_view(r->all_y, 0, kept, &r->y)) != NNLIB_OK ||
      (st = sample_view(r->all_x, kept, c->validation, &r->vx)) != NNLIB_OK ||
      (st = sample_view(r->all_y, kept, c->validation, &r->vy)) != NNLIB_OK)
    return build_fail("holding out the validation samples", st);
  return NNLIB_OK;
}

static nnlib_status load_data(const train_config *c, run_data *r,
                              int one_hot) {
  nnlib_status st;
  if ((st = nnlib_dataset_load_split(&r->x, &r->y, c->data, NNLIB_SPLIT_TRAIN,
                                     c->limit, one_hot)) != NNLIB_OK)
    return build_fail("loading the training set", st);
  if ((st = nnlib_dataset_load_split(&r->tx, &r->ty, c->data, NNLIB_SPLIT_TEST,
                                     0, one_hot)) != NNLIB_OK)
    return build_fail("loading the test set", st);
  return c->validation > 0 ? hold_out(c, r) : NNLIB_OK;
}

nnlib_status train_build(const train_config *c, run_data *r) {
  nnlib_status st;
  int one_hot = strcmp(c->loss, "mse") == 0;
  if ((st = load_data(c, r, one_hot)) != NNLIB_OK)
    return st;
  if ((st = nnlib_model_create(&r->model)) != NNLIB_OK ||
      (st = nnlib_model_add_spec(r->model, c->spec)) != NNLIB_OK)
    return build_fail("model description", st);
  int64_t samples = nnlib_tensor_get_dim(r->x, 0);
  int64_t batch = c->batch < samples ? c->batch : samples;
  nnlib_optimizer *opt;
  if ((st = make_optimizer(c, c->epochs * ((samples + batch - 1) / batch),
                           &opt)) != NNLIB_OK)
    return build_fail("optimizer", st);
  /* images as one-channel NCHW samples (dense layers flatten them), or for
   * a recurrent first layer as sequences of their rows, [T, F] = [H, W] */
  int64_t in[3] = {1, nnlib_tensor_get_dim(r->x, 1), nnlib_tensor_get_dim(r->x, 2)};
  nnlib_layer_kind first =
      nnlib_layer_get_kind(nnlib_model_get_layer(r->model, 0));
  bool rows = first == NNLIB_LAYER_RNN || first == NNLIB_LAYER_LSTM ||
              first == NNLIB_LAYER_GRU;
  nnlib_loss loss = one_hot ? NNLIB_LOSS_MSE : NNLIB_LOSS_SOFTMAX_CE;
  /* a description that declares its input (x=input:1x28x28) keeps it */
  nnlib_node_info first_node;
  memset(&first_node, 0, sizeof first_node);
  first_node.struct_size = sizeof first_node;
  nnlib_model_get_node(r->model, 0, &first_node);
  if (first_node.rank > 0)
    st = nnlib_model_compile_graph(r->model, batch, loss, opt,
                                   (uint64_t)c->seed);
  else
    st = nnlib_model_compile(r->model, rows ? in + 1 : in, rows ? 2 : 3,
                             batch, loss, opt, (uint64_t)c->seed);
  if (st != NNLIB_OK)
    return build_fail("compiling the model", st);
  return NNLIB_OK;
}

void train_free(run_data *r) {
  nnlib_model_free(r->model);
  nnlib_tensor *owned[] = {r->x,  r->y,  r->tx,    r->ty,
                           r->vx, r->vy, r->all_x, r->all_y};
  for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
    nnlib_tensor_free(owned[i]);
  memset(r, 0, sizeof *r);
}

void train_print_model(const train_config *c, const run_data *r) {
  int64_t params = 0;
  nnlib_model_get_param_count(r->model, &params);
  printf("model %s: %lld parameters; %lld training samples, %lld test "
         "samples; %s, batch %lld\n",
         c->spec, (long long)params, (long long)nnlib_tensor_get_dim(r->x, 0),
         (long long)nnlib_tensor_get_dim(r->tx, 0), c->optimizer,
         (long long)nnlib_model_get_max_batch(r->model));
  if (r->vx != NULL)
    printf("validation: the last %lld training samples, held out\n",
           (long long)nnlib_tensor_get_dim(r->vx, 0));
}

void train_print_epoch(const epoch_line *l) {
  printf("epoch %lld/%lld train_loss=%.4f test_loss=%.4f test_accuracy=%.4f "
         "seconds=%.1f",
         (long long)l->epoch + 1, (long long)l->epochs, l->train_loss,
         l->test_loss, l->accuracy, l->seconds);
  if (l->has_valid)
    printf(" valid_loss=%.4f", l->valid_loss);
  printf("\n");
  fflush(stdout);
}

nnlib_status train_evaluate_valid(nnlib_model *m, const run_data *r,
                                  epoch_line *l) {
  l->has_valid = r->vx != NULL;
  if (!l->has_valid)
    return NNLIB_OK;
  return nnlib_model_evaluate(m, r->vx, r->vy, &l->valid_loss, NULL);
}

nnlib_status train_evaluate_epoch(nnlib_model *m, const run_data *r,
                                  epoch_line *l) {
  nnlib_status st = train_evaluate_valid(m, r, l);
  if (st == NNLIB_OK)
    st = nnlib_model_evaluate(m, r->tx, r->ty, &l->test_loss, &l->accuracy);
  return st;
}

nnlib_status train_watch_epoch(const train_config *c, nnlib_model *m,
                               const epoch_line *l, best_model *best,
                               bool *stop) {
  if (l->valid_loss < best->loss) {
    void *file = NULL;
    size_t size = 0;
    nnlib_status st = nnlib_model_save_to_buffer(&file, &size, m, 0);
    if (st != NNLIB_OK)
      return st;
    nnlib_free(best->file);
    *best = (best_model){l->valid_loss, l->epoch, file, size};
  }
  *stop = l->epoch - best->epoch >= c->patience;
  return NNLIB_OK;
}

nnlib_status train_restore_best(run_data *r, const best_model *best,
                                int64_t epochs_run, bool *restored) {
  *restored = false;
  if (best->file == NULL || best->epoch == epochs_run - 1)
    return NNLIB_OK;
  nnlib_model *m;
  nnlib_status st = nnlib_model_load_buffer(&m, best->file, best->size);
  if (st != NNLIB_OK)
    return st;
  nnlib_model_free(r->model);
  r->model = m;
  *restored = true;
  return NNLIB_OK;
}

void train_print_early_stop(const train_config *c, const best_model *best) {
  if (best->epoch < 0) /* every loss so far NaN: nothing to keep */
    printf("early stop: no finite valid_loss in %lld epochs\n",
           (long long)c->patience);
  else
    printf("early stop: no lower valid_loss in the %lld epochs after epoch "
           "%lld\n",
           (long long)c->patience, (long long)best->epoch + 1);
}

void train_print_restored(const best_model *best, float test_loss,
                          float accuracy) {
  printf("restored epoch %lld: valid_loss=%.4f test_loss=%.4f "
         "test_accuracy=%.4f\n",
         (long long)best->epoch + 1, best->loss, test_loss, accuracy);
}

void train_print_summary(const train_config *c, float accuracy,
                         int64_t epochs, double seconds) {
  printf("test_accuracy=%.4f epochs=%lld seconds=%.1f%s%s\n", accuracy,
         (long long)epochs, seconds, c->out ? " model=" : "",
         c->out ? c->out : "");
}
