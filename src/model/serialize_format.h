/* serialize_format.h - what the model-file writer, reader and entry points
 * share: the constants of docs/FILE_FORMAT.md and the parsed views of a
 * file. Private to src/model/serialize*.c. */
#ifndef NNLIB_SERIALIZE_FORMAT_H
#define NNLIB_SERIALIZE_FORMAT_H

#include "nnlib_internal.h"

/* Format versions. A chain model (nnlib__model_is_chain, no node names) is
 * written as version 1, byte for byte as nnlib 1.0 to 1.2 wrote it, so
 * those readers keep reading 1.2-style models; any other model as version
 * 2, which adds the graph, and a model whose optimizer warms up as version
 * 3 (version 2 with warmup_steps in OPTM). NNLIB__FILE_VERSION is the newest this library
 * reads. Bump it for any change an older reader would misread; new layer
 * kinds and new layer configs need no bump (see nnlib__layer_codec). */
#define NNLIB__FILE_VERSION_CHAIN 1u
#define NNLIB__FILE_VERSION_GRAPH 2u
#define NNLIB__FILE_VERSION_WARMUP 3u
#define NNLIB__FILE_VERSION NNLIB__FILE_VERSION_WARMUP

#define NNLIB__FILE_MAGIC "NNLIBMDL"
#define NNLIB__MAGIC_SIZE 8
/* magic, u32 version, u32 section count, u64 file size */
#define NNLIB__PREAMBLE_SIZE 24
/* tag, u64 payload length ... u32 crc */
#define NNLIB__SECTION_OVERHEAD 16
#define NNLIB__TRAILER_SIZE 4

/* Sections, in the order they appear (GRPH only in version 2). */
#define NNLIB__TAG_HEAD "HEAD"
#define NNLIB__TAG_GRPH "GRPH"
#define NNLIB__TAG_ARCH "ARCH"
#define NNLIB__TAG_PARM "PARM"
#define NNLIB__TAG_OPTM "OPTM"

/* Caps that keep a hostile file from asking for absurd work or memory
 * before anything is checked against the bytes actually present. */
#define NNLIB__FILE_MAX_LAYERS 65536u
#define NNLIB__FILE_MAX_CONFIG 65536u
#define NNLIB__FILE_MAX_INPUTS 65536u
/* node names: 1..31 characters of [A-Za-z0-9_], the first not a digit */
#define NNLIB__FILE_MAX_NAME 31u
/* GRPH node kinds */
#define NNLIB__NODE_INPUT 0u
#define NNLIB__NODE_LAYER 1u
/* activations + workspaces a loaded model may plan, in floats (2^40) */
#define NNLIB__FILE_MAX_PLAN_FLOATS ((int64_t)1 << 40)

/* Optimizer state present: bit 0 state1, bit 1 state2 (nnlib_optimizer). */
#define NNLIB__STATE1 1u
#define NNLIB__STATE2 2u

void nnlib__put_tag(nnlib__writer *w, const char tag[4]);
void nnlib__put_bytes(nnlib__writer *w, const void *data, size_t size);
uint32_t nnlib__crc32(const unsigned char *data, size_t size);

/* The format version a compiled model is written in: 3 when the file keeps
 * an optimizer that warms up, else 1 for a chain without node names, else
 * 2. */
uint32_t nnlib__file_version_for(const nnlib_model *m, bool with_optimizer);

/* Encodes a compiled model (every layer has a codec) into w; total is the
 * file size, known from a first counting pass (0 in that pass). */
void nnlib__model_encode(const nnlib_model *m, bool with_optimizer,
                         uint64_t total, nnlib__writer *w);

typedef struct nnlib__section {
  const unsigned char *payload;
  size_t length;
} nnlib__section;

/* The container checked: magic, version, sizes, checksums, section order. */
typedef struct nnlib__file_view {
  uint32_t version;
  uint64_t file_size;
  nnlib__section head, grph, arch, parm, optm;
  bool has_optm;
} nnlib__file_view;

