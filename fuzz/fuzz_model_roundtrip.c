/* fuzz_model_roundtrip: the input bytes choose a small model (a family of
 * input and layers written as a model description, among them token ids
 * through an embedding into text layers and transformer blocks, or a graph
 * with one or two inputs, merges and node names built through the graph
 * API; loss,
 * optimizer and its options, seed, a few training steps on data from the
 * bytes). The harness saves it (a chain as file version 1, a graph as
 * version 2), loads it and saves it again: the two files must be
 * byte-identical, predictions bitwise equal, and, when the optimizer was
 * saved, one more training step on the original and on the loaded model
 * must give byte-identical files again (resume is exact). A language model
 * (ids [T] in, logits [T, V] out) must generate the same tokens after the
 * round trip. Any failure of a valid model to save or load is a finding. */
#include "fuzz_common.h"

#include <math.h>

typedef struct bytes {
  const uint8_t *p;
  size_t left;
} bytes;

/* The next byte, or 0 once the input is used up. */
static unsigned take(bytes *b) {
  if (b->left == 0)
    return 0;
  b->left--;
  return *b->p++;
}

/* A float from four bytes, kept to finite values in [-4, 4]. */
static float take_float(bytes *b) {
  uint32_t bits = 0;
  for (int i = 0; i < 4; i++)
    bits |= (uint32_t)take(b) << (8 * i);
  float v;
  memcpy(&v, &bits, sizeof v);
  if (!isfinite(v))
    return 0.5f;
  return fmodf(v, 4.0f);
}

static nnlib_optimizer *make_optimizer(bytes *b) {
  unsigned kind = take(b) % 5;
  if (kind == 0)
    return NULL;
  nnlib_optimizer_options o;
  FUZZ_CHECK(nnlib_optimizer_options_init(&o, (nnlib_optimizer_kind)kind) ==
             NNLIB_OK);
  o.learning_rate = (float)(1 + take(b)) / 1024.0f;
  unsigned flags = take(b);
  if (kind == NNLIB_OPT_SGD || kind == NNLIB_OPT_RMSPROP)
    o.momentum = (flags & 1) ? 0.9f : 0.0f;
  if (kind == NNLIB_OPT_SGD && o.momentum > 0.0f)
    o.nesterov = (flags >> 1) & 1;
  if (flags & 4)
    o.weight_decay = 0.01f;
  o.schedule = (nnlib_schedule)((flags >> 3) % 3);
  o.step_size = 1 + (flags >> 5);
  o.total_steps = 2 + take(b) % 8;
  if ((flags & 0x60) == 0x60)
    /* a file of format version 3; below total_steps for the cosine */
    o.warmup_steps = 1 + (int64_t)(flags & 3) % (o.total_steps - 1);
  if (flags & 0x80)
    o.clip_norm = 0.5f;
  nnlib_optimizer *opt = NULL;
  nnlib_status st = nnlib_optimizer_create(&opt, &o);
  fuzz_expect(st);
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  return opt;
}

/* Which item case a family's byte c picks: 0-4 features, 5-12 and 18
 * images, 13-17 and 19 sequences. */
static unsigned item_case(unsigned family, unsigned c) {
  if (family == 0)
    return c % 5;
  if (family == 1)
    return c % 9 == 8 ? 18 : 5 + c % 9;
  return c % 6 == 5 ? 19 : 13 + c % 6;
}

/* Appends one description item for the family: 0 features [F] (dense,
 * activations with gelu and gelu_tanh, dropout, batchnorm, layernorm), 1
 * images [C, H, W] (conv, pooling, batchnorm, dropout, flatten,
 * activations, transpose: every permutation of three axes, and of one,
 * which is all a flattened sample has), 2 sequences [T, F] (rnn/lstm/gru,
 * last, dense, linear, layernorm, one-head causal attention, positional,
 * transpose:1x0 and 0x1; after `last` the last three do not compile, nor
 * an image's transpose of three axes after flatten). Family 4 (token ids)
 * is text_items. A layer kind that later issues add joins its family's
 * list here. */
