/* serialize_read.c - validates a model file and builds the model it holds.
 *
 * Order matters: first every byte is checked without allocating anything
 * (container, checksums, every count and shape against the bytes actually
 * there, every enum), then layers are built from their configs, planned in
 * a dry run whose parameter shapes must equal the file's, and only then is
 * the model compiled (the one large allocation) and filled. A version-2
 * file's graph is parsed and checked, and the layers planned over it, before
 * the model gets its first node (serialize_graph.c). Any failure frees what
 * was built; the caller never sees half a model. */
#include "serialize_format.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------- container */

static bool checksum_rejects(uint32_t stored, uint32_t computed) {
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  /* computed all the same, but fuzzers must get past it to the parser */
  (void)stored;
  (void)computed;
  return false;
#else
  return stored != computed;
#endif
}

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p) {
  return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* A tag for messages: printable ASCII, anything else as '?'. */
static void tag_text(const unsigned char *p, char out[5]) {
  for (int i = 0; i < 4; i++)
    out[i] = (char)(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?');
  out[4] = '\0';
}

/* magic, version, declared size against the real one, file checksum */
static nnlib_status check_preamble(const unsigned char *d, size_t size,
                                   nnlib__file_view *v) {
  if (size == 0)
    return nnlib__error(NNLIB_ERR_TRUNCATED, "model file: empty");
  size_t n = size < NNLIB__MAGIC_SIZE ? size : NNLIB__MAGIC_SIZE;
  if (memcmp(d, NNLIB__FILE_MAGIC, n) != 0)
    return nnlib__error(NNLIB_ERR_BAD_MAGIC,
                        "model file: does not start with \"%s\" (not an "
                        "nnlib model file)",
                        NNLIB__FILE_MAGIC);
  if (size < NNLIB__MAGIC_SIZE + 4)
    return nnlib__error(NNLIB_ERR_TRUNCATED,
                        "model file: %zu bytes, ends inside the header", size);
  v->version = le32(d + NNLIB__MAGIC_SIZE);
  if (v->version == 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: format version 0 does not exist");
  if (v->version > NNLIB__FILE_VERSION)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED_VERSION,
                        "model file: format version %u; this library (nnlib "
                        "%s) reads versions up to %u",
                        v->version, NNLIB_VERSION_STRING, NNLIB__FILE_VERSION);
  if (size < NNLIB__PREAMBLE_SIZE + NNLIB__TRAILER_SIZE)
    return nnlib__error(NNLIB_ERR_TRUNCATED,
                        "model file: %zu bytes, ends inside the header", size);
  v->file_size = le64(d + 16);
  if (v->file_size > size)
    return nnlib__error(NNLIB_ERR_TRUNCATED,
                        "model file: %zu bytes, its header says %llu", size,
                        (unsigned long long)v->file_size);
  if (v->file_size < size)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %llu trailing bytes after the %llu its "
                        "header gives",
                        (unsigned long long)(size - v->file_size),
                        (unsigned long long)v->file_size);
  uint32_t stored = le32(d + size - NNLIB__TRAILER_SIZE);
  uint32_t computed = nnlib__crc32(d, size - NNLIB__TRAILER_SIZE);
  if (checksum_rejects(stored, computed))
    return nnlib__error(NNLIB_ERR_CHECKSUM,
                        "model file: checksum 0x%08x, stored 0x%08x: the file "
                        "is damaged",
                        computed, stored);
  return NNLIB_OK;
}

/* HEAD, (version 2: GRPH,) ARCH, PARM and optionally OPTM, each followed
 * by its checksum, filling exactly the space between preamble and
 * trailer. */
static nnlib_status walk_sections(const unsigned char *d, size_t size,
                                  nnlib__file_view *v) {
  const char *tags[5];
  nnlib__section *slots[5];
  uint32_t known = 0;
  tags[known] = NNLIB__TAG_HEAD;
  slots[known++] = &v->head;
  if (v->version >= NNLIB__FILE_VERSION_GRAPH) {
    tags[known] = NNLIB__TAG_GRPH;
    slots[known++] = &v->grph;
  }
  tags[known] = NNLIB__TAG_ARCH;
  slots[known++] = &v->arch;
  tags[known] = NNLIB__TAG_PARM;
  slots[known++] = &v->parm;
  tags[known] = NNLIB__TAG_OPTM;
  slots[known++] = &v->optm;
  uint32_t count = le32(d + 12);
  if (count != known - 1 && count != known)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %u sections, expected %u or %u", count,
                        known - 1, known);
  size_t pos = NNLIB__PREAMBLE_SIZE, end = size - NNLIB__TRAILER_SIZE;
  for (uint32_t i = 0; i < count; i++) {
    char tag[5];
    if (end - pos < NNLIB__SECTION_OVERHEAD)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "model file: section %s missing", tags[i]);
    tag_text(d + pos, tag);
    if (memcmp(d + pos, tags[i], 4) != 0)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "model file: section %u is \"%s\", expected \"%s\"",
                          i + 1, tag, tags[i]);
    uint64_t length = le64(d + pos + 4);
    if (length > end - pos - NNLIB__SECTION_OVERHEAD)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "model file: section %s says %llu bytes, the file "
                          "has %zu left",
                          tag, (unsigned long long)length,
                          end - pos - NNLIB__SECTION_OVERHEAD);
    slots[i]->payload = d + pos + 12;
    slots[i]->length = (size_t)length;
    size_t crc_at = pos + 12 + (size_t)length;
    uint32_t stored = le32(d + crc_at);
    uint32_t computed = nnlib__crc32(d + pos, crc_at - pos);
    if (checksum_rejects(stored, computed))
      return nnlib__error(NNLIB_ERR_CHECKSUM,
                          "model file: section %s checksum 0x%08x, stored "
                          "0x%08x",
                          tag, computed, stored);
    pos = crc_at + 4;
  }
  if (pos != end)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %zu unexplained bytes after the last "
                        "section",
                        end - pos);
  v->has_optm = count == known;
  return NNLIB_OK;
}

