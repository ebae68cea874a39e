/* export.c - nnlib_model_save_onnx[_to_buffer]: a compiled model as an ONNX
 * ModelProto (IR 8, opset 17 of the default domain), written with our own
 * protobuf writer (pb_write.c). The graph's inputs are the model's, with a
 * symbolic batch axis "N" before nnlib's per-sample dims (token ids as
 * int32), its output the model's output, and each layer node becomes the
 * ONNX nodes of export_layers.c / export_sequence.c, its weights float32
 * initializers (raw little-endian bytes). Layer settings are read from the
 * bytes each kind's codec writes into model files (docs/FILE_FORMAT.md),
 * so the exporter needs no access to the layers' private structs. */
#include "onnx/export.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

const char *ox_sub(const ox_graph *g, char *buf, const char *what) {
  snprintf(buf, OX_NAME, "%s/%s", g->out, what);
  return buf;
}

void ox_begin_outputs(ox_graph *g, const char *op, const char *const *in,
                      size_t in_count, const char *const *outs,
                      size_t out_count) {
  pb_writer *w = g->w;
  pb_begin(w, ONNX_GRAPH_NODE);
  for (size_t i = 0; i < in_count; i++)
    pb_string_field(w, ONNX_NODE_INPUT, in[i] != NULL ? in[i] : "");
  for (size_t i = 0; i < out_count; i++)
    pb_string_field(w, ONNX_NODE_OUTPUT, outs[i] != NULL ? outs[i] : "");
  const char *name = outs[0];
  for (size_t i = 0; i < out_count && (name == NULL || name[0] == '\0'); i++)
    name = outs[i];
  pb_string_field(w, ONNX_NODE_NAME, name != NULL ? name : "");
  pb_string_field(w, ONNX_NODE_OP_TYPE, op);
}

void ox_begin(ox_graph *g, const char *op, const char *const *in,
              size_t in_count, const char *out) {
  ox_begin_outputs(g, op, in, in_count, &out, 1);
}

void ox_end(ox_graph *g) { pb_end(g->w); }

static void attr_head(ox_graph *g, const char *name, uint64_t type) {
  pb_begin(g->w, ONNX_NODE_ATTRIBUTE);
  pb_string_field(g->w, ONNX_ATTR_NAME, name);
  pb_varint_field(g->w, ONNX_ATTR_TYPE, type);
}

void ox_attr_int(ox_graph *g, const char *name, int64_t value) {
  attr_head(g, name, ONNX_ATTR_INT);
  pb_int64_field(g->w, ONNX_ATTR_I, value);
  pb_end(g->w);
}

void ox_attr_float(ox_graph *g, const char *name, float value) {
  attr_head(g, name, ONNX_ATTR_FLOAT);
  pb_float_field(g->w, ONNX_ATTR_F, value);
  pb_end(g->w);
}

/* Unpacked repeated int64 (every protobuf parser reads both forms). */
void ox_attr_ints(ox_graph *g, const char *name, const int64_t *values,
                  size_t count) {
  attr_head(g, name, ONNX_ATTR_INTS_TYPE);
  for (size_t i = 0; i < count; i++)
    pb_int64_field(g->w, ONNX_ATTR_INTS, values[i]);
  pb_end(g->w);
}

void ox_attr_string(ox_graph *g, const char *name, const char *value) {
  attr_head(g, name, ONNX_ATTR_STRING);
  pb_string_field(g->w, ONNX_ATTR_S, value);
  pb_end(g->w);
}

/* A STRINGS attribute of one string. */
void ox_attr_strings1(ox_graph *g, const char *name, const char *value) {
  attr_head(g, name, ONNX_ATTR_STRINGS_TYPE);
  pb_string_field(g->w, ONNX_ATTR_STRINGS, value);
  pb_end(g->w);
}

void ox_unary(ox_graph *g, const char *op, const char *in, const char *out) {
  ox_begin(g, op, &in, 1, out);
  ox_end(g);
}

void ox_binary(ox_graph *g, const char *op, const char *a, const char *b,
               const char *out) {
  const char *in[2] = {a, b};
  ox_begin(g, op, in, 2, out);
  ox_end(g);
}

/* TensorProto head: dims, data type, name; the caller adds raw_data. */
static void tensor_head(ox_graph *g, const char *name, const int64_t *dims,
                        size_t rank, uint64_t type) {
  pb_begin(g->w, ONNX_GRAPH_INITIALIZER);
  for (size_t i = 0; i < rank; i++)
    pb_int64_field(g->w, ONNX_TENSOR_DIMS, dims[i]);
  pb_varint_field(g->w, ONNX_TENSOR_DATA_TYPE, type);
  pb_string_field(g->w, ONNX_TENSOR_NAME, name);
}

/* Dims come from planned shapes, whose products fit int64 and memory. */
static size_t numel(const int64_t *dims, size_t rank) {
  size_t n = 1;
  for (size_t i = 0; i < rank; i++)
    n *= (size_t)dims[i];
  return n;
}

