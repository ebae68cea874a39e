/* pb_read.c - a small protobuf reader for ONNX's ModelProto, without
 * generated code: only the wire types ONNX uses (varint, 64-bit,
 * length-delimited, 32-bit), every length and count checked against the
 * bytes left in its message here and nowhere else, unknown fields skipped,
 * nothing copied (strings and tensor data point into the caller's bytes),
 * and every allocation through nnlib__alloc. Repeated fields are counted in
 * a first walk over their message and filled in a second, so each array is
 * one allocation of a size the bytes prove. Nesting is fixed by the
 * schema (model > graph > node > attribute > tensor); subgraph attributes
 * are not descended into, so depth is bounded without a counter.
 * Field numbers: /usr/include/onnx/onnx.proto (ONNX 1.12). */
#include "onnx/onnx.h"

#include <string.h>

/* ------------------------------------------------------------- wire */

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

typedef struct pb {
  const uint8_t *p, *end;
  const uint8_t *base; /* the whole model, for offsets in messages */
} pb;

typedef struct pb_field {
  uint32_t number;
  int wire;
  uint64_t value;          /* varint, fixed32, fixed64 */
  const uint8_t *data;     /* length-delimited */
  size_t len;
} pb_field;

static pb pb_of(const pb *parent, const uint8_t *data, size_t len) {
  pb r = {data, data + len, parent->base};
  return r;
}

static nnlib_status corrupt(const pb *r, const char *what) {
  return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                      "ONNX: %s at byte %zu (not a well-formed ONNX model)",
                      what, (size_t)(r->p - r->base));
}

static bool read_varint(pb *r, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end)
      return false;
    uint8_t b = *r->p++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = x;
      return true;
    }
  }
  return false; /* more than ten bytes */
}

static uint64_t le_bytes(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t k = 0; k < n; k++)
    v |= (uint64_t)p[k] << (8 * k);
  return v;
}

/* The next field of the message, or *done at its end. */
static nnlib_status next_field(pb *r, pb_field *f, bool *done) {
  *done = r->p >= r->end;
  if (*done)
    return NNLIB_OK;
  uint64_t key = 0;
  if (!read_varint(r, &key))
    return corrupt(r, "a field key runs past its message");
  if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
    return corrupt(r, "field number 0 or above 2^29");
  f->number = (uint32_t)(key >> 3);
  f->wire = (int)(key & 7);
  size_t left = 0;
  switch (f->wire) {
  case WIRE_VARINT:
    if (!read_varint(r, &f->value))
      return corrupt(r, "a varint runs past its message");
    return NNLIB_OK;
  case WIRE_I64:
  case WIRE_I32: {
    size_t n = f->wire == WIRE_I64 ? 8 : 4;
    if ((size_t)(r->end - r->p) < n)
      return corrupt(r, "a fixed-width value runs past its message");
    f->value = le_bytes(r->p, n);
    r->p += n;
    return NNLIB_OK;
  }
  case WIRE_LEN:
    if (!read_varint(r, &f->value))
      return corrupt(r, "a length runs past its message");
    left = (size_t)(r->end - r->p);
    if (f->value > left)
      return corrupt(r, "a length runs past its message");
    f->data = r->p;
    f->len = (size_t)f->value;
    r->p += f->len;
    return NNLIB_OK;
  default:
    return corrupt(r, "wire type 3, 4, 6 or 7 (groups are not ONNX)");
  }
}

static nnlib_status want_wire(const pb *r, const pb_field *f, int wire) {
  if (f->wire != wire)
    return corrupt(r, "a known field with the wrong wire type");
  return NNLIB_OK;
}

static nnlib_status read_str(const pb *r, const pb_field *f,
                             nnlib__onnx_str *s) {
  NNLIB_TRY(want_wire(r, f, WIRE_LEN));
  s->p = (const char *)f->data;
  s->n = f->len;
  return NNLIB_OK;
}

static int64_t as_int64(uint64_t v) {
  return v <= (uint64_t)INT64_MAX ? (int64_t)v
                                  : -(int64_t)(~v) - 1; /* two's complement */
}

/* A repeated int64 field, packed or not: calls back per value. The list is
 * kept inline (`max` values); more set *overflow. */
