/* serialize.c - the model-file entry points: save (atomically, through a
 * temporary file), save to memory, load from a path or memory, the header
 * summary for tools, and replacing a compiled model's optimizer. The format
 * itself is in serialize_write.c / serialize_read.c and docs/FILE_FORMAT.md.
 */
#include "serialize_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- saving */

static nnlib_status check_savable(const nnlib_model *m, unsigned flags,
                                  const char *what) {
  NNLIB_TRY(nnlib__check_compiled(m, what));
  NNLIB_CHECK_ARG((flags & ~NNLIB_SAVE_OPTIMIZER) == 0,
                  "%s: unknown flags 0x%x", what, flags);
  if (m->layer_count > NNLIB__FILE_MAX_LAYERS)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s: %zu layers, model files hold at most %u", what,
                        m->layer_count, NNLIB__FILE_MAX_LAYERS);
  if (m->input_count > NNLIB__FILE_MAX_INPUTS)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s: %zu inputs, model files hold at most %u", what,
                        m->input_count, NNLIB__FILE_MAX_INPUTS);
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    const nnlib__layer_codec *codec = nnlib__codec_for_kind(l->ops->kind);
    if (codec == NULL || codec->write_config == NULL)
      return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                          "%s: layer %zu (%s) cannot be saved yet", what, i,
                          l->ops->name(l));
    nnlib__writer count = {0};
    codec->write_config(l, &count);
    if (count.size > NNLIB__FILE_MAX_CONFIG)
      return nnlib__error(NNLIB_ERR_INTERNAL,
                          "%s: layer %zu (%s) config of %zu bytes", what, i,
                          l->ops->name(l), count.size);
  }
  const nnlib_optimizer *opt = m->optimizer;
  if (opt != NULL && opt->size != m->param_size)
    return nnlib__error(NNLIB_ERR_INTERNAL,
                        "%s: optimizer state for %lld parameters, model has "
                        "%lld",
                        what, (long long)opt->size, (long long)m->param_size);
  return NNLIB_OK;
}

/* Sizes the file in a counting pass, then writes it into one allocation. */
static nnlib_status encode(const nnlib_model *m, unsigned flags,
                           const char *what, unsigned char **data,
                           size_t *size) {
  NNLIB_TRY(check_savable(m, flags, what));
  bool with_optimizer =
      (flags & NNLIB_SAVE_OPTIMIZER) != 0 && m->optimizer != NULL;
  nnlib__writer count = {0};
  nnlib__model_encode(m, with_optimizer, 0, &count);
  unsigned char *buf = nnlib__alloc(count.size);
  if (buf == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "%s: no memory for %zu bytes", what, count.size);
  nnlib__writer w = {buf, 0, count.size};
  nnlib__model_encode(m, with_optimizer, count.size, &w);
  if (w.size != count.size) {
    nnlib__free(buf);
    return nnlib__error(NNLIB_ERR_INTERNAL, "%s: sized %zu bytes, wrote %zu",
                        what, count.size, w.size);
  }
  *data = buf;
  *size = count.size;
  return NNLIB_OK;
}

nnlib_status nnlib_model_save_to_buffer(void **data, size_t *size,
                                        const nnlib_model *m, unsigned flags) {
  NNLIB_CHECK_ARG(data != NULL && size != NULL,
                  "nnlib_model_save_to_buffer: data or size is NULL");
  *data = NULL;
  *size = 0;
  unsigned char *buf;
  size_t n;
  NNLIB_TRY(encode(m, flags, "nnlib_model_save_to_buffer", &buf, &n));
  *data = buf;
  *size = n;
  return NNLIB_OK;
}

/* The 1.0 order (deprecated: what the caller frees comes first). */
nnlib_status nnlib_model_save_buffer(const nnlib_model *m, unsigned flags,
                                     void **data, size_t *size) {
  return nnlib_model_save_to_buffer(data, size, m, flags);
}

nnlib_status nnlib_model_save(const nnlib_model *m, const char *path,
                              unsigned flags) {
  NNLIB_CHECK_ARG(path != NULL && path[0] != '\0',
                  "nnlib_model_save: path is NULL or empty");
  unsigned char *data;
  size_t size;
  NNLIB_TRY(encode(m, flags, "nnlib_model_save", &data, &size));
  nnlib_status st =
      nnlib__write_file_atomically("nnlib_model_save", path, data, size);
  nnlib__free(data);
  return st;
}