unsigned char *ox_init_f32(ox_graph *g, const char *name, const int64_t *dims,
                           size_t rank) {
  tensor_head(g, name, dims, rank, ONNX_FLOAT);
  size_t bytes = 4 * numel(dims, rank);
  (void)pb_reserve_bytes_field(g->w, ONNX_TENSOR_RAW_DATA, bytes);
  pb_end(g->w);
  if (pb_status(g->w) != NNLIB_OK)
    return NULL;
  /* pb_end moved the tensor up by its length varint; raw_data, its last
   * field, is now the last `bytes` bytes of the buffer */
  return g->w->data + g->w->size - bytes;
}

void ox_init_copy(ox_graph *g, const char *name, const int64_t *dims,
                  size_t rank, const float *values) {
  unsigned char *p = ox_init_f32(g, name, dims, rank);
  if (p == NULL)
    return;
  size_t n = numel(dims, rank);
  for (size_t i = 0; i < n; i++)
    pb_put_f32le(p + 4 * i, values[i]);
}

void ox_init_scalar(ox_graph *g, const char *name, float value) {
  ox_init_copy(g, name, NULL, 0, &value);
}

void ox_init_i64(ox_graph *g, const char *name, const int64_t *values,
                 size_t count) {
  int64_t dims[1] = {(int64_t)count};
  tensor_head(g, name, dims, 1, ONNX_INT64);
  unsigned char *p =
      pb_reserve_bytes_field(g->w, ONNX_TENSOR_RAW_DATA, 8 * count);
  if (p != NULL)
    for (size_t i = 0; i < count; i++)
      pb_put_i64le(p + 8 * i, values[i]);
  pb_end(g->w);
}

const char *ox_param(ox_graph *g, char *buf, size_t i) {
  const nnlib__param *p = &g->layer->params[i];
  snprintf(buf, OX_NAME, "%s.%s", g->out, p->name);
  ox_init_copy(g, buf, p->shape.dims, p->shape.rank, p->value.data);
  return buf;
}

static void config_short(ox_graph *g) {
  if (g->w->status == NNLIB_OK)
    g->w->status = nnlib__error(NNLIB_ERR_INTERNAL,
                                "ONNX export: node %zu (%s): config ends "
                                "early",
                                g->v, g->layer->ops->name(g->layer));
}

int64_t ox_cfg_i64(ox_graph *g) {
  int64_t v = 0;
  if (nnlib__get_i64(&g->config, &v) != NNLIB_OK)
    config_short(g);
  return v;
}

uint32_t ox_cfg_u32(ox_graph *g) {
  uint32_t v = 0;
  if (nnlib__get_u32(&g->config, &v) != NNLIB_OK)
    config_short(g);
  return v;
}

float ox_cfg_f32(ox_graph *g) {
  float v = 0.0f;
  if (nnlib__get_f32(&g->config, &v) != NNLIB_OK)
    config_short(g);
  return v;
}

/* ------------------------------------------------------------- graph */

/* Node v's value name (see export.h) into buf[OX_NAME]. */
static const char *value_name(const nnlib_model *m, size_t v, char *buf) {
  const nnlib__node *node = &m->nodes[v];
  if (node->name != NULL)
    snprintf(buf, OX_NAME, "%s", node->name);
  else if (node->layer == NULL)
    snprintf(buf, OX_NAME, "input.%lld", (long long)node->input_index);
  else
    snprintf(buf, OX_NAME, "%s.%zu", node->layer->ops->name(node->layer), v);
  return buf;
}

/* ValueInfoProto of a graph input or output: [N, per-sample dims]. */
static void value_info(pb_writer *w, uint32_t field, const char *name,
                       uint64_t elem_type, const nnlib__shape *shape) {
  pb_begin(w, field);
  pb_string_field(w, ONNX_VALUE_NAME, name);
  pb_begin(w, ONNX_VALUE_TYPE);
  pb_begin(w, ONNX_TYPE_TENSOR);
  pb_varint_field(w, ONNX_TYPE_TENSOR_ELEM_TYPE, elem_type);
  pb_begin(w, ONNX_TYPE_TENSOR_SHAPE);
  pb_begin(w, ONNX_SHAPE_DIM);
  pb_string_field(w, ONNX_DIM_PARAM, "N");
  pb_end(w);
  for (size_t i = 0; i < shape->rank; i++) {
    pb_begin(w, ONNX_SHAPE_DIM);
    pb_int64_field(w, ONNX_DIM_VALUE, shape->dims[i]);
    pb_end(w);
  }
  pb_end(w);
  pb_end(w);
  pb_end(w);
  pb_end(w);
}

/* The layer's codec config bytes into buf (at most `capacity`). */
static nnlib_status layer_config(const nnlib_layer *l, size_t v,
                                 unsigned char *buf, size_t capacity,
                                 size_t *size) {
  const nnlib__layer_codec *codec = nnlib__codec_for_kind(l->ops->kind);
  if (codec == NULL)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX export: node %zu (%s): layer kind %u has no "
                        "codec",
                        v, l->ops->name(l), (unsigned)l->ops->kind);
  nnlib__writer count = {NULL, 0, 0};
  codec->write_config(l, &count);
  if (count.size > capacity)
    return nnlib__error(NNLIB_ERR_INTERNAL,
                        "ONNX export: node %zu (%s): config of %zu bytes",
                        v, l->ops->name(l), count.size);
  nnlib__writer w = {buf, 0, capacity};
  codec->write_config(l, &w);
  *size = w.size;
  return NNLIB_OK;
}