static nnlib_status read_ints(const pb *r, const pb_field *f, int64_t *out,
                              size_t max, size_t *count, bool *overflow) {
  if (f->wire == WIRE_VARINT) {
    if (*count < max)
      out[*count] = as_int64(f->value);
    else
      *overflow = true;
    (*count)++;
    return NNLIB_OK;
  }
  NNLIB_TRY(want_wire(r, f, WIRE_LEN));
  pb in = pb_of(r, f->data, f->len);
  while (in.p < in.end) {
    uint64_t v = 0;
    if (!read_varint(&in, &v))
      return corrupt(&in, "a packed varint runs past its list");
    if (*count < max)
      out[*count] = as_int64(v);
    else
      *overflow = true;
    (*count)++;
  }
  return NNLIB_OK;
}

static float float_of_bits(uint32_t bits) {
  float x = 0;
  memcpy(&x, &bits, sizeof x);
  return x;
}

/* ----------------------------------------------------------- tensors */

static nnlib_status parse_tensor(const pb *r, const uint8_t *data, size_t len,
                                 nnlib__onnx_tensor *t) {
  memset(t, 0, sizeof *t);
  t->msg = data;
  t->msg_len = len;
  pb in = pb_of(r, data, len);
  pb_field f = {0};
  bool done;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    switch (f.number) {
    case 1: /* dims */
      NNLIB_TRY(read_ints(&in, &f, t->dims, NNLIB__ONNX_MAX_RANK, &t->rank,
                          &t->rank_overflow));
      break;
    case 2: /* data_type */
      NNLIB_TRY(want_wire(&in, &f, WIRE_VARINT));
      t->data_type = (int32_t)f.value;
      break;
    case 8: /* name */
      NNLIB_TRY(read_str(&in, &f, &t->name));
      break;
    case 13: /* external_data */
      t->external = true;
      break;
    case 14: /* data_location: 1 EXTERNAL */
      NNLIB_TRY(want_wire(&in, &f, WIRE_VARINT));
      if (f.value == 1)
        t->external = true;
      break;
    default:
      break;
    }
  }
}

/* Elements of one data field: packed or single values. */
static nnlib_status count_elements(const pb *r, const pb_field *f,
                                   size_t fixed, int64_t *count) {
  if (f->wire != WIRE_LEN) { /* one unpacked value */
    (*count)++;
    return NNLIB_OK;
  }
  if (fixed > 0) {
    if (f->len % fixed != 0)
      return corrupt(r, "a packed list of fixed-width values cut short");
    *count += (int64_t)(f->len / fixed);
    return NNLIB_OK;
  }
  pb in = pb_of(r, f->data, f->len);
  uint64_t v = 0;
  while (in.p < in.end) {
    if (!read_varint(&in, &v))
      return corrupt(&in, "a packed varint runs past its list");
    (*count)++;
  }
  return NNLIB_OK;
}

/* Stores value k of a data field as float or int64. */
static void store(int32_t type, uint64_t bits, int64_t k, float *fo,
                  int64_t *io) {
  switch (type) {
  case NNLIB__ONNX_FLOAT:
    fo[k] = float_of_bits((uint32_t)bits);
    break;
  case NNLIB__ONNX_DOUBLE: {
    double d = 0;
    memcpy(&d, &bits, sizeof d);
    fo[k] = (float)d;
    break;
  }
  case NNLIB__ONNX_INT32:
    io[k] = (int64_t)(int32_t)(uint32_t)bits;
    break;
  default:
    io[k] = as_int64(bits);
    break;
  }
}

static nnlib_status decode_field(const pb *r, const pb_field *f, int32_t type,
                                 size_t fixed, int64_t *k, float *fo,
                                 int64_t *io) {
  if (f->wire != WIRE_LEN) {
    store(type, f->value, (*k)++, fo, io);
    return NNLIB_OK;
  }
  pb in = pb_of(r, f->data, f->len);
  while (in.p < in.end) {
    uint64_t v = 0;
    if (fixed > 0) {
      v = le_bytes(in.p, fixed);
      in.p += fixed;
    } else if (!read_varint(&in, &v)) {
      return corrupt(&in, "a packed varint runs past its list");
    }
    store(type, v, (*k)++, fo, io);
  }
  return NNLIB_OK;
}