nnlib_status nnlib__file_view_parse(const unsigned char *data, size_t size,
                                    nnlib__file_view *view) {
  memset(view, 0, sizeof *view);
  NNLIB_TRY(check_preamble(data, size, view));
  return walk_sections(data, size, view);
}

/* -------------------------------------------------- values and shapes */

static nnlib_status no_trailing(const nnlib__reader *r) {
  if (r->left != 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %zu trailing bytes in the %s", r->left,
                        r->what);
  return NNLIB_OK;
}

/* rank dims, each 1 .. 2^31-1, whose product must not overflow */
static nnlib_status get_dims(nnlib__reader *r, uint32_t rank, nnlib__shape *s,
                             int64_t *count, const char *what) {
  int64_t n = 1;
  s->rank = rank;
  for (uint32_t i = 0; i < rank; i++) {
    NNLIB_TRY(nnlib__get_i64(r, &s->dims[i]));
    if (s->dims[i] < 1 || s->dims[i] > NNLIB__BLAS_DIM_MAX)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "model file: %s dimension %u is %lld, must be in "
                          "1..%lld",
                          what, i, (long long)s->dims[i],
                          (long long)NNLIB__BLAS_DIM_MAX);
    if (nnlib__mul_overflows(n, s->dims[i], &n))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "model file: %s: the product of the dimensions "
                          "overflows",
                          what);
  }
  *count = n;
  return NNLIB_OK;
}

/* `what` is "input" in version 1, "input K" in version 2 */
nnlib_status nnlib__file_input_shape(nnlib__reader *r, const char *what,
                                     nnlib__shape *s) {
  uint32_t rank;
  int64_t size;
  char shape_what[40];
  NNLIB_TRY(nnlib__get_u32(r, &rank));
  if (rank < 1 || rank >= NNLIB_MAX_RANK)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s rank %u, must be in 1..%d", what, rank,
                        NNLIB_MAX_RANK - 1);
  snprintf(shape_what, sizeof shape_what, "%s shape", what);
  return get_dims(r, rank, s, &size, shape_what);
}

