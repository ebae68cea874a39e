/* onnx.h - the ONNX importer's internals: the protobuf reader's view of a
 * ModelProto (pb_read.c) and what the importer's files share (import*.c).
 * Private to src/onnx/. */
#ifndef NNLIB_ONNX_H
#define NNLIB_ONNX_H

#include "nnlib_internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ONNX TensorProto.DataType values the importer reads. */
#define NNLIB__ONNX_FLOAT 1
#define NNLIB__ONNX_UINT8 2 /* graph inputs only (import_integers.c) */
#define NNLIB__ONNX_INT8 3
#define NNLIB__ONNX_INT32 6
#define NNLIB__ONNX_INT64 7
#define NNLIB__ONNX_DOUBLE 11

/* Ranks and attribute list lengths kept inline; a longer one is flagged and
 * refused where it is used. */
#define NNLIB__ONNX_MAX_RANK 8
#define NNLIB__ONNX_MAX_LIST 16

/* Bytes of the model being read, never copied: the reader's structs point
 * into the caller's buffer, which outlives the import. */
typedef struct nnlib__onnx_str {
  const char *p;
  size_t n;
} nnlib__onnx_str;

/* A TensorProto's header; its data is decoded on demand from `msg`. */
typedef struct nnlib__onnx_tensor {
  nnlib__onnx_str name;
  int32_t data_type;
  size_t rank;
  bool rank_overflow;     /* more dims than NNLIB__ONNX_MAX_RANK */
  int64_t dims[NNLIB__ONNX_MAX_RANK];
  bool external;          /* data_location EXTERNAL or external_data set */
  const uint8_t *msg;     /* the whole TensorProto */
  size_t msg_len;
} nnlib__onnx_tensor;

typedef enum nnlib__onnx_attr_type {
  NNLIB__ATTR_UNDEFINED = 0,
  NNLIB__ATTR_FLOAT = 1,
  NNLIB__ATTR_INT = 2,
  NNLIB__ATTR_STRING = 3,
  NNLIB__ATTR_TENSOR = 4,
  NNLIB__ATTR_GRAPH = 5,
  NNLIB__ATTR_FLOATS = 6,
  NNLIB__ATTR_INTS = 7
} nnlib__onnx_attr_type;

typedef struct nnlib__onnx_attr {
  nnlib__onnx_str name;
  int32_t type;           /* nnlib__onnx_attr_type, or another ONNX value */
  float f;
  int64_t i;
  nnlib__onnx_str s;
  bool has_t;
  nnlib__onnx_tensor t;
  size_t float_count, int_count, string_count;
  bool list_overflow;     /* a list longer than NNLIB__ONNX_MAX_LIST */
  float floats[NNLIB__ONNX_MAX_LIST];
  int64_t ints[NNLIB__ONNX_MAX_LIST];
  nnlib__onnx_str strings[NNLIB__ONNX_MAX_LIST]; /* e.g. RNN activations */
} nnlib__onnx_attr;

typedef struct nnlib__onnx_node {
  nnlib__onnx_str name, op_type, domain;
  nnlib__onnx_str *inputs, *outputs;
  size_t input_count, output_count;
  nnlib__onnx_attr *attrs;
  size_t attr_count;
} nnlib__onnx_node;

/* A ValueInfoProto (graph input or output). dims[k] is -1 where the
 * dimension is symbolic (dim_param) or absent. */
typedef struct nnlib__onnx_value_info {
  nnlib__onnx_str name;
  int32_t elem_type;      /* 0 when no tensor type is given */
  bool has_shape;
  bool rank_overflow;
  size_t rank;
  int64_t dims[NNLIB__ONNX_MAX_RANK];
} nnlib__onnx_value_info;

typedef struct nnlib__onnx_graph {
  nnlib__onnx_node *nodes;
  size_t node_count;
  nnlib__onnx_tensor *initializers;
  size_t initializer_count;
  nnlib__onnx_value_info *inputs, *outputs;
  size_t input_count, output_count;
  bool has_sparse;        /* sparse_initializer: refused */
} nnlib__onnx_graph;

typedef struct nnlib__onnx_model {
  int64_t ir_version;
  int64_t opset;          /* of the default domain ("" or "ai.onnx"); -1 */
  bool other_domain;      /* an opset of another domain is imported */
  bool has_graph;
  nnlib__onnx_graph graph;
} nnlib__onnx_model;

/* Parses `size` bytes as a ModelProto. NNLIB_ERR_CORRUPT_FILE for bytes
 * that are not well-formed protobuf or whose lengths and counts run past
 * their message, NNLIB_ERR_OUT_OF_MEMORY. On failure nothing is held. */
nnlib_status nnlib__onnx_parse(const uint8_t *data, size_t size,
                               nnlib__onnx_model *out);
void nnlib__onnx_model_free(nnlib__onnx_model *m);

/* The tensor's elements (count = product of dims, checked by the caller)
 * as floats (FLOAT, DOUBLE) or int64 (INT64, INT32) into `f` or `i`, which
 * hold `count` elements: raw_data, float_data, double_data, int32_data or
 * int64_data. NNLIB_ERR_CORRUPT_FILE when the data holds another number of
 * elements than the dims say, NNLIB_ERR_UNSUPPORTED for another type.
 * f and i both NULL: only checks. */
nnlib_status nnlib__onnx_tensor_data(const nnlib__onnx_tensor *t,
                                     int64_t count, float *f, int64_t *i);

/* Equality of a stored string with a C string. */
bool nnlib__onnx_str_is(nnlib__onnx_str s, const char *c);

#endif /* NNLIB_ONNX_H */