/* Which field of TensorProto holds elements of `type`, and its width
 * (0: varints). */
static bool data_field_of(int32_t type, uint32_t *number, size_t *fixed,
                          size_t *raw_width) {
  switch (type) {
  case NNLIB__ONNX_FLOAT:
    *number = 4, *fixed = 4, *raw_width = 4;
    return true;
  case NNLIB__ONNX_INT32:
    *number = 5, *fixed = 0, *raw_width = 4;
    return true;
  case NNLIB__ONNX_INT64:
    *number = 7, *fixed = 0, *raw_width = 8;
    return true;
  case NNLIB__ONNX_DOUBLE:
    *number = 10, *fixed = 8, *raw_width = 8;
    return true;
  default:
    return false;
  }
}

nnlib_status nnlib__onnx_tensor_data(const nnlib__onnx_tensor *t,
                                     int64_t count, float *fo, int64_t *io) {
  uint32_t number = 0;
  size_t fixed = 0, width = 0;
  pb top = {t->msg, t->msg + t->msg_len, t->msg};
  if (!data_field_of(t->data_type, &number, &fixed, &width))
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: tensor '%.*s' of data type %d (float, double, "
                        "int32 and int64 are read)",
                        (int)t->name.n, t->name.p, (int)t->data_type);
  /* store writes float and double to fo, the integers to io: the caller
   * (const_from_tensor) gives the one the type needs, or neither */
  bool floats =
      t->data_type == NNLIB__ONNX_FLOAT || t->data_type == NNLIB__ONNX_DOUBLE;
  if ((fo != NULL || io != NULL) && (floats ? fo == NULL : io == NULL))
    return nnlib__error(NNLIB_ERR_INTERNAL,
                        "ONNX: tensor '%.*s': no array for its %s elements",
                        (int)t->name.n, t->name.p, floats ? "float" : "int");
  /* First walk: where the elements are and how many. */
  pb in = top;
  pb_field f, raw = {0};
  bool done, has_raw = false;
  int64_t listed = 0;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      break;
    if (f.number == 9) {
      NNLIB_TRY(want_wire(&in, &f, WIRE_LEN));
      raw = f, has_raw = true;
    } else if (f.number == number) {
      NNLIB_TRY(count_elements(&in, &f, fixed, &listed));
    }
  }
  if (has_raw) {
    if (raw.len % width != 0 || (uint64_t)(raw.len / width) != (uint64_t)count)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "ONNX: tensor '%.*s': raw_data of %zu bytes, its "
                          "dims make %lld elements of %zu bytes",
                          (int)t->name.n, t->name.p, raw.len, (long long)count,
                          width);
    if (fo == NULL && io == NULL)
      return NNLIB_OK; /* checked only */
    for (int64_t k = 0; k < count; k++)
      store(t->data_type, le_bytes(raw.data + (size_t)k * width, width), k, fo,
            io);
    return NNLIB_OK;
  }
  if (listed != count)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "ONNX: tensor '%.*s' holds %lld elements, its dims "
                        "make %lld",
                        (int)t->name.n, t->name.p, (long long)listed,
                        (long long)count);
  if (fo == NULL && io == NULL)
    return NNLIB_OK;
  in = top;
  int64_t k = 0;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    if (f.number == number)
      NNLIB_TRY(decode_field(&in, &f, t->data_type, fixed, &k, fo, io));
  }
}

/* -------------------------------------------------------- value info */

static nnlib_status parse_dim(const pb *r, const uint8_t *data, size_t len,
                              int64_t *dim) {
  pb in = pb_of(r, data, len);
  pb_field f = {0};
  bool done;
  *dim = -1;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    if (f.number == 1) {
      NNLIB_TRY(want_wire(&in, &f, WIRE_VARINT));
      *dim = as_int64(f.value);
      if (*dim < 0)
        return corrupt(&in, "a negative dimension");
    } else if (f.number == 2) {
      *dim = -1; /* dim_param: symbolic */
    }
  }
}