/* library version, loss, (version 1: the input shape,) maximum batch,
 * seed */
static nnlib_status get_head_values(nnlib__reader *r, nnlib__file_head *h,
                                    bool with_input) {
  uint32_t loss;
  NNLIB_TRY(nnlib__get_u32(r, &h->library_version));
  NNLIB_TRY(nnlib__get_u32(r, &loss));
  if (loss > (uint32_t)NNLIB_LOSS_SOFTMAX_CE)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE, "model file: unknown loss %u",
                        loss);
  h->loss = (nnlib_loss)loss;
  if (with_input)
    NNLIB_TRY(nnlib__file_input_shape(r, "input", &h->input));
  NNLIB_TRY(nnlib__get_i64(r, &h->max_batch));
  if (h->max_batch < 1 || h->max_batch > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: maximum batch %lld, must be in 1..%lld",
                        (long long)h->max_batch,
                        (long long)NNLIB__BLAS_DIM_MAX);
  return nnlib__get_u64(r, &h->seed);
}

nnlib_status nnlib__file_input_count(nnlib__reader *r, uint32_t *count) {
  NNLIB_TRY(nnlib__get_u32(r, count));
  if (*count < 1 || *count > NNLIB__FILE_MAX_INPUTS)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %u inputs, must be in 1..%u", *count,
                        NNLIB__FILE_MAX_INPUTS);
  return NNLIB_OK;
}

/* Version 2 keeps the input shapes in GRPH: the count and input 0's shape
 * for the header summary (the rest is read with the graph). */
static nnlib_status graph_first_input(const nnlib__file_view *v,
                                      nnlib__file_head *h) {
  nnlib__reader r = {v->grph.payload, v->grph.length, "graph section"};
  NNLIB_TRY(nnlib__file_input_count(&r, &h->input_count));
  return nnlib__file_input_shape(&r, "input 0", &h->input);
}

nnlib_status nnlib__file_head_parse(const nnlib__file_view *v,
                                    nnlib__file_head *h) {
  nnlib__reader r = {v->head.payload, v->head.length, "header section"};
  bool graph = v->version >= NNLIB__FILE_VERSION_GRAPH;
  memset(h, 0, sizeof *h);
  NNLIB_TRY(get_head_values(&r, h, !graph));
  uint64_t any = 0;
  for (size_t i = 0; i < 4; i++) {
    NNLIB_TRY(nnlib__get_u64(&r, &h->rng.s[i]));
    any |= h->rng.s[i];
  }
  if (any == 0) /* xoshiro's one forbidden state: it would stay all zero */
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: random generator state is all zero");
  NNLIB_TRY(nnlib__get_u32(&r, &h->layer_count));
  if (h->layer_count < 1 || h->layer_count > NNLIB__FILE_MAX_LAYERS)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %u layers, must be in 1..%u",
                        h->layer_count, NNLIB__FILE_MAX_LAYERS);
  NNLIB_TRY(nnlib__get_i64(&r, &h->param_total));
  if (h->param_total < 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: negative parameter count");
  NNLIB_TRY(no_trailing(&r));
  if (graph)
    return graph_first_input(v, h);
  h->input_count = 1;
  return NNLIB_OK;
}

/* ------------------------------------------- structure, before building */

/* per layer: known kind, config inside the section */
static nnlib_status arch_prescan(const nnlib__file_view *v,
                                 const nnlib__file_head *h) {
  nnlib__reader r = {v->arch.payload, v->arch.length, "architecture section"};
  for (uint32_t i = 0; i < h->layer_count; i++) {
    uint32_t kind, length;
    NNLIB_TRY(nnlib__get_u32(&r, &kind));
    NNLIB_TRY(nnlib__get_u32(&r, &length));
    const nnlib__layer_codec *codec = nnlib__codec_for_kind(kind);
    if (codec == NULL || codec->read_config == NULL)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "model file: layer %u has unknown kind %u (a newer "
                          "nnlib may know it)",
                          i, kind);
    if (length > r.left || length > NNLIB__FILE_MAX_CONFIG)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "model file: layer %u config of %u bytes, the "
                          "section has %zu left",
                          i, length, r.left);
    r.p += length;
    r.left -= length;
  }
  return no_trailing(&r);
}