static void append_item(bytes *b, unsigned family, char *text, size_t cap) {
  static const char *perms3[] = {"0x1x2", "0x2x1", "1x0x2", "1x2x0",
                                 "2x0x1", "2x1x0", "0"};
  static const char *acts[] = {"identity", "step",     "sigmoid",
                               "tanh",     "relu",     "softplus",
                               "softmax",  "gelu",     "gelu_tanh"};
  char item[96];
  unsigned c = take(b), v = take(b);
  switch (item_case(family, c)) {
  case 0: snprintf(item, sizeof item, "dense:%u%s", 1 + v % 9, c & 32 ? ":nobias" : ""); break;
  case 1: snprintf(item, sizeof item, "%s", acts[v % 9]); break;
  case 2: snprintf(item, sizeof item, "leaky_relu:%g", (double)(v % 50) / 100.0); break;
  case 3: snprintf(item, sizeof item, "dropout:%g", (double)(v % 9) / 10.0); break;
  case 4: snprintf(item, sizeof item, "%s", v & 2 ? (v & 1 ? "layernorm" : "layernorm:0.001") : v & 1 ? "batchnorm:0.3" : "batchnorm"); break;
  case 10: snprintf(item, sizeof item, "batchnorm%s", v & 1 ? ":0.3" : ""); break;
  case 5: case 6:
    snprintf(item, sizeof item, "conv:%ux%ux%u%s%s%s", 1 + v % 4, 1 + (v >> 2) % 3,
             1 + (v >> 4) % 3, c & 32 ? ":s2" : "", c & 64 ? ":p1" : "",
             c & 128 ? ":nobias" : "");
    break;
  case 7: snprintf(item, sizeof item, "%s:%u%s", v % 3 == 0 ? "maxpool" : v % 3 == 1 ? "minpool" : "avgpool", 1 + (v >> 2) % 2, c & 32 ? ":s1" : ""); break;
  case 8: snprintf(item, sizeof item, "%s", c & 32 ? "global_avgpool" : "flatten"); break;
  case 9: snprintf(item, sizeof item, "%s", acts[v % 9]); break;
  case 11: case 12: snprintf(item, sizeof item, "dropout:0.5"); break;
  /* `last` may only follow a recurrent item */
  case 13: snprintf(item, sizeof item, "rnn:%u%s%s%s", 1 + v % 5, c & 32 ? ":relu" : "", c & 64 ? ":nobias" : "", c & 128 ? ",last" : ""); break;
  case 14: snprintf(item, sizeof item, "lstm:%u%s%s", 1 + v % 5, c & 32 ? ":nobias" : "", c & 128 ? ",last" : ""); break;
  case 15: snprintf(item, sizeof item, "gru:%u%s%s", 1 + v % 5, c & 32 ? ":nobias" : "", c & 128 ? ",last" : ""); break;
  /* [T, F] sequences also take the last-axis text layers */
  case 16: snprintf(item, sizeof item, "%s", v % 4 == 0 ? "linear:3" : v % 4 == 1 ? "layernorm" : v % 4 == 2 ? "attention:1:causal" : "positional"); break;
  case 18: snprintf(item, sizeof item, "transpose:%s", perms3[v % 7]); break;
  case 19: snprintf(item, sizeof item, "transpose:%s", v & 1 ? "1x0" : "0x1"); break;
  default: snprintf(item, sizeof item, "dense:%u", 1 + v % 5); break;
  }
  size_t used = strlen(text);
  snprintf(text + used, cap - used, "%s%s", used ? "," : "", item);
}

/* ------------------------------------------------------- text family */

/* A divisor of dim the byte picks: a head count attention takes. */
static unsigned heads_of(unsigned dim, unsigned v) {
  unsigned h = 1 + v % dim;
  while (dim % h != 0)
    h--;
  return h;
}

/* Family 4: token ids [T] into embedding:VOCAB:D, then up to five items on
 * [T, D] vectors (positional, layernorm, linear, activations with gelu and
 * gelu_tanh, attention with its options, transformer blocks, dropout, a
 * recurrent layer), keeping track of the width D so that every attention
 * and transformer item fits; then mostly linear:VOCAB (a language model;
 * sometimes VOCAB + 1, whose extra token the embedding refuses when
 * generated). */
