/* serialize_write.c - encodes a compiled model in the format of
 * docs/FILE_FORMAT.md: a chain as version 1 (what nnlib 1.0 to 1.2 read),
 * any other graph as version 2. Every function runs twice: once with a
 * counting writer to size the file, once to fill the buffer of exactly
 * that size. */
#include "serialize_format.h"

#include <string.h>

/* nnlib__model_is_chain counts a named node out: version 1 has no place
 * for names. */
uint32_t nnlib__file_version_for(const nnlib_model *m, bool with_optimizer) {
  if (with_optimizer && m->optimizer != NULL &&
      m->optimizer->o.warmup_steps > 0)
    return NNLIB__FILE_VERSION_WARMUP;
  return nnlib__model_is_chain(m) ? NNLIB__FILE_VERSION_CHAIN
                                  : NNLIB__FILE_VERSION_GRAPH;
}

/* u32 rank, i64 dims[rank], f32 data[product] */
static void put_tensor(nnlib__writer *w, const nnlib__param *t) {
  nnlib__put_u32(w, (uint32_t)t->shape.rank);
  for (size_t i = 0; i < t->shape.rank; i++)
    nnlib__put_i64(w, t->shape.dims[i]);
  if (w->data == NULL) {
    w->size += (size_t)t->size * 4;
    return;
  }
  for (int64_t i = 0; i < t->size; i++)
    nnlib__put_f32(w, t->value.data[i]);
}

static void put_floats(nnlib__writer *w, const float *v, int64_t n) {
  if (w->data == NULL) {
    w->size += (size_t)n * 4;
    return;
  }
  for (int64_t i = 0; i < n; i++)
    nnlib__put_f32(w, v[i]);
}

static void put_shape(nnlib__writer *w, const nnlib__shape *s) {
  nnlib__put_u32(w, (uint32_t)s->rank);
  for (size_t i = 0; i < s->rank; i++)
    nnlib__put_i64(w, s->dims[i]);
}

/* what follows the input shape in version 1, and the loss in version 2 */
static void put_head_rest(const nnlib_model *m, nnlib__writer *w) {
  nnlib__put_i64(w, m->max_batch);
  nnlib__put_u64(w, m->seed);
  /* the generator's position, so fit's shuffles continue where they were */
  for (size_t i = 0; i < 4; i++)
    nnlib__put_u64(w, m->rng.s[i]);
  nnlib__put_u32(w, (uint32_t)m->layer_count);
  nnlib__put_i64(w, m->param_size);
}

/* version 1: the one input's shape between the loss and the batch */
static void put_head(const nnlib_model *m, nnlib__writer *w) {
  nnlib__put_u32(w, NNLIB_VERSION_NUMBER);
  nnlib__put_u32(w, (uint32_t)m->loss);
  put_shape(w, &m->input_shape);
  put_head_rest(m, w);
}

/* version 2: the input shapes are in GRPH */
static void put_head_graph(const nnlib_model *m, nnlib__writer *w) {
  nnlib__put_u32(w, NNLIB_VERSION_NUMBER);
  nnlib__put_u32(w, (uint32_t)m->loss);
  put_head_rest(m, w);
}

/* per node: u32 kind; a layer's u32 layer index, u32 input count, u32
 * input node indices; u32 name length (0: unnamed), the name's bytes */
static void put_node(const nnlib__node *node, nnlib__writer *w) {
  if (node->layer == NULL) {
    nnlib__put_u32(w, NNLIB__NODE_INPUT);
  } else {
    nnlib__put_u32(w, NNLIB__NODE_LAYER);
    nnlib__put_u32(w, (uint32_t)node->layer_index);
    nnlib__put_u32(w, (uint32_t)node->input_count);
    for (size_t i = 0; i < node->input_count; i++)
      nnlib__put_u32(w, (uint32_t)node->inputs[i]);
  }
  size_t length = node->name != NULL ? strlen(node->name) : 0;
  nnlib__put_u32(w, (uint32_t)length);
  nnlib__put_bytes(w, node->name, length);
}

/* u32 input count, each input's shape, u32 node count, the nodes in node
 * order, u32 output node */
static void put_graph(const nnlib_model *m, nnlib__writer *w) {
  nnlib__put_u32(w, (uint32_t)m->input_count);
  for (size_t k = 0; k < m->input_count; k++)
    put_shape(w, &m->nodes[m->inputs[k]].shape);
  nnlib__put_u32(w, (uint32_t)m->node_count);
  for (size_t v = 0; v < m->node_count; v++)
    put_node(&m->nodes[v], w);
  nnlib__put_u32(w, (uint32_t)m->output);
}