/* u32 rank, dims; the data must fit in what is left of the section.
 * Leaves r at the data. */
static nnlib_status tensor_header(nnlib__reader *r, nnlib__shape *s,
                                  int64_t *count) {
  uint32_t rank;
  int64_t bytes;
  NNLIB_TRY(nnlib__get_u32(r, &rank));
  if (rank < 1 || rank > NNLIB_MAX_RANK)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: tensor of rank %u, must be in 1..%d",
                        rank, NNLIB_MAX_RANK);
  NNLIB_TRY(get_dims(r, rank, s, count, "tensor"));
  if (nnlib__mul_overflows(*count, 4, &bytes))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "model file: tensor of %lld floats is too large",
                        (long long)*count);
  if ((uint64_t)bytes > r->left)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: tensor of %lld floats needs %lld bytes, "
                        "the %s has %zu left",
                        (long long)*count, (long long)bytes, r->what, r->left);
  return NNLIB_OK;
}

static void skip_floats(nnlib__reader *r, int64_t count) {
  r->p += (size_t)count * 4;
  r->left -= (size_t)count * 4;
}

/* u32 count (<= limit), then count tensors; adds their sizes to *total */
static nnlib_status tensor_list_prescan(nnlib__reader *r, uint32_t limit,
                                        int64_t *total) {
  uint32_t n;
  NNLIB_TRY(nnlib__get_u32(r, &n));
  if (n > limit)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %u tensors for one layer, at most %u",
                        n, limit);
  for (uint32_t t = 0; t < n; t++) {
    nnlib__shape s;
    int64_t count;
    NNLIB_TRY(tensor_header(r, &s, &count));
    skip_floats(r, count);
    if (total != NULL && __builtin_add_overflow(*total, count, total))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "model file: parameter count overflows");
  }
  return NNLIB_OK;
}

static nnlib_status parm_prescan(const nnlib__file_view *v,
                                 const nnlib__file_head *h) {
  nnlib__reader r = {v->parm.payload, v->parm.length, "parameter section"};
  int64_t total = 0;
  for (uint32_t i = 0; i < h->layer_count; i++) {
    NNLIB_TRY(tensor_list_prescan(&r, NNLIB__MAX_PARAMS, &total));
    NNLIB_TRY(tensor_list_prescan(&r, NNLIB__MAX_BUFFERS, NULL));
  }
  NNLIB_TRY(no_trailing(&r));
  if (total != h->param_total)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %lld parameters stored, the header says "
                        "%lld",
                        (long long)total, (long long)h->param_total);
  return NNLIB_OK;
}

static nnlib_status get_enum(nnlib__reader *r, uint32_t min, uint32_t max,
                             const char *what, uint32_t *v) {
  NNLIB_TRY(nnlib__get_u32(r, v));
  if (*v < min || *v > max)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: optimizer %s is %u, must be in %u..%u",
                        what, *v, min, max);
  return NNLIB_OK;
}

/* The options, field by field; their values are checked by
 * nnlib_optimizer_create when the loader builds the optimizer. */