static void text_items(bytes *b, char *text, size_t cap) {
  unsigned vocab = 2 + take(b) % 9, dim = 1 + take(b) % 6;
  size_t used = (size_t)snprintf(text, cap, "embedding:%u:%u", vocab, dim);
  unsigned items = take(b) % 6;
  for (unsigned i = 0; i < items && used < cap; i++) {
    unsigned c = take(b), v = take(b), h = heads_of(dim, v >> 3);
    char item[96];
    switch (c % 10) {
    case 0: snprintf(item, sizeof item, v & 1 ? "positional:%u" : "positional", 6 + v % 3); break;
    case 1: snprintf(item, sizeof item, "%s", v & 1 ? "layernorm" : "layernorm:0.01"); break;
    case 2: dim = 1 + v % 8; snprintf(item, sizeof item, "linear:%u%s", dim, c & 16 ? ":nobias" : ""); break;
    case 3: snprintf(item, sizeof item, "%s", v % 3 == 0 ? "gelu" : v % 3 == 1 ? "gelu_tanh" : "relu"); break;
    case 4: case 5:
      snprintf(item, sizeof item, "attention:%u%s%s%s", h, c & 16 ? ":causal" : "",
               c & 32 ? ":dropout0.25" : "", c & 64 ? ":nobias" : "");
      break;
    case 6: case 7:
      snprintf(item, sizeof item, "transformer:%u:%u%s%s%s", dim, h,
               c & 16 ? ":mlp3" : "", c & 32 ? ":causal" : "",
               c & 64 ? ":dropout0.1" : "");
      break;
    case 8: snprintf(item, sizeof item, "dropout:%g", (double)(v % 5) / 10.0); break;
    default:
      dim = 1 + v % 5;
      snprintf(item, sizeof item, "%s:%u", c & 16 ? "lstm" : c & 32 ? "gru" : "rnn", dim);
      break;
    }
    used += (size_t)snprintf(text + used, cap - used, ",%s", item);
  }
  unsigned head = take(b);
  if (head % 4 != 0 && used < cap)
    snprintf(text + used, cap - used, ",linear:%u", vocab + (head % 8 == 1));
}

/* ------------------------------------------------------ graph family */

/* Family 3: a graph made through the graph API. One or two inputs
 * (features [F]; the second may be an image [C, H, W] that a convolution,
 * relu and flatten turn into features), then up to six steps, each on
 * feature nodes the bytes choose: an activation, dropout or batchnorm on
 * one node, a dense layer, add or multiply of a node and a dense
 * projection of another to its width, concat of two. The nodes nobody
 * reads are joined by a concat, so that every node reaches the output; a
 * dense layer ends it. Some nodes get names. */
#define GRAPH_MAX_NODES 40

typedef struct graph {
  nnlib_model *m;
  nnlib_node node[GRAPH_MAX_NODES];
  int64_t width[GRAPH_MAX_NODES]; /* features per sample */
  bool flat[GRAPH_MAX_NODES];     /* [F]: what steps may read */
  bool read[GRAPH_MAX_NODES];
  size_t count;
  nnlib_status st; /* the first failure; then nothing more is made */
} graph;

/* A failure of the graph API on what the harness made is a finding, but
 * for memory. */
static void graph_status(graph *g, nnlib_status st) {
  fuzz_expect(st);
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  g->st = st;
}

/* Applies l (made with status made) to nodes in[0..k); the new node has
 * `width` features. */
static void graph_apply(graph *g, nnlib_status made, nnlib_layer *l,
                        const size_t *in, size_t k, int64_t width) {
  if (g->st != NNLIB_OK || made != NNLIB_OK) {
    nnlib_layer_free(l);
    if (g->st == NNLIB_OK)
      graph_status(g, made);
    return;
  }
  nnlib_node inputs[GRAPH_MAX_NODES], out = 0;
  for (size_t i = 0; i < k; i++) {
    inputs[i] = g->node[in[i]];
    g->read[in[i]] = true;
  }
  graph_status(g, nnlib_model_apply(g->m, l, inputs, k, &out));
  if (g->st != NNLIB_OK)
    return;
  g->node[g->count] = out;
  g->width[g->count] = width;
  g->flat[g->count] = true;
  g->read[g->count] = false;
  g->count++;
}

/* The flat node the byte picks. */
static size_t graph_pick(const graph *g, unsigned byte) {
  size_t flat = 0;
  for (size_t v = 0; v < g->count; v++)
    flat += g->flat[v];
  size_t k = byte % flat;
  for (size_t v = 0;; v++)
    if (g->flat[v] && k-- == 0)
      return v;
}

static void graph_dense(graph *g, size_t from, int64_t out) {
  nnlib_layer *l = NULL;
  nnlib_status st = nnlib_dense_create(&l, 0, out, 1);
  graph_apply(g, st, l, &from, 1, out);
}