static nnlib_status export_node(pb_writer *w, const nnlib_model *m, size_t v) {
  const nnlib__node *node = &m->nodes[v];
  char out[OX_NAME], in[NNLIB__MAX_INPUTS][OX_NAME];
  unsigned char config[256];
  size_t config_size = 0;
  ox_graph g = {.w = w, .m = m, .v = v, .layer = node->layer, .out = out};
  value_name(m, v, out);
  if (node->input_count > NNLIB__MAX_INPUTS)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX export: node %zu (%s) reads %zu nodes, more "
                        "than %d",
                        v, out, node->input_count, NNLIB__MAX_INPUTS);
  for (size_t i = 0; i < node->input_count; i++)
    g.in[i] = value_name(m, node->inputs[i], in[i]);
  g.in_count = node->input_count;
  NNLIB_TRY(layer_config(node->layer, v, config, sizeof config,
                         &config_size));
  g.config = (nnlib__reader){config, config_size, "layer config"};
  NNLIB_TRY(ox_export_layer(&g));
  return pb_status(w);
}

static void export_io(pb_writer *w, const nnlib_model *m) {
  char name[OX_NAME];
  for (size_t k = 0; k < m->input_count; k++) {
    size_t v = m->inputs[k];
    value_info(w, ONNX_GRAPH_INPUT, value_name(m, v, name),
               m->nodes[v].holds_ids ? ONNX_INT32 : ONNX_FLOAT,
               &m->nodes[v].shape);
  }
  value_info(w, ONNX_GRAPH_OUTPUT, value_name(m, m->output, name), ONNX_FLOAT,
             &m->nodes[m->output].shape);
}

static nnlib_status export_graph(pb_writer *w, const nnlib_model *m) {
  pb_begin(w, ONNX_MODEL_GRAPH);
  pb_string_field(w, ONNX_GRAPH_NAME, "nnlib");
  for (size_t v = 0; v < m->node_count; v++)
    if (m->nodes[v].layer != NULL)
      NNLIB_TRY(export_node(w, m, v));
  export_io(w, m);
  pb_end(w);
  return pb_status(w);
}

static nnlib_status export_model(pb_writer *w, const nnlib_model *m) {
  pb_int64_field(w, ONNX_MODEL_IR_VERSION, ONNX_IR_VERSION);
  pb_string_field(w, ONNX_MODEL_PRODUCER_NAME, "nnlib");
  pb_string_field(w, ONNX_MODEL_PRODUCER_VERSION, nnlib_version_string());
  pb_begin(w, ONNX_MODEL_OPSET_IMPORT);
  pb_string_field(w, ONNX_OPSET_DOMAIN, "");
  pb_int64_field(w, ONNX_OPSET_VERSION, ONNX_OPSET);
  pb_end(w);
  return export_graph(w, m);
}

/* The whole file into w (released on failure). */
static nnlib_status build(pb_writer *w, const nnlib_model *model,
                          const char *what) {
  pb_init(w);
  NNLIB_TRY(nnlib__check_compiled(model, what));
  nnlib_status st = export_model(w, model);
  if (st == NNLIB_OK && w->depth != 0)
    st = nnlib__error(NNLIB_ERR_INTERNAL, "ONNX export: %zu messages left "
                                          "open", w->depth);
  /* protobuf's limit: larger models need ONNX's external data files */
  if (st == NNLIB_OK && w->size > (size_t)INT32_MAX)
    st = nnlib__error(NNLIB_ERR_UNSUPPORTED,
                      "ONNX export: the model takes %zu bytes, over "
                      "protobuf's 2 GiB (external data is not written)",
                      w->size);
  if (st != NNLIB_OK)
    pb_release(w);
  return st;
}

/* ------------------------------------------------------------ public */

nnlib_status nnlib_model_save_onnx_to_buffer(void **data, size_t *size,
                                             const nnlib_model *model) {
  if (data != NULL)
    *data = NULL;
  if (size != NULL)
    *size = 0;
  NNLIB_CHECK_ARG(data != NULL && size != NULL && model != NULL,
                  "nnlib_model_save_onnx_to_buffer: data, size and model "
                  "must not be NULL");
  pb_writer w;
  NNLIB_TRY(build(&w, model, "nnlib_model_save_onnx_to_buffer"));
  *data = w.data;
  *size = w.size;
  return NNLIB_OK;
}

nnlib_status nnlib_model_save_onnx(const nnlib_model *model,
                                   const char *path) {
  NNLIB_CHECK_ARG(model != NULL && path != NULL,
                  "nnlib_model_save_onnx: model and path must not be NULL");
  pb_writer w;
  NNLIB_TRY(build(&w, model, "nnlib_model_save_onnx"));
  nnlib_status st = nnlib__write_file_atomically("nnlib_model_save_onnx", path,
                                                 w.data, w.size);
  pb_release(&w);
  return st;
}