static nnlib_status get_options(nnlib__reader *r, uint32_t version,
                                nnlib_optimizer_options *o) {
  uint32_t kind, nesterov, schedule;
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  NNLIB_TRY(get_enum(r, NNLIB_OPT_SGD, NNLIB_OPT_RMSPROP, "kind", &kind));
  o->kind = (nnlib_optimizer_kind)kind;
  NNLIB_TRY(nnlib__get_f32(r, &o->learning_rate));
  NNLIB_TRY(nnlib__get_f32(r, &o->momentum));
  NNLIB_TRY(get_enum(r, 0, 1, "nesterov", &nesterov));
  o->nesterov = (int)nesterov;
  NNLIB_TRY(nnlib__get_f32(r, &o->weight_decay));
  NNLIB_TRY(nnlib__get_f32(r, &o->beta1));
  NNLIB_TRY(nnlib__get_f32(r, &o->beta2));
  NNLIB_TRY(nnlib__get_f32(r, &o->alpha));
  NNLIB_TRY(nnlib__get_f32(r, &o->epsilon));
  NNLIB_TRY(get_enum(r, NNLIB_SCHEDULE_CONSTANT, NNLIB_SCHEDULE_COSINE,
                     "schedule", &schedule));
  o->schedule = (nnlib_schedule)schedule;
  NNLIB_TRY(nnlib__get_i64(r, &o->step_size));
  NNLIB_TRY(nnlib__get_f32(r, &o->gamma));
  NNLIB_TRY(nnlib__get_i64(r, &o->total_steps));
  NNLIB_TRY(nnlib__get_f32(r, &o->min_learning_rate));
  NNLIB_TRY(nnlib__get_f32(r, &o->clip_norm));
  if (version >= NNLIB__FILE_VERSION_WARMUP)
    return nnlib__get_i64(r, &o->warmup_steps);
  return NNLIB_OK;
}

nnlib_status nnlib__file_optm_parse(const nnlib__file_view *v,
                                    const nnlib__file_head *h,
                                    nnlib__file_optm *o) {
  nnlib__reader r = {v->optm.payload, v->optm.length, "optimizer section"};
  NNLIB_TRY(get_options(&r, v->version, &o->options));
  NNLIB_TRY(nnlib__get_i64(&r, &o->step_count));
  NNLIB_TRY(nnlib__get_i64(&r, &o->state_size));
  NNLIB_TRY(nnlib__get_u32(&r, &o->state_mask));
  if (o->step_count < 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: negative optimizer step count");
  if (o->state_size != h->param_total)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: optimizer state for %lld parameters, the "
                        "model has %lld",
                        (long long)o->state_size, (long long)h->param_total);
  if (o->state_mask > (NNLIB__STATE1 | NNLIB__STATE2))
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: optimizer state mask 0x%x", o->state_mask);
  int64_t buffers = (o->state_mask & 1u) + (o->state_mask >> 1), bytes;
  if (nnlib__mul_overflows(o->state_size, 4 * buffers, &bytes) ||
      (uint64_t)bytes != r.left)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: optimizer section has %zu bytes of state, "
                        "expected %lld buffers of %lld floats",
                        r.left, (long long)buffers,
                        (long long)o->state_size);
  o->state = r.p;
  return NNLIB_OK;
}

/* ------------------------------------------------------------ building */

/* A constructor's or compile's INVALID_ARGUMENT means the file holds a value
 * no model can have: report it as a corrupt file, keeping the detail. */
static nnlib_status as_corrupt(nnlib_status st, const char *context) {
  if (st != NNLIB_ERR_INVALID_ARGUMENT)
    return st;
  char detail[400];
  snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
  return nnlib__error(NNLIB_ERR_CORRUPT_FILE, "model file: %s: %s", context,
                      detail);
}

/* Layer i from its config at r (kind and length checked by arch_prescan),
 * r then at the next layer. */
static nnlib_status read_layer(nnlib__reader *r, uint32_t i,
                               nnlib_layer **out) {
  uint32_t kind, length;
  char what[48];
  *out = NULL;
  NNLIB_TRY(nnlib__get_u32(r, &kind));
  NNLIB_TRY(nnlib__get_u32(r, &length));
  snprintf(what, sizeof what, "layer %u config", i);
  nnlib__reader config = {r->p, length, what};
  nnlib_layer *layer = NULL;
  nnlib_status st = as_corrupt(
      nnlib__codec_for_kind(kind)->read_config(&config, &layer), what);
  if (st == NNLIB_OK && config.left != 0)
    st = no_trailing(&config);
  r->p += length;
  r->left -= length;
  if (st != NNLIB_OK) {
    nnlib_layer_free(layer);
    return st;
  }
  *out = layer;
  return NNLIB_OK;
}