/* an activation, dropout or batchnorm: the width stays */
static void graph_unary(graph *g, size_t from, unsigned c, unsigned v) {
  nnlib_layer *l = NULL;
  nnlib_status st;
  if (c % 3 == 0)
    st = nnlib_activation_create(&l, (nnlib_activation)(v % 10),
                                 (float)(v % 50) / 100.0f);
  else if (c % 3 == 1)
    st = nnlib_dropout_create(&l, (float)(v % 9) / 10.0f);
  else
    st = nnlib_batchnorm_create(&l, 0.1f, 1e-5f);
  graph_apply(g, st, l, &from, 1, g->width[from]);
}

/* concat(a, b), or add / multiply of a and b projected to a's width */
static void graph_merge(graph *g, size_t a, size_t b, unsigned c) {
  nnlib_layer *l = NULL;
  nnlib_status st;
  size_t in[2] = {a, b};
  if (c % 3 == 0) {
    st = nnlib_concat_create(&l, c & 8 ? -1 : 0);
    graph_apply(g, st, l, in, 2, g->width[a] + g->width[b]);
    return;
  }
  graph_dense(g, b, g->width[a]);
  in[1] = g->count - 1;
  st = c % 3 == 1 ? nnlib_add_create(&l) : nnlib_multiply_create(&l);
  graph_apply(g, st, l, in, 2, g->width[a]);
}

static void graph_input(graph *g, const int64_t *shape, size_t rank) {
  if (g->st != NNLIB_OK)
    return;
  nnlib_node node = 0;
  graph_status(g, nnlib_model_input(g->m, shape, rank, &node));
  if (g->st != NNLIB_OK)
    return;
  int64_t width = 1;
  for (size_t i = 0; i < rank; i++)
    width *= shape[i];
  g->node[g->count] = node;
  g->width[g->count] = width;
  g->flat[g->count] = rank == 1;
  g->read[g->count] = false;
  g->count++;
}

/* The second input as an image through conv, relu and flatten. */
static void graph_image_input(graph *g, bytes *b) {
  int64_t image[3] = {1 + take(b) % 2, 3 + take(b) % 3, 3 + take(b) % 3};
  int64_t channels = 1 + take(b) % 3;
  graph_input(g, image, 3);
  nnlib_conv2d_options co;
  FUZZ_CHECK(nnlib_conv2d_options_init(&co) == NNLIB_OK);
  co.padding_h = co.padding_w = 1;
  nnlib_layer *l = NULL;
  size_t from = g->count - 1;
  nnlib_status st = nnlib_conv2d_create(&l, channels, 3, 3, &co);
  graph_apply(g, st, l, &from, 1, channels * image[1] * image[2]);
  if (g->st != NNLIB_OK)
    return;
  g->flat[g->count - 1] = false; /* [channels, H, W] */
  from = g->count - 1;
  graph_unary(g, from, 0, NNLIB_ACT_RELU);
  if (g->st != NNLIB_OK)
    return;
  g->flat[g->count - 1] = false;
  from = g->count - 1;
  st = nnlib_flatten_create(&l);
  graph_apply(g, st, l, &from, 1, g->width[from]);
}

/* The unread nodes (at most 1 + 2 per step + 4) joined, then a dense. */
static void graph_finish(graph *g, bytes *b) {
  size_t unread[GRAPH_MAX_NODES], k = 0;
  for (size_t v = 0; v < g->count; v++)
    if (!g->read[v])
      unread[k++] = v;
  int64_t width = 0;
  for (size_t i = 0; i < k; i++)
    width += g->width[unread[i]];
  if (k >= 2) {
    nnlib_layer *l = NULL;
    nnlib_status st = nnlib_concat_create(&l, 0);
    graph_apply(g, st, l, unread, k, width);
  }
  if (g->st == NNLIB_OK)
    graph_dense(g, g->count - 1, 1 + take(b) % 5);
}

/* Names for some nodes: n<index>. */
static void graph_names(graph *g, bytes *b) {
  unsigned mask = take(b);
  for (size_t v = 0; g->st == NNLIB_OK && v < g->count && v < 8; v++)
    if (mask & (1u << v)) {
      char name[16];
      snprintf(name, sizeof name, "n%zu", v);
      graph_status(g, nnlib_model_set_node_name(g->m, g->node[v], name));
    }
}

