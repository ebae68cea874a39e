/* export.h - private to the ONNX exporter (src/onnx/export*.c): what the
 * per-kind mappings share. A layer node becomes one or more ONNX nodes
 * written straight into the open GraphProto, with its weights as
 * initializers beside them (GraphProto's repeated fields may interleave).
 *
 * Names. A model node's value is named after the node: its name when it
 * has one ("stem"), else "<layer name>.<node index>" ("dense.3", or
 * "input.0" for an unnamed model input); nnlib's node names are made of
 * letters, digits and '_', so the dot keeps the two apart. Values inside
 * a layer's subgraph are "<value>/<what>", its initializers
 * "<value>.<parameter name>" (PyTorch's style), and every ONNX node is
 * named after the (one) value it writes first, so all names are unique. */
#ifndef NNLIB_ONNX_EXPORT_H
#define NNLIB_ONNX_EXPORT_H

#include "onnx/pb_write.h"

#include <stdio.h>

#define OX_NAME 192 /* room for any value name the exporter makes */

typedef struct ox_graph {
  pb_writer *w;             /* positioned inside the GraphProto */
  const nnlib_model *m;
  size_t v;                 /* the model node being exported */
  const nnlib_layer *layer; /* its layer */
  const char *out;          /* its value's name */
  const char *in[NNLIB__MAX_INPUTS]; /* its inputs' value names */
  size_t in_count;
  nnlib__reader config;     /* the layer's codec config bytes */
} ox_graph;

/* "<out>/<what>" into buf[OX_NAME]; returns buf. */
const char *ox_sub(const ox_graph *g, char *buf, const char *what);

/* A NodeProto: ox_begin writes the inputs (NULL or "" for a skipped
 * optional one), the outputs ("" for a skipped one), the name (its first
 * output that is not skipped) and the op type; attributes follow until
 * ox_end. */
void ox_begin(ox_graph *g, const char *op, const char *const *in,
              size_t in_count, const char *out);
void ox_begin_outputs(ox_graph *g, const char *op, const char *const *in,
                      size_t in_count, const char *const *outs,
                      size_t out_count);
void ox_end(ox_graph *g);
void ox_attr_int(ox_graph *g, const char *name, int64_t value);
void ox_attr_float(ox_graph *g, const char *name, float value);
void ox_attr_ints(ox_graph *g, const char *name, const int64_t *values,
                  size_t count);
void ox_attr_string(ox_graph *g, const char *name, const char *value);
void ox_attr_strings1(ox_graph *g, const char *name, const char *value);

/* One-node shorthands: op(in) and op(a, b) into out, no attributes. */
void ox_unary(ox_graph *g, const char *op, const char *in, const char *out);
void ox_binary(ox_graph *g, const char *op, const char *a, const char *b,
               const char *out);

/* A float32 initializer of `rank` dims: returns where its numel * 4 raw
 * little-endian bytes go (fill them with pb_put_f32le before the next
 * write), or NULL after a failure. rank 0 is a scalar. */
unsigned char *ox_init_f32(ox_graph *g, const char *name, const int64_t *dims,
                           size_t rank);
/* A float32 initializer copied from `values`. */
void ox_init_copy(ox_graph *g, const char *name, const int64_t *dims,
                  size_t rank, const float *values);
void ox_init_scalar(ox_graph *g, const char *name, float value);
/* A 1-D int64 initializer (shapes, axes, splits, perms). */
void ox_init_i64(ox_graph *g, const char *name, const int64_t *values,
                 size_t count);
/* "<out>.<param name>" holding parameter i of the layer as it is. */
const char *ox_param(ox_graph *g, char *buf, size_t i);

/* The layer's config fields, in codec order (a short config is an
 * internal error, sticky in the writer). */
int64_t ox_cfg_i64(ox_graph *g);
uint32_t ox_cfg_u32(ox_graph *g);
float ox_cfg_f32(ox_graph *g);

/* Per-kind mappings (export_layers.c, export_sequence.c). Each writes the
 * ONNX form of g->layer reading g->in into g->out. */
nnlib_status ox_export_layer(ox_graph *g);
nnlib_status ox_export_recurrent(ox_graph *g);
nnlib_status ox_export_embedding(ox_graph *g);
nnlib_status ox_export_positional(ox_graph *g);
nnlib_status ox_export_layernorm(ox_graph *g);
nnlib_status ox_export_linear(ox_graph *g);
nnlib_status ox_export_attention(ox_graph *g);

#endif /* NNLIB_ONNX_EXPORT_H */