/* per layer: u32 kind, u32 config length, config */
static void put_arch(const nnlib_model *m, nnlib__writer *w) {
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    const nnlib__layer_codec *codec = nnlib__codec_for_kind(l->ops->kind);
    nnlib__writer count = {0};
    codec->write_config(l, &count);
    nnlib__put_u32(w, (uint32_t)l->ops->kind);
    nnlib__put_u32(w, (uint32_t)count.size);
    codec->write_config(l, w);
  }
}

/* per layer: u32 n, n tensors (parameters), u32 b, b tensors (buffers) */
static void put_parm(const nnlib_model *m, nnlib__writer *w) {
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    nnlib__put_u32(w, (uint32_t)l->param_count);
    for (size_t p = 0; p < l->param_count; p++)
      put_tensor(w, &l->params[p]);
    nnlib__put_u32(w, (uint32_t)l->buffer_count);
    for (size_t b = 0; b < l->buffer_count; b++)
      put_tensor(w, &l->buffers[b]);
  }
}

/* options field by field, step count, state size, state mask, states */
static void put_optm(const nnlib_model *m, nnlib__writer *w) {
  const nnlib_optimizer *opt = m->optimizer;
  const nnlib_optimizer_options *o = &opt->o;
  nnlib__put_u32(w, (uint32_t)o->kind);
  nnlib__put_f32(w, o->learning_rate);
  nnlib__put_f32(w, o->momentum);
  nnlib__put_u32(w, (uint32_t)o->nesterov);
  nnlib__put_f32(w, o->weight_decay);
  nnlib__put_f32(w, o->beta1);
  nnlib__put_f32(w, o->beta2);
  nnlib__put_f32(w, o->alpha);
  nnlib__put_f32(w, o->epsilon);
  nnlib__put_u32(w, (uint32_t)o->schedule);
  nnlib__put_i64(w, o->step_size);
  nnlib__put_f32(w, o->gamma);
  nnlib__put_i64(w, o->total_steps);
  nnlib__put_f32(w, o->min_learning_rate);
  nnlib__put_f32(w, o->clip_norm);
  if (nnlib__file_version_for(m, true) >= NNLIB__FILE_VERSION_WARMUP)
    nnlib__put_i64(w, o->warmup_steps);
  nnlib__put_i64(w, opt->t);
  nnlib__put_i64(w, opt->size);
  uint32_t mask = (opt->state1 != NULL ? NNLIB__STATE1 : 0u) |
                  (opt->state2 != NULL ? NNLIB__STATE2 : 0u);
  nnlib__put_u32(w, mask);
  if (opt->state1 != NULL)
    put_floats(w, opt->state1, opt->size);
  if (opt->state2 != NULL)
    put_floats(w, opt->state2, opt->size);
}

typedef void (*payload_fn)(const nnlib_model *m, nnlib__writer *w);

/* tag, u64 payload length, payload, u32 crc32 of all three */
static void put_section(const nnlib_model *m, const char *tag, payload_fn fn,
                        nnlib__writer *w) {
  nnlib__writer count = {0};
  fn(m, &count);
  size_t start = w->size;
  nnlib__put_tag(w, tag);
  nnlib__put_u64(w, count.size);
  fn(m, w);
  uint32_t crc = 0;
  if (w->data != NULL && w->size <= w->capacity)
    crc = nnlib__crc32(w->data + start, w->size - start);
  nnlib__put_u32(w, crc);
}

void nnlib__model_encode(const nnlib_model *m, bool with_optimizer,
                         uint64_t total, nnlib__writer *w) {
  nnlib__put_tag(w, NNLIB__FILE_MAGIC);
  nnlib__put_tag(w, &NNLIB__FILE_MAGIC[4]); /* clang: -Wstring-plus-int */
  uint32_t version = nnlib__file_version_for(m, with_optimizer);
  bool graph = version >= NNLIB__FILE_VERSION_GRAPH;
  nnlib__put_u32(w, version);
  nnlib__put_u32(w, (with_optimizer ? 4u : 3u) + (graph ? 1u : 0u));
  nnlib__put_u64(w, total);
  if (graph) {
    put_section(m, NNLIB__TAG_HEAD, put_head_graph, w);
    put_section(m, NNLIB__TAG_GRPH, put_graph, w);
  } else {
    put_section(m, NNLIB__TAG_HEAD, put_head, w);
  }
  put_section(m, NNLIB__TAG_ARCH, put_arch, w);
  put_section(m, NNLIB__TAG_PARM, put_parm, w);
  if (with_optimizer)
    put_section(m, NNLIB__TAG_OPTM, put_optm, w);
  uint32_t crc = 0;
  if (w->data != NULL && w->size <= w->capacity)
    crc = nnlib__crc32(w->data, w->size);
  nnlib__put_u32(w, crc);
}