static nnlib_status make_graph(bytes *b, nnlib_model *m) {
  graph g;
  memset(&g, 0, sizeof g);
  g.m = m;
  int64_t features = 1 + take(b) % 8;
  graph_input(&g, &features, 1);
  unsigned second = take(b) % 3;
  if (second == 1) {
    features = 1 + take(b) % 6;
    graph_input(&g, &features, 1);
  } else if (second == 2) {
    graph_image_input(&g, b);
  }
  unsigned steps = take(b) % 7;
  for (unsigned i = 0; i < steps && g.st == NNLIB_OK; i++) {
    unsigned c = take(b), v = take(b);
    size_t from = graph_pick(&g, take(b)), other = graph_pick(&g, take(b));
    if (c % 4 == 0)
      graph_unary(&g, from, c >> 2, v);
    else if (c % 4 == 1)
      graph_dense(&g, from, 1 + v % 9);
    else
      graph_merge(&g, from, other, c >> 2);
  }
  graph_finish(&g, b);
  graph_names(&g, b);
  return g.st;
}

/* ---------------------------------------------------------------- models */

/* Builds and compiles a model from the bytes; NULL if the choices do not
 * make a model (shapes that do not chain, descriptions a family does not
 * take) or an allocation fails. Every description the harness writes, and
 * every graph it makes, must be accepted, though. */