/* The HEAD section, every value range-checked; in version 2 input_count
 * and input 0's shape come from GRPH. */
typedef struct nnlib__file_head {
  uint32_t library_version;
  nnlib_loss loss;
  uint32_t input_count;
  nnlib__shape input;
  int64_t max_batch;
  uint64_t seed;
  nnlib__rng rng;
  uint32_t layer_count;
  int64_t param_total;
} nnlib__file_head;

/* The fixed part of the OPTM section. */
typedef struct nnlib__file_optm {
  nnlib_optimizer_options options;
  int64_t step_count;
  int64_t state_size;
  uint32_t state_mask;
  const unsigned char *state; /* the state floats that follow */
} nnlib__file_optm;

/* A node of GRPH (version 2), pointing into the section's bytes. */
typedef struct nnlib__file_node {
  int64_t input_number;        /* model input number, or -1 for a layer */
  uint32_t layer;              /* layer index (a layer node) */
  uint32_t input_count;        /* nodes it reads (a layer node) */
  const unsigned char *inputs; /* input_count u32 node indices */
  const unsigned char *name;   /* name_length bytes; NULL when unnamed */
  uint32_t name_length;
} nnlib__file_node;

/* The GRPH section, parsed and checked: every reference in range and to an
 * earlier node, layers in node order, every node reaching the output, the
 * output a layer node, names valid and unique. */
typedef struct nnlib__file_graph {
  uint32_t input_count, node_count, output;
  uint32_t widest;          /* the most nodes one node reads */
  nnlib__file_node *nodes;  /* node_count; owned */
  nnlib__shape *shapes;     /* node_count per-sample shapes: the inputs'
                               from the file, the layers' from the plan */
} nnlib__file_graph;

/* GRPH's u32 input count, 1..NNLIB__FILE_MAX_INPUTS. */
nnlib_status nnlib__file_input_count(nnlib__reader *r, uint32_t *count);
/* u32 rank (1..7) and the dimensions of a model input; `what` names it
 * in messages ("input", "input 2"). */
nnlib_status nnlib__file_input_shape(nnlib__reader *r, const char *what,
                                     nnlib__shape *s);
/* Parses and checks GRPH against HEAD (serialize_graph.c); allocates only
 * g's arrays, which nnlib__file_graph_free releases, also after a
 * failure. */
nnlib_status nnlib__file_graph_parse(const nnlib__file_view *view,
                                     const nnlib__file_head *head,
                                     nnlib__file_graph *g);
void nnlib__file_graph_free(nnlib__file_graph *g);
/* Plans layers[i] (the file's layers, not yet in a model) over the graph
 * in node order, as compile will: each layer's input count, the shapes
 * that chain (NNLIB_ERR_CORRUPT_FILE naming the node), the activation
 * memory of the maximum batch (NNLIB_ERR_TOO_LARGE). Fills g->shapes. */
nnlib_status nnlib__file_graph_plan(nnlib__file_graph *g,
                                    nnlib_layer *const *layers,
                                    int64_t max_batch);
/* Makes the graph's nodes in an empty model: inputs, layers applied (the
 * model takes layers[i], which becomes NULL, also when applying fails),
 * names, the output. */
nnlib_status nnlib__file_graph_build(const nnlib__file_graph *g,
                                     nnlib_layer **layers, nnlib_model *m);

/* On NNLIB_ERR_UNSUPPORTED_VERSION view->version is still set. */
nnlib_status nnlib__file_view_parse(const unsigned char *data, size_t size,
                                    nnlib__file_view *view);
nnlib_status nnlib__file_head_parse(const nnlib__file_view *view,
                                    nnlib__file_head *head);
nnlib_status nnlib__file_optm_parse(const nnlib__file_view *view,
                                    const nnlib__file_head *head,
                                    nnlib__file_optm *optm);
/* Checks every section, then builds and compiles the model. */
nnlib_status nnlib__model_decode(const unsigned char *data, size_t size,
                                 nnlib_model **out);

#endif