static nnlib_status parse_shape(const pb *r, const uint8_t *data, size_t len,
                                nnlib__onnx_value_info *v) {
  pb in = pb_of(r, data, len);
  pb_field f = {0};
  bool done;
  v->has_shape = true;
  v->rank = 0;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    if (f.number != 1)
      continue;
    NNLIB_TRY(want_wire(&in, &f, WIRE_LEN));
    int64_t dim = 0;
    NNLIB_TRY(parse_dim(&in, f.data, f.len, &dim));
    if (v->rank < NNLIB__ONNX_MAX_RANK)
      v->dims[v->rank] = dim;
    else
      v->rank_overflow = true;
    v->rank++;
  }
}

/* TypeProto.tensor_type (1): elem_type 1, shape 2. */
static nnlib_status parse_tensor_type(const pb *r, const uint8_t *data,
                                      size_t len, nnlib__onnx_value_info *v) {
  pb in = pb_of(r, data, len);
  pb_field f = {0};
  bool done;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    if (f.number == 1) {
      NNLIB_TRY(want_wire(&in, &f, WIRE_VARINT));
      v->elem_type = (int32_t)f.value;
    } else if (f.number == 2) {
      NNLIB_TRY(want_wire(&in, &f, WIRE_LEN));
      NNLIB_TRY(parse_shape(&in, f.data, f.len, v));
    }
  }
}

static nnlib_status parse_value_info(const pb *r, const uint8_t *data,
                                     size_t len, nnlib__onnx_value_info *v) {
  memset(v, 0, sizeof *v);
  pb in = pb_of(r, data, len);
  pb_field f = {0};
  bool done;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    if (f.number == 1) {
      NNLIB_TRY(read_str(&in, &f, &v->name));
    } else if (f.number == 2) { /* TypeProto */
      NNLIB_TRY(want_wire(&in, &f, WIRE_LEN));
      pb t = pb_of(&in, f.data, f.len);
      pb_field g;
      for (;;) {
        NNLIB_TRY(next_field(&t, &g, &done));
        if (done)
          break;
        if (g.number == 1) {
          NNLIB_TRY(want_wire(&t, &g, WIRE_LEN));
          NNLIB_TRY(parse_tensor_type(&t, g.data, g.len, v));
        }
      }
    }
  }
}

/* -------------------------------------------------------- attributes */

static nnlib_status parse_attr(const pb *r, const uint8_t *data, size_t len,
                               nnlib__onnx_attr *a) {
  memset(a, 0, sizeof *a);
  pb in = pb_of(r, data, len);
  pb_field f = {0};
  bool done;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    switch (f.number) {
    case 1:
      NNLIB_TRY(read_str(&in, &f, &a->name));
      break;
    case 2:
      NNLIB_TRY(want_wire(&in, &f, WIRE_I32));
      a->f = float_of_bits((uint32_t)f.value);
      break;
    case 3:
      NNLIB_TRY(want_wire(&in, &f, WIRE_VARINT));
      a->i = as_int64(f.value);
      break;
    case 4:
      NNLIB_TRY(read_str(&in, &f, &a->s));
      break;
    case 5:
      NNLIB_TRY(want_wire(&in, &f, WIRE_LEN));
      NNLIB_TRY(parse_tensor(&in, f.data, f.len, &a->t));
      a->has_t = true;
      break;
    case 7: /* floats, packed or not */
      if (f.wire == WIRE_I32) {
        if (a->float_count < NNLIB__ONNX_MAX_LIST)
          a->floats[a->float_count] = float_of_bits((uint32_t)f.value);
        else
          a->list_overflow = true;
        a->float_count++;
      } else {
        NNLIB_TRY(want_wire(&in, &f, WIRE_LEN));
        if (f.len % 4 != 0)
          return corrupt(&in, "a packed float list cut short");
        for (size_t k = 0; k < f.len / 4; k++, a->float_count++) {
          if (a->float_count < NNLIB__ONNX_MAX_LIST)
            a->floats[a->float_count] =
                float_of_bits((uint32_t)le_bytes(f.data + 4 * k, 4));
          else
            a->list_overflow = true;
        }
      }
      break;
    case 8:
      NNLIB_TRY(read_ints(&in, &f, a->ints, NNLIB__ONNX_MAX_LIST,
                          &a->int_count, &a->list_overflow));
      break;
    case 9: { /* strings */
      nnlib__onnx_str text = {NULL, 0};
      NNLIB_TRY(read_str(&in, &f, &text));
      if (a->string_count < NNLIB__ONNX_MAX_LIST)
        a->strings[a->string_count] = text;
      else
        a->list_overflow = true;
      a->string_count++;
      break;
    }
    case 20:
      NNLIB_TRY(want_wire(&in, &f, WIRE_VARINT));
      a->type = (int32_t)f.value;
      break;
    default:
      break;
    }
  }
}