/* ------------------------------------------------------------ loading */

nnlib_status nnlib_model_load_buffer(nnlib_model **out, const void *data,
                                     size_t size) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_model_load_buffer: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(data != NULL || size == 0,
                  "nnlib_model_load_buffer: data is NULL");
  return nnlib__model_decode(data, size, out);
}

nnlib_status nnlib_model_load(nnlib_model **out, const char *path) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_model_load: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(path != NULL, "nnlib_model_load: path is NULL");
  unsigned char *data = NULL;
  size_t size = 0;
  NNLIB_TRY(nnlib__read_file("nnlib_model_load", path, &data, &size));
  nnlib_status st = nnlib__model_decode(data, size, out);
  nnlib__free(data);
  if (st != NNLIB_OK) {
    char detail[400];
    snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
    nnlib__error(st, "%s: %s", path, detail);
  }
  return st;
}

/* ---------------------------------------------------------- file info */

static nnlib_status read_info(const unsigned char *data, size_t size,
                              nnlib_model_file_info *info) {
  nnlib__file_view v;
  nnlib__file_head h;
  nnlib__file_optm o;
  nnlib_status st = nnlib__file_view_parse(data, size, &v);
  info->format_version = v.version;
  NNLIB_TRY(st);
  NNLIB_TRY(nnlib__file_head_parse(&v, &h));
  info->library_version = h.library_version;
  info->file_size = v.file_size;
  info->loss = h.loss;
  info->input_rank = h.input.rank;
  for (size_t i = 0; i < h.input.rank; i++)
    info->input_shape[i] = h.input.dims[i];
  info->max_batch = h.max_batch;
  info->seed = h.seed;
  info->layer_count = h.layer_count;
  info->param_count = h.param_total;
  if (v.has_optm) {
    NNLIB_TRY(nnlib__file_optm_parse(&v, &h, &o));
    info->has_optimizer = 1;
    info->optimizer_kind = (int)o.options.kind;
    info->optimizer_steps = o.step_count;
  }
  return NNLIB_OK;
}

nnlib_status nnlib_model_file_get_info(const void *data, size_t size,
                                       nnlib_model_file_info *info) {
  NNLIB_CHECK_ARG(info != NULL && (data != NULL || size == 0),
                  "nnlib_model_file_get_info: data or info is NULL");
  nnlib_model_file_info full;
  memset(&full, 0, sizeof full);
  full.struct_size = sizeof full;
  /* a bad struct_size is reported before anything is read */
  NNLIB_TRY(nnlib__write_struct(info, &full, sizeof full,
                                "nnlib_model_file_get_info"));
  nnlib_status st = read_info(data, size, &full);
  /* an older caller's shorter struct gets the fields it knows */
  nnlib__write_struct(info, &full, sizeof full, "nnlib_model_file_get_info");
  return st;
}

/* ---------------------------------------------------- optimizer swap */

static nnlib_status check_set_optimizer(nnlib_model *m,
                                        const nnlib_optimizer *opt) {
  NNLIB_CHECK_ARG(m != NULL && opt != NULL,
                  "nnlib_model_set_optimizer: model or optimizer is NULL");
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_set_optimizer"));
  NNLIB_CHECK_ARG(m->loss != NNLIB_LOSS_NONE,
                  "nnlib_model_set_optimizer: the model was compiled without "
                  "a loss for an optimizer to minimise");
  return NNLIB_OK;
}

nnlib_status nnlib_model_set_optimizer(nnlib_model *m, nnlib_optimizer *opt) {
  if (m != NULL && opt != NULL && opt == m->optimizer)
    return NNLIB_OK;
  nnlib_status st = check_set_optimizer(m, opt);
  if (st == NNLIB_OK) {
    /* state sized for this model; any earlier state is dropped */
    nnlib__free(opt->state1);
    nnlib__free(opt->state2);
    opt->state1 = opt->state2 = NULL;
    opt->size = 0;
    st = nnlib__optimizer_attach(opt, m->param_size);
  }
  if (st != NNLIB_OK) {
    nnlib_optimizer_free(opt); /* the model takes it, also on failure */
    return st;
  }
  nnlib_optimizer_free(m->optimizer);
  m->optimizer = opt;
  return NNLIB_OK;
}