/* Version 1: the layers in a chain, in file order. A layer a chain cannot
 * hold (a merge layer such as add reads two nodes or more) makes the file
 * corrupt, not the call. */
static nnlib_status add_layers(nnlib_model *m, const nnlib__file_view *v,
                               const nnlib__file_head *h) {
  nnlib__reader r = {v->arch.payload, v->arch.length, "architecture section"};
  for (uint32_t i = 0; i < h->layer_count; i++) {
    nnlib_layer *layer;
    NNLIB_TRY(read_layer(&r, i, &layer));
    NNLIB_TRY(as_corrupt(nnlib_model_add(m, layer), "chain"));
  }
  return NNLIB_OK;
}

/* Version 2: the layers outside any model, for the graph's dry run. The
 * array and every layer in it are freed with free_layers. */
static nnlib_status read_layers(const nnlib__file_view *v,
                                const nnlib__file_head *h,
                                nnlib_layer ***out) {
  nnlib__reader r = {v->arch.payload, v->arch.length, "architecture section"};
  /* an array of layer pointers: its element is the pointer */
  nnlib_layer **layers = nnlib__calloc(
      h->layer_count, sizeof *layers); // NOLINT(bugprone-sizeof-expression)
  *out = layers;
  if (layers == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "model file: no memory for %u layers",
                        h->layer_count);
  for (uint32_t i = 0; i < h->layer_count; i++)
    NNLIB_TRY(read_layer(&r, i, &layers[i]));
  return NNLIB_OK;
}

/* The layers no model took. */
static void free_layers(nnlib_layer **layers, uint32_t count) {
  for (uint32_t i = 0; layers != NULL && i < count; i++)
    nnlib_layer_free(layers[i]);
  nnlib__free(layers);
}

static void shape_text(const nnlib__shape *s, char *buf, size_t size) {
  nnlib__text t = {buf, size, 0};
  nnlib__text_append(&t, "[");
  for (size_t i = 0; i < s->rank; i++)
    nnlib__text_append(&t, "%s%lld", i ? ", " : "", (long long)s->dims[i]);
  nnlib__text_append(&t, "]");
}

/* Plans every layer as compile will, without allocating: the shapes that
 * chain, the parameter shapes the file must match, and what compile would
 * allocate for activations and workspaces (which the file does not bound). */
static nnlib_status dry_run_plan(nnlib_model *m, const nnlib__file_head *h) {
  nnlib__shape shape = h->input;
  int64_t widths = nnlib__shape_numel(&shape), work = 0, plan_floats;
  for (size_t i = 0; i < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i];
    NNLIB_TRY(nnlib__layer_plan(l, i, &shape, h->max_batch, "model file: "));
    shape = l->out_shape;
    if (__builtin_add_overflow(widths, nnlib__shape_numel(&shape), &widths) ||
        __builtin_add_overflow(work, (int64_t)l->workspace_floats, &work))
      return nnlib__error(NNLIB_ERR_TOO_LARGE, "model file: layer sizes "
                                               "overflow");
  }
  if (nnlib__mul_overflows(widths, h->max_batch, &plan_floats) ||
      __builtin_add_overflow(plan_floats, work, &plan_floats) ||
      plan_floats > NNLIB__FILE_MAX_PLAN_FLOATS)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "model file: a batch of %lld would need more than "
                        "2^40 floats of activations",
                        (long long)h->max_batch);
  return NNLIB_OK;
}