/* ------------------------------------------------------------- nodes */

static void *alloc_array(size_t count, size_t size) {
  return count == 0 ? NULL : nnlib__calloc(count, size);
}

static nnlib_status no_memory(void) {
  return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "ONNX: no memory");
}

static void node_free(nnlib__onnx_node *n) {
  nnlib__free(n->inputs);
  nnlib__free(n->outputs);
  nnlib__free(n->attrs);
}

static nnlib_status parse_node(const pb *r, const uint8_t *data, size_t len,
                               nnlib__onnx_node *n) {
  pb in = pb_of(r, data, len);
  pb_field f = {0};
  bool done;
  size_t ni = 0, no = 0, na = 0;
  for (;;) { /* count */
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      break;
    ni += f.number == 1, no += f.number == 2, na += f.number == 5;
  }
  n->inputs = alloc_array(ni, sizeof *n->inputs);
  n->outputs = alloc_array(no, sizeof *n->outputs);
  n->attrs = alloc_array(na, sizeof *n->attrs);
  if ((ni && !n->inputs) || (no && !n->outputs) || (na && !n->attrs))
    return no_memory();
  in = pb_of(r, data, len);
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    switch (f.number) {
    case 1:
      NNLIB_TRY(read_str(&in, &f, &n->inputs[n->input_count++]));
      break;
    case 2:
      NNLIB_TRY(read_str(&in, &f, &n->outputs[n->output_count++]));
      break;
    case 3:
      NNLIB_TRY(read_str(&in, &f, &n->name));
      break;
    case 4:
      NNLIB_TRY(read_str(&in, &f, &n->op_type));
      break;
    case 5:
      NNLIB_TRY(want_wire(&in, &f, WIRE_LEN));
      NNLIB_TRY(parse_attr(&in, f.data, f.len, &n->attrs[n->attr_count++]));
      break;
    case 7:
      NNLIB_TRY(read_str(&in, &f, &n->domain));
      break;
    default:
      break;
    }
  }
}

/* ------------------------------------------------------------- graph */

/* A model may hold its graph field more than once; protobuf merges them
 * (repeated fields append), and so do we. */
typedef struct graph_spans {
  const uint8_t **data;
  size_t *len;
  size_t count;
} graph_spans;

static nnlib_status count_graph(const pb *r, const uint8_t *data, size_t len,
                                size_t counts[4]) {
  pb in = pb_of(r, data, len);
  pb_field f = {0};
  bool done;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    counts[0] += f.number == 1;
    counts[1] += f.number == 5;
    counts[2] += f.number == 11;
    counts[3] += f.number == 12;
  }
}

static nnlib_status fill_graph(const pb *r, const uint8_t *data, size_t len,
                               nnlib__onnx_graph *g) {
  pb in = pb_of(r, data, len);
  pb_field f = {0};
  bool done;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      return NNLIB_OK;
    if (f.number == 1 || f.number == 5 || f.number == 11 || f.number == 12)
      NNLIB_TRY(want_wire(&in, &f, WIRE_LEN));
    switch (f.number) {
    case 1:
      /* counted before it holds anything, so a failure frees it */
      NNLIB_TRY(parse_node(&in, f.data, f.len, &g->nodes[g->node_count++]));
      break;
    case 5:
      NNLIB_TRY(parse_tensor(&in, f.data, f.len,
                             &g->initializers[g->initializer_count++]));
      break;
    case 11:
      NNLIB_TRY(
          parse_value_info(&in, f.data, f.len, &g->inputs[g->input_count++]));
      break;
    case 12:
      NNLIB_TRY(parse_value_info(&in, f.data, f.len,
                                 &g->outputs[g->output_count++]));
      break;
    case 15:
      g->has_sparse = true;
      break;
    default:
      break;
    }
  }
}