static nnlib_model *make_model(bytes *b, int64_t *max_batch) {
  unsigned family = take(b) % 5;
  int64_t input[3] = {0, 0, 0};
  size_t rank = 0; /* family 3 declares its inputs */
  if (family == 0) {
    rank = 1;
    input[0] = 1 + take(b) % 12;
  } else if (family == 1) {
    rank = 3;
    input[0] = 1 + take(b) % 3;
    input[1] = 3 + take(b) % 6;
    input[2] = 3 + take(b) % 6;
  } else if (family == 2) {
    rank = 2;
    input[0] = 1 + take(b) % 5;
    input[1] = 1 + take(b) % 6;
  } else if (family == 4) {
    rank = 1;
    input[0] = 1 + take(b) % 6; /* T token ids */
  }
  char text[1024] = "";
  unsigned items = family >= 3 ? 0 : 1 + take(b) % 6;
  for (unsigned i = 0; i < items; i++)
    append_item(b, family, text, sizeof text);
  if (family == 4)
    text_items(b, text, sizeof text);
  nnlib_model *m = NULL;
  if (nnlib_model_create(&m) != NNLIB_OK)
    return NULL;
  nnlib_status st;
  if (family == 3) {
    st = make_graph(b, m);
  } else {
    st = nnlib_model_add_spec(m, text);
    fuzz_expect(st);
    if (st != NNLIB_OK && st != NNLIB_ERR_OUT_OF_MEMORY)
      fprintf(stderr, "\"%s\": %s\n", text, nnlib_last_error_message());
    FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  }
  nnlib_optimizer *opt = make_optimizer(b);
  nnlib_loss loss = (nnlib_loss)(1 + take(b) % 3);
  if (opt == NULL && (take(b) & 1))
    loss = NNLIB_LOSS_NONE;
  *max_batch = 1 + take(b) % 4;
  uint64_t seed = take(b);
  seed |= (uint64_t)take(b) << 8;
  if (st == NNLIB_OK && family == 3) {
    st = nnlib_model_compile_graph(m, *max_batch, loss, opt, seed);
    /* its shapes chain by construction */
    FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  } else if (st == NNLIB_OK) {
    st = nnlib_model_compile(m, input, rank, *max_batch, loss, opt, seed);
    /* text_items keeps every width consistent */
    if (family == 4 && st != NNLIB_OK && st != NNLIB_ERR_OUT_OF_MEMORY)
      fprintf(stderr, "\"%s\": %s\n", text, nnlib_last_error_message());
    FUZZ_CHECK(family != 4 || st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  } else
    nnlib_optimizer_free(opt);
  fuzz_expect(st);
  if (st != NNLIB_OK) {
    nnlib_model_free(m);
    return NULL;
  }
  return m;
}

/* One tensor per input [n, input k...] (token ids in range for an input an
 * embedding reads) and one-hot targets [n, output...] from the bytes, or
 * for softmax_ce over [T, V] logits, sometimes T int32 class indices per
 * sample; *xs is a malloc'd array of *count. */
static bool make_batch(nnlib_model *m, bytes *b, int64_t n, nnlib_tensor ***xs,
                       size_t *count, nnlib_tensor **t) {
  int64_t ts[NNLIB_MAX_RANK + 1];
  size_t rank_out = 0;
  *t = NULL;
  if (fuzz_make_inputs(m, n, xs, count) != NNLIB_OK)
    return false;
  FUZZ_CHECK(nnlib_model_get_output_shape(m, ts + 1, NNLIB_MAX_RANK,
                                          &rank_out) == NNLIB_OK);
  ts[0] = n;
  bool indices = nnlib_model_get_loss(m) == NNLIB_LOSS_SOFTMAX_CE &&
                 rank_out == 2 && (take(b) & 1);
  nnlib_status st = indices ? nnlib_tensor_create_int32(t, ts, 2)
                            : nnlib_tensor_create(t, ts, rank_out + 1);
  if (st != NNLIB_OK) {
    fuzz_free_inputs(*xs, *count);
    *xs = NULL;
    return false;
  }
  for (size_t k = 0; k < *count; k++) {
    int64_t vocab = fuzz_input_vocab(m, k);
    int32_t *ids = nnlib_tensor_get_data_int32((*xs)[k]);
    float *xd = nnlib_tensor_get_data((*xs)[k]);
    for (int64_t i = 0; i < nnlib_tensor_get_size((*xs)[k]); i++)
      if (vocab > 0)
        ids[i] = (int32_t)(take(b) % vocab);
      else
        xd[i] = take_float(b);
  }
  if (indices) { /* [n, T]: one class of V per position */
    int32_t *ids = nnlib_tensor_get_data_int32(*t);
    for (int64_t i = 0; i < nnlib_tensor_get_size(*t); i++)
      ids[i] = (int32_t)(take(b) % ts[2]);
    return true;
  }
  float *td = nnlib_tensor_get_data(*t);
  int64_t per_sample = nnlib_tensor_get_size(*t) / n;
  for (int64_t r = 0; r < n; r++)
    td[r * per_sample + (int64_t)take(b) % per_sample] = 1.0f;
  return true;
}

static nnlib_status step(nnlib_model *m, nnlib_tensor **xs, size_t count,
                         nnlib_tensor *t) {
  return nnlib_model_step_inputs(m, (const nnlib_tensor *const *)xs, count, t,
                                 NULL);
}

static void *save(nnlib_model *m, unsigned flags, size_t *size) {
  void *data = NULL;
  nnlib_status st = nnlib_model_save_to_buffer(&data, size, m, flags);
  fuzz_expect(st);
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  return data;
}

/* The loaded graph is the saved one: nodes, their inputs and names. */
static void check_same_graph(nnlib_model *a, nnlib_model *b) {
  FUZZ_CHECK(nnlib_model_get_input_count(a) == nnlib_model_get_input_count(b));
  FUZZ_CHECK(nnlib_model_get_node_count(a) == nnlib_model_get_node_count(b));
  for (size_t v = 0; v < nnlib_model_get_node_count(a); v++) {
    nnlib_node_info x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    x.struct_size = y.struct_size = sizeof x;
    FUZZ_CHECK(nnlib_model_get_node(a, v, &x) == NNLIB_OK &&
               nnlib_model_get_node(b, v, &y) == NNLIB_OK);
    FUZZ_CHECK(x.input_count == y.input_count &&
               x.layer_index == y.layer_index &&
               x.input_index == y.input_index && x.is_output == y.is_output);
    for (size_t k = 0; k < x.input_count; k++) /* node indices */
      FUZZ_CHECK((uint32_t)x.inputs[k] == (uint32_t)y.inputs[k]);
    FUZZ_CHECK((x.name == NULL) == (y.name == NULL));
    FUZZ_CHECK(x.name == NULL || strcmp(x.name, y.name) == 0);
  }
}

/* A language model generates the same tokens after the round trip, with
 * or without the cache; a model that generates nothing fails the same way
 * after it. */
static void check_same_generation(nnlib_model *a, nnlib_model *b,
                                  unsigned choice) {
  int32_t ta[FUZZ_GENERATE_MAX], tb[FUZZ_GENERATE_MAX];
  int64_t count = 1 + choice % FUZZ_GENERATE_MAX;
  int cache = (int)((choice >> 4) & 1);
  nnlib_status sa = fuzz_generate(a, cache, choice, ta, count);
  nnlib_status sb = fuzz_generate(b, cache, choice, tb, count);
  if (sa == NNLIB_ERR_OUT_OF_MEMORY || sb == NNLIB_ERR_OUT_OF_MEMORY)
    return;
  FUZZ_CHECK(sa == sb);
  if (sa == NNLIB_OK)
    FUZZ_CHECK(memcmp(ta, tb, (size_t)count * sizeof *ta) == 0);
}

/* One step each on a and b with the same batch, then equal files. */
static void check_resume(nnlib_model *a, nnlib_model *b, nnlib_tensor **xs,
                         size_t count, nnlib_tensor *t) {
  nnlib_status sa = step(a, xs, count, t);
  nnlib_status sb = step(b, xs, count, t);
  fuzz_expect(sa);
  FUZZ_CHECK(sa == sb);
  size_t na = 0, nb = 0;
  void *fa = save(a, NNLIB_SAVE_OPTIMIZER, &na);
  void *fb = save(b, NNLIB_SAVE_OPTIMIZER, &nb);
  if (fa != NULL && fb != NULL)
    FUZZ_CHECK(na == nb && memcmp(fa, fb, na) == 0);
  nnlib_free(fa);
  nnlib_free(fb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_begin();
  bytes b = {data, size};
  int64_t max_batch = 1;
  nnlib_model *m = make_model(&b, &max_batch);
  if (m == NULL) {
    fuzz_end();
    return 0;
  }
  unsigned flags = take(&b) & 1 ? NNLIB_SAVE_OPTIMIZER : 0;
  unsigned steps = take(&b) % 4;
  nnlib_tensor **xs = NULL, *t = NULL;
  size_t count = 0;
  bool have_batch = make_batch(m, &b, max_batch, &xs, &count, &t);
  bool trainable = nnlib_model_get_optimizer(m) != NULL;
  for (unsigned s = 0; have_batch && trainable && s < steps; s++) {
    nnlib_status st = step(m, xs, count, t);
    fuzz_expect(st);
    FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_NUMERICAL);
  }

  size_t size1 = 0, size2 = 0;
  void *file1 = save(m, flags, &size1);
  /* a chain is written as version 1, a graph with two inputs as 2, and
   * a file that keeps an optimizer that warms up as 3 */
  if (file1 != NULL) {
    const nnlib_optimizer *opt = nnlib_model_get_optimizer(m);
    nnlib_optimizer_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    FUZZ_CHECK(size1 > 12);
    FUZZ_CHECK(opt == NULL || nnlib_optimizer_get_options(opt, &o) == NNLIB_OK);
    unsigned version = ((const unsigned char *)file1)[8];
    if (opt != NULL && o.warmup_steps > 0 && (flags & NNLIB_SAVE_OPTIMIZER))
      FUZZ_CHECK(version == 3);
    else if (nnlib_model_get_input_count(m) > 1)
      FUZZ_CHECK(version == 2);
  }
  nnlib_model *loaded = NULL;
  if (file1 != NULL) {
    nnlib_status st = nnlib_model_load_buffer(&loaded, file1, size1);
    fuzz_expect(st);
    FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  }
  if (loaded != NULL) {
    void *file2 = save(loaded, flags, &size2);
    if (file2 != NULL)
      FUZZ_CHECK(size1 == size2 && memcmp(file1, file2, size1) == 0);
    nnlib_free(file2);
    nnlib_tensor *y1 = NULL, *y2 = NULL;
    if (fuzz_predict(m, max_batch, &y1) == NNLIB_OK &&
        fuzz_predict(loaded, max_batch, &y2) == NNLIB_OK && y1 != NULL &&
        y2 != NULL)
      FUZZ_CHECK(fuzz_same_bits(y1, y2));
    nnlib_tensor_free(y1);
    nnlib_tensor_free(y2);
    check_same_generation(m, loaded, take(&b));
    check_same_graph(m, loaded);
    FUZZ_CHECK(nnlib_model_get_max_batch(loaded) == max_batch);
    FUZZ_CHECK(nnlib_model_get_loss(loaded) == nnlib_model_get_loss(m));
    if (have_batch && trainable && flags == NNLIB_SAVE_OPTIMIZER)
      check_resume(m, loaded, xs, count, t);
  }
  nnlib_model_free(loaded);
  nnlib_free(file1);
  fuzz_free_inputs(xs, count);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
  fuzz_end();
  return 0;
}