/* The file's tensors of one layer against what the layer declared. */
static nnlib_status match_tensors(nnlib__reader *r, const nnlib_layer *l,
                                  size_t index, const nnlib__param *declared,
                                  size_t declared_count, const char *what) {
  uint32_t n;
  NNLIB_TRY(nnlib__get_u32(r, &n));
  if (n != declared_count)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "model file: layer %zu (%s) has %u %s tensors, the "
                        "layer declares %zu",
                        index, l->ops->name(l), n, what, declared_count);
  for (uint32_t t = 0; t < n; t++) {
    nnlib__shape s;
    int64_t count;
    NNLIB_TRY(tensor_header(r, &s, &count));
    skip_floats(r, count);
    if (!nnlib__shape_equal(&s, &declared[t].shape)) {
      char got[160], want[160];
      shape_text(&s, got, sizeof got);
      shape_text(&declared[t].shape, want, sizeof want);
      return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                          "model file: layer %zu (%s) %s %s is %s, the layer "
                          "needs %s",
                          index, l->ops->name(l), what, declared[t].name, got,
                          want);
    }
  }
  return NNLIB_OK;
}

static nnlib_status match_parm_shapes(nnlib_model *m,
                                      const nnlib__file_view *v) {
  nnlib__reader r = {v->parm.payload, v->parm.length, "parameter section"};
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    NNLIB_TRY(match_tensors(&r, l, i, l->params, l->param_count,
                            "parameter"));
    NNLIB_TRY(match_tensors(&r, l, i, l->buffers, l->buffer_count, "buffer"));
  }
  return NNLIB_OK;
}

static void decode_floats(const unsigned char *p, float *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++, p += 4) {
    uint32_t bits = le32(p);
    memcpy(&dst[i], &bits, sizeof bits);
  }
}

/* Shapes already match; reads one list of tensors into declared[]. */
static nnlib_status fill_tensors(nnlib__reader *r, nnlib__param *declared) {
  uint32_t n;
  NNLIB_TRY(nnlib__get_u32(r, &n));
  for (uint32_t t = 0; t < n; t++) {
    nnlib__shape s;
    int64_t count;
    NNLIB_TRY(tensor_header(r, &s, &count));
    if (declared[t].value.data == NULL)
      return nnlib__error(NNLIB_ERR_INTERNAL,
                          "model file: %s has no memory after compile",
                          declared[t].name);
    decode_floats(r->p, declared[t].value.data, count);
    skip_floats(r, count);
  }
  return NNLIB_OK;
}

/* The kind's own check of the state just read (batchnorm: no negative
 * running variance): NNLIB_ERR_CORRUPT_FILE naming the layer. */
static nnlib_status check_layer_state(const nnlib_layer *l, size_t index) {
  if (l->ops->check_state == NULL)
    return NNLIB_OK;
  char what[48];
  snprintf(what, sizeof what, "layer %zu", index);
  return as_corrupt(l->ops->check_state(l), what);
}

static nnlib_status fill_parameters(nnlib_model *m,
                                    const nnlib__file_view *v) {
  nnlib__reader r = {v->parm.payload, v->parm.length, "parameter section"};
  for (size_t i = 0; i < m->layer_count; i++) {
    NNLIB_TRY(fill_tensors(&r, m->layers[i]->params));
    NNLIB_TRY(fill_tensors(&r, m->layers[i]->buffers));
    NNLIB_TRY(check_layer_state(m->layers[i], i));
  }
  return NNLIB_OK;
}

/* After compile attached fresh state: the file's state must have the same
 * buffers (which depend on the options), then it replaces the zeros. */
static nnlib_status restore_optimizer(nnlib_model *m,
                                      const nnlib__file_optm *o) {
  nnlib_optimizer *opt = m->optimizer;
  uint32_t have = (opt->state1 != NULL ? NNLIB__STATE1 : 0u) |
                  (opt->state2 != NULL ? NNLIB__STATE2 : 0u);
  if (have != o->state_mask || opt->size != o->state_size)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: optimizer state buffers 0x%x, these "
                        "options keep 0x%x",
                        o->state_mask, have);
  const unsigned char *p = o->state;
  if (opt->state1 != NULL) {
    decode_floats(p, opt->state1, opt->size);
    p += (size_t)opt->size * 4;
  }
  if (opt->state2 != NULL)
    decode_floats(p, opt->state2, opt->size);
  opt->t = o->step_count;
  return NNLIB_OK;
}

