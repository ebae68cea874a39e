/* pb_write.h - private to the ONNX exporter (src/onnx/export*.c): a small
 * protobuf writer (varints, length-delimited fields, nested messages) into
 * one growable buffer, and the onnx.proto field numbers it writes.
 *
 * Nested messages are written in place: pb_begin records where the
 * message's bytes start; pb_end measures them, moves them forward by the
 * size of their length varint and writes the length in front. A model
 * nests at most six deep (model, graph, node, attribute, ...), so each
 * byte moves at most six times. The first failed allocation makes the
 * writer sticky: every later call does nothing and pb_status reports
 * NNLIB_ERR_OUT_OF_MEMORY. */
#ifndef NNLIB_ONNX_PB_WRITE_H
#define NNLIB_ONNX_PB_WRITE_H

#include "nnlib_internal.h"

#define PB_MAX_DEPTH 8

typedef struct pb_writer {
  unsigned char *data; /* nnlib__alloc'd; NULL until the first byte */
  size_t size, capacity;
  size_t open[PB_MAX_DEPTH]; /* where each open message's bytes start */
  size_t depth;
  nnlib_status status; /* NNLIB_OK, or the first failure */
} pb_writer;

void pb_init(pb_writer *w);
void pb_release(pb_writer *w); /* frees the buffer */
nnlib_status pb_status(const pb_writer *w);

/* Wire types 0 (varint), 2 (length-delimited), 5 (fixed32). */
void pb_varint_field(pb_writer *w, uint32_t field, uint64_t value);
void pb_int64_field(pb_writer *w, uint32_t field, int64_t value);
void pb_float_field(pb_writer *w, uint32_t field, float value);
void pb_bytes_field(pb_writer *w, uint32_t field, const void *bytes,
                    size_t length);
void pb_string_field(pb_writer *w, uint32_t field, const char *text);
/* A length-delimited field of `length` bytes the caller fills: returns
 * where they go (valid until the next call), NULL after a failure. */
unsigned char *pb_reserve_bytes_field(pb_writer *w, uint32_t field,
                                      size_t length);
/* A nested message: field tag now, length at pb_end. */
void pb_begin(pb_writer *w, uint32_t field);
void pb_end(pb_writer *w);

/* Little-endian values into raw_data bytes. */
void pb_put_f32le(unsigned char *p, float v);
void pb_put_i64le(unsigned char *p, int64_t v);

/* onnx.proto (IR version 8) field numbers. */
enum {
  ONNX_MODEL_IR_VERSION = 1,
  ONNX_MODEL_PRODUCER_NAME = 2,
  ONNX_MODEL_PRODUCER_VERSION = 3,
  ONNX_MODEL_GRAPH = 7,
  ONNX_MODEL_OPSET_IMPORT = 8,
  ONNX_OPSET_DOMAIN = 1,
  ONNX_OPSET_VERSION = 2,
  ONNX_GRAPH_NODE = 1,
  ONNX_GRAPH_NAME = 2,
  ONNX_GRAPH_INITIALIZER = 5,
  ONNX_GRAPH_INPUT = 11,
  ONNX_GRAPH_OUTPUT = 12,
  ONNX_NODE_INPUT = 1,
  ONNX_NODE_OUTPUT = 2,
  ONNX_NODE_NAME = 3,
  ONNX_NODE_OP_TYPE = 4,
  ONNX_NODE_ATTRIBUTE = 5,
  ONNX_ATTR_NAME = 1,
  ONNX_ATTR_F = 2,
  ONNX_ATTR_I = 3,
  ONNX_ATTR_S = 4,
  ONNX_ATTR_INTS = 8,
  ONNX_ATTR_STRINGS = 9,
  ONNX_ATTR_TYPE = 20,
  ONNX_TENSOR_DIMS = 1,
  ONNX_TENSOR_DATA_TYPE = 2,
  ONNX_TENSOR_NAME = 8,
  ONNX_TENSOR_RAW_DATA = 9,
  ONNX_VALUE_NAME = 1,
  ONNX_VALUE_TYPE = 2,
  ONNX_TYPE_TENSOR = 1,
  ONNX_TYPE_TENSOR_ELEM_TYPE = 1,
  ONNX_TYPE_TENSOR_SHAPE = 2,
  ONNX_SHAPE_DIM = 1,
  ONNX_DIM_VALUE = 1,
  ONNX_DIM_PARAM = 2
};

/* AttributeProto.AttributeType */
enum { ONNX_ATTR_FLOAT = 1, ONNX_ATTR_INT = 2, ONNX_ATTR_STRING = 3,
       ONNX_ATTR_INTS_TYPE = 7, ONNX_ATTR_STRINGS_TYPE = 8 };
/* TensorProto.DataType */
enum { ONNX_FLOAT = 1, ONNX_INT32 = 6, ONNX_INT64 = 7 };

#define ONNX_IR_VERSION 8
#define ONNX_OPSET 17

#endif /* NNLIB_ONNX_PB_WRITE_H */