static nnlib_status parse_graphs(const pb *r, const graph_spans *s,
                                 nnlib__onnx_graph *g) {
  size_t counts[4] = {0, 0, 0, 0};
  for (size_t k = 0; k < s->count; k++)
    NNLIB_TRY(count_graph(r, s->data[k], s->len[k], counts));
  g->nodes = alloc_array(counts[0], sizeof *g->nodes);
  g->initializers = alloc_array(counts[1], sizeof *g->initializers);
  g->inputs = alloc_array(counts[2], sizeof *g->inputs);
  g->outputs = alloc_array(counts[3], sizeof *g->outputs);
  if ((counts[0] && !g->nodes) || (counts[1] && !g->initializers) ||
      (counts[2] && !g->inputs) || (counts[3] && !g->outputs))
    return no_memory();
  for (size_t k = 0; k < s->count; k++)
    NNLIB_TRY(fill_graph(r, s->data[k], s->len[k], g));
  return NNLIB_OK;
}

/* ------------------------------------------------------------- model */

bool nnlib__onnx_str_is(nnlib__onnx_str s, const char *c) {
  size_t n = strlen(c);
  return s.n == n && (n == 0 || memcmp(s.p, c, n) == 0);
}

static nnlib_status parse_opset(const pb *r, const pb_field *f,
                                nnlib__onnx_model *m) {
  NNLIB_TRY(want_wire(r, f, WIRE_LEN));
  pb in = pb_of(r, f->data, f->len);
  pb_field g;
  bool done;
  nnlib__onnx_str domain = {"", 0};
  int64_t version = -1;
  for (;;) {
    NNLIB_TRY(next_field(&in, &g, &done));
    if (done)
      break;
    if (g.number == 1) {
      NNLIB_TRY(read_str(&in, &g, &domain));
    } else if (g.number == 2) {
      NNLIB_TRY(want_wire(&in, &g, WIRE_VARINT));
      version = as_int64(g.value);
    }
  }
  if (domain.n == 0 || nnlib__onnx_str_is(domain, "ai.onnx"))
    m->opset = version;
  else
    m->other_domain = true;
  return NNLIB_OK;
}

/* Model fields: ir_version 1, graph 7, opset_import 8. */
static nnlib_status parse_model(const pb *top, nnlib__onnx_model *m,
                                graph_spans *spans) {
  pb in = *top;
  pb_field f = {0};
  bool done;
  size_t graphs = 0;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      break;
    graphs += f.number == 7;
  }
  spans->data = alloc_array(graphs, sizeof *spans->data);
  spans->len = alloc_array(graphs, sizeof *spans->len);
  if (graphs && (!spans->data || !spans->len))
    return no_memory();
  in = *top;
  for (;;) {
    NNLIB_TRY(next_field(&in, &f, &done));
    if (done)
      break;
    if (f.number == 1) {
      NNLIB_TRY(want_wire(&in, &f, WIRE_VARINT));
      m->ir_version = as_int64(f.value);
    } else if (f.number == 7) {
      NNLIB_TRY(want_wire(&in, &f, WIRE_LEN));
      spans->data[spans->count] = f.data;
      spans->len[spans->count++] = f.len;
    } else if (f.number == 8) {
      NNLIB_TRY(parse_opset(&in, &f, m));
    }
  }
  m->has_graph = spans->count > 0;
  return parse_graphs(top, spans, &m->graph);
}

nnlib_status nnlib__onnx_parse(const uint8_t *data, size_t size,
                               nnlib__onnx_model *out) {
  memset(out, 0, sizeof *out);
  out->opset = -1;
  pb top = {data, data + size, data};
  graph_spans spans = {NULL, NULL, 0};
  nnlib_status st = parse_model(&top, out, &spans);
  nnlib__free(spans.data);
  nnlib__free(spans.len);
  if (st != NNLIB_OK)
    nnlib__onnx_model_free(out);
  return st;
}

void nnlib__onnx_model_free(nnlib__onnx_model *m) {
  nnlib__onnx_graph *g = &m->graph;
  for (size_t k = 0; k < g->node_count; k++)
    node_free(&g->nodes[k]);
  /* a node that failed half-way was counted in node_count already */
  nnlib__free(g->nodes);
  nnlib__free(g->initializers);
  nnlib__free(g->inputs);
  nnlib__free(g->outputs);
  memset(m, 0, sizeof *m);
  m->opset = -1;
}