/* Planned and with its nodes: the file's tensors against the layers'
 * declared shapes, the optimizer, compile (input_shape NULL: every input
 * was declared), then the values. */
static nnlib_status finish(nnlib_model *m, const nnlib__file_view *v,
                           const nnlib__file_head *h,
                           const nnlib__file_optm *o,
                           const nnlib__shape *input_shape) {
  NNLIB_TRY(match_parm_shapes(m, v));
  nnlib_optimizer *opt = NULL;
  if (o != NULL)
    NNLIB_TRY(as_corrupt(nnlib_optimizer_create(&opt, &o->options),
                         "optimizer"));
  /* compile takes opt, also when it fails; no initial weights: the file
   * fills every parameter and buffer below */
  NNLIB_TRY(as_corrupt(
      nnlib__model_compile(m, input_shape ? input_shape->dims : NULL,
                           input_shape ? input_shape->rank : 0, h->max_batch,
                           h->loss, opt, h->seed, false),
      "compile"));
  NNLIB_TRY(fill_parameters(m, v));
  if (o != NULL)
    NNLIB_TRY(restore_optimizer(m, o));
  m->rng = h->rng;
  return NNLIB_OK;
}

/* Version 1: a chain built with nnlib_model_add, as nnlib 1.2 did. */
static nnlib_status build_chain(const nnlib__file_view *v,
                                const nnlib__file_head *h,
                                const nnlib__file_optm *o, nnlib_model *m) {
  NNLIB_TRY(add_layers(m, v, h));
  NNLIB_TRY(dry_run_plan(m, h));
  return finish(m, v, h, o, &h->input);
}

/* Version 2: the graph parsed and checked, the layers built and planned
 * over it, all before the model gets its first node. */
static nnlib_status build_graph(const nnlib__file_view *v,
                                const nnlib__file_head *h,
                                const nnlib__file_optm *o, nnlib_model *m) {
  nnlib__file_graph g;
  nnlib_layer **layers = NULL;
  nnlib_status st = nnlib__file_graph_parse(v, h, &g);
  if (st == NNLIB_OK)
    st = read_layers(v, h, &layers);
  if (st == NNLIB_OK)
    st = nnlib__file_graph_plan(&g, layers, h->max_batch);
  if (st == NNLIB_OK)
    st = as_corrupt(nnlib__file_graph_build(&g, layers, m), "graph");
  free_layers(layers, h->layer_count);
  nnlib__file_graph_free(&g);
  NNLIB_TRY(st);
  return finish(m, v, h, o, NULL);
}

nnlib_status nnlib__model_decode(const unsigned char *data, size_t size,
                                 nnlib_model **out) {
  nnlib__file_view v;
  nnlib__file_head h;
  nnlib__file_optm o;
  NNLIB_TRY(nnlib__file_view_parse(data, size, &v));
  NNLIB_TRY(nnlib__file_head_parse(&v, &h));
  NNLIB_TRY(arch_prescan(&v, &h));
  NNLIB_TRY(parm_prescan(&v, &h));
  if (v.has_optm)
    NNLIB_TRY(nnlib__file_optm_parse(&v, &h, &o));
  nnlib_model *m = NULL;
  NNLIB_TRY(nnlib_model_create(&m));
  const nnlib__file_optm *optm = v.has_optm ? &o : NULL;
  nnlib_status st = v.version >= NNLIB__FILE_VERSION_GRAPH
                        ? build_graph(&v, &h, optm, m)
                        : build_chain(&v, &h, optm, m);
  if (st != NNLIB_OK) {
    nnlib_model_free(m);
    return st;
  }
  *out = m;
  return NNLIB_OK;
}
