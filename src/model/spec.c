/* spec.c - the layer registry, and the text model description:
 * nnlib_model_add_spec ("dense:256,relu,dense:10") and its inverse,
 * nnlib_model_get_spec.
 *
 * Grammar: items separated by ','; whitespace around an item is ignored,
 * inside one it is an error. An item is fields separated by ':', the first
 * naming a registered layer kind, the rest its arguments. What the arguments
 * mean is up to the kind's codec (nnlib__layer_codec in nnlib_internal.h),
 * so a new layer kind adds its items by registering a codec below.
 * One item adds no layer: "last" right after a recurrent item makes that
 * layer return only its last step (nnlib__recurrent_spec_last). */
#define _POSIX_C_SOURCE 200809L /* strtof's locale: localeconv() */
#include "nnlib_internal.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- registry */

/* THE LAYER REGISTRY: one row per layer kind that descriptions and model
 * files know. A new kind adds its codec here (see nnlib__layer_codec). */
static const nnlib__layer_codec *const registry[] = {
    &nnlib__dense_codec,
    &nnlib__activation_codec,
    &nnlib__conv2d_codec,
    &nnlib__maxpool2d_codec,
    &nnlib__minpool2d_codec,
    &nnlib__avgpool2d_codec,
    &nnlib__global_avgpool_codec,
    &nnlib__batchnorm_codec,
    &nnlib__dropout_codec,
    &nnlib__flatten_codec,
    &nnlib__rnn_codec,
    &nnlib__lstm_codec,
    &nnlib__gru_codec,
};

enum { REGISTRY_SIZE = sizeof registry / sizeof registry[0] };

const nnlib__layer_codec *nnlib__codec_for_kind(uint32_t kind) {
  for (size_t i = 0; i < REGISTRY_SIZE; i++)
    if ((uint32_t)registry[i]->kind == kind)
      return registry[i];
  return NULL;
}

const nnlib__layer_codec *nnlib__codec_for_name(const char *name,
                                                size_t length) {
  for (size_t i = 0; i < REGISTRY_SIZE; i++)
    for (size_t n = 0; n < NNLIB__CODEC_MAX_NAMES; n++) {
      const char *known = registry[i]->spec_names[n];
      if (known == NULL)
        break;
      if (strlen(known) == length && memcmp(known, name, length) == 0)
        return registry[i];
    }
  return NULL;
}

/* "dense, step, sigmoid, ..." for the unknown-item message. */
static void append_known_names(nnlib__text *t) {
  const char *sep = "";
  for (size_t i = 0; i < REGISTRY_SIZE; i++)
    for (size_t n = 0; n < NNLIB__CODEC_MAX_NAMES; n++) {
      if (registry[i]->spec_names[n] == NULL)
        break;
      nnlib__text_append(t, "%s%s", sep, registry[i]->spec_names[n]);
      sep = ", ";
    }
}

/* -------------------------------------------------------------- text */

void nnlib__text_append(nnlib__text *t, const char *fmt, ...) {
  size_t room = t->length < t->capacity ? t->capacity - t->length : 0;
  char *at = room > 0 ? t->buf + t->length : NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(at, room, fmt, ap);
  va_end(ap);
  if (n > 0)
    t->length += (size_t)n;
}

/* printf and strtof use the C library's current locale for the decimal
 * point; descriptions always use '.'. These two swap it. */
static char locale_point(void) {
  const char *p = localeconv()->decimal_point;
  return (p != NULL && p[0] != '\0') ? p[0] : '.';
}

static void swap_chars(char *s, char from, char to) {
  if (from == to)
    return;
  for (; *s != '\0'; s++)
    if (*s == from)
      *s = to;
}

/* s must already be syntactically a decimal number with '.' as the point. */
static float parse_decimal(const char *s, size_t length, bool *ok) {
  char buf[64];
  *ok = false;
  if (length == 0 || length >= sizeof buf)
    return 0.0f;
  memcpy(buf, s, length);
  buf[length] = '\0';
  swap_chars(buf, '.', locale_point());
  char *end;
  errno = 0;
  float v = strtof(buf, &end);
  *ok = *end == '\0' && isfinite(v);
  return v;
}

void nnlib__text_append_float(nnlib__text *t, float v) {
  char buf[64] = "";
  /* 9 significant digits always read back exactly (FLT_DECIMAL_DIG) */
  for (int digits = 1; digits <= 9; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
    swap_chars(buf, locale_point(), '.');
    bool ok;
    float back = parse_decimal(buf, strlen(buf), &ok);
    if (ok && memcmp(&back, &v, sizeof v) == 0)
      break;
  }
  /* "%g" writes 300 as "3e+02" at one digit; spell integers out when the
   * digits fit (more digits still read back exactly) */
  const char *e = strchr(buf, 'e');
  int exponent = e != NULL ? atoi(e + 1) : -1;
  if (exponent >= 0 && exponent < 9) {
    snprintf(buf, sizeof buf, "%.*g", exponent + 1, (double)v);
    swap_chars(buf, locale_point(), '.');
  }
  nnlib__text_append(t, "%s", buf);
}

/* ------------------------------------------------------- item helpers */

/* Long items are cut in messages so the 512-byte message keeps its end. */
enum { ITEM_SHOWN = 48 };

nnlib_status nnlib__spec_error(const nnlib__spec_item *item, const char *fmt,
                               ...) {
  char detail[320];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  int shown = item->length > ITEM_SHOWN ? ITEM_SHOWN : (int)item->length;
  return nnlib__error(NNLIB_ERR_PARSE,
                      "model description: item %zu \"%.*s%s\" at column %zu: "
                      "%s",
                      item->index, shown, item->text,
                      item->length > ITEM_SHOWN ? "..." : "", item->column,
                      detail);
}

nnlib_status nnlib__spec_fields(const nnlib__spec_item *item, size_t min,
                                size_t max) {
  if (item->field_count >= min && item->field_count <= max)
    return NNLIB_OK;
  size_t args_min = min - 1, args_max = max - 1;
  if (args_min == args_max)
    return nnlib__spec_error(item, "takes %zu argument%s, got %zu", args_min,
                             args_min == 1 ? "" : "s", item->field_count - 1);
  return nnlib__spec_error(item, "takes %zu to %zu arguments, got %zu",
                           args_min, args_max, item->field_count - 1);
}

static nnlib_status field_shown(const nnlib__spec_item *item, size_t field,
                                const char *what) {
  const nnlib__spec_field *f = &item->fields[field];
  int shown = f->length > ITEM_SHOWN ? ITEM_SHOWN : (int)f->length;
  return nnlib__spec_error(item, "argument %zu \"%.*s\" %s", field, shown,
                           f->text, what);
}

nnlib_status nnlib__spec_int(const nnlib__spec_item *item, size_t field,
                             int64_t min, int64_t max, int64_t *out) {
  const nnlib__spec_field *f = &item->fields[field];
  char range[80];
  snprintf(range, sizeof range, "is not an integer in %lld..%lld",
           (long long)min, (long long)max);
  if (f->length == 0)
    return field_shown(item, field, range);
  int64_t v = 0;
  for (size_t i = 0; i < f->length; i++) {
    char c = f->text[i];
    if (c < '0' || c > '9')
      return field_shown(item, field, range);
    if (v > (max - (c - '0')) / 10) /* v * 10 + digit > max */
      return field_shown(item, field, range);
    v = v * 10 + (c - '0');
  }
  if (v < min)
    return field_shown(item, field, range);
  *out = v;
  return NNLIB_OK;
}

/* [+-] digits [. digits] [(e|E) [+-] digits], with a digit before or after
 * the point: what strtof reads, minus hex, inf and nan. */
static bool is_decimal_syntax(const char *s, size_t n) {
  size_t i = 0, digits = 0;
  if (i < n && (s[i] == '+' || s[i] == '-'))
    i++;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
    digits++;
  if (i < n && s[i] == '.')
    for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
      digits++;
  if (digits == 0)
    return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      i++;
    size_t exp_digits = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
      exp_digits++;
    if (exp_digits == 0)
      return false;
  }
  return i == n;
}

nnlib_status nnlib__spec_float(const nnlib__spec_item *item, size_t field,
                               float *out) {
  const nnlib__spec_field *f = &item->fields[field];
  bool ok = false;
  float v = 0.0f;
  if (is_decimal_syntax(f->text, f->length))
    v = parse_decimal(f->text, f->length, &ok);
  if (!ok)
    return field_shown(item, field, "is not a finite decimal number");
  *out = v;
  return NNLIB_OK;
}

bool nnlib__spec_field_is(const nnlib__spec_item *item, size_t field,
                          const char *word) {
  if (field >= item->field_count)
    return false;
  const nnlib__spec_field *f = &item->fields[field];
  return strlen(word) == f->length && memcmp(word, f->text, f->length) == 0;
}

/* ----------------------------------------------------------- parsing */

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

/* Splits text[begin, end) (one item, untrimmed) into *item. */
static nnlib_status split_item(const char *text, size_t begin, size_t end,
                               size_t index, nnlib__spec_item *item) {
  while (begin < end && is_space(text[begin]))
    begin++;
  while (end > begin && is_space(text[end - 1]))
    end--;
  memset(item, 0, sizeof *item);
  item->index = index;
  item->column = begin + 1;
  item->text = text + begin;
  item->length = end - begin;
  if (item->length == 0)
    return nnlib__spec_error(item, "empty item (two commas in a row, or a "
                                   "comma at the start or end)");
  for (size_t i = 0; i < item->length; i++)
    if (is_space(item->text[i]))
      return nnlib__spec_error(item, "whitespace at column %zu inside the "
                                     "item (allowed only around items)",
                               item->column + i);
  size_t start = 0;
  for (size_t i = 0; i <= item->length; i++) {
    if (i < item->length && item->text[i] != ':')
      continue;
    if (item->field_count == NNLIB__SPEC_MAX_FIELDS)
      return nnlib__spec_error(item, "more than %d fields",
                               NNLIB__SPEC_MAX_FIELDS);
    if (i == start)
      return nnlib__spec_error(item, "empty field at column %zu",
                               item->column + i);
    item->fields[item->field_count++] =
        (nnlib__spec_field){item->text + start, i - start};
    start = i + 1;
  }
  return NNLIB_OK;
}

/* A constructor's argument errors become parse errors about the item. */
static nnlib_status parse_item(const nnlib__spec_item *item,
                               nnlib_layer **out) {
  const nnlib__spec_field *name = &item->fields[0];
  const nnlib__layer_codec *codec =
      nnlib__codec_for_name(name->text, name->length);
  if (codec == NULL || codec->parse_spec == NULL) {
    char known[256];
    nnlib__text t = {known, sizeof known, 0};
    append_known_names(&t);
    int shown = name->length > ITEM_SHOWN ? ITEM_SHOWN : (int)name->length;
    return nnlib__spec_error(item, "unknown layer \"%.*s\" (known: %s)", shown,
                             name->text, known);
  }
  nnlib_status st = codec->parse_spec(item, out);
  if (st == NNLIB_ERR_INVALID_ARGUMENT || st == NNLIB_ERR_TOO_LARGE) {
    char detail[400];
    snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
    st = nnlib__spec_error(item, "%s", detail);
  }
  if (st != NNLIB_OK) {
    nnlib_layer_free(*out);
    *out = NULL;
  }
  return st;
}

static size_t count_items(const char *spec) {
  size_t n = 1;
  for (const char *c = spec; *c != '\0'; c++)
    n += *c == ',';
  return n;
}

/* Every item into layers[] (count_items(spec) slots, zeroed); *added gets
 * the number of layers (an item "last" adds none). */
static nnlib_status parse_all(const char *spec, nnlib_layer **layers,
                              size_t *added) {
  size_t begin = 0, items = 0, index = 0;
  for (size_t i = 0;; i++) {
    if (spec[i] != ',' && spec[i] != '\0')
      continue;
    nnlib__spec_item item;
    NNLIB_TRY(split_item(spec, begin, i, ++items, &item));
    if (nnlib__spec_field_is(&item, 0, "last")) {
      NNLIB_TRY(nnlib__recurrent_spec_last(
          &item, index > 0 ? layers[index - 1] : NULL));
    } else {
      NNLIB_TRY(parse_item(&item, &layers[index]));
      *added = ++index;
    }
    if (spec[i] == '\0')
      return NNLIB_OK;
    begin = i + 1;
  }
}

/* Grows the layer array so the appends that follow cannot fail: either
 * every item's layer is added or none is. */
static nnlib_status reserve_layers(nnlib_model *m, size_t extra) {
  if (m->layer_capacity - m->layer_count >= extra)
    return NNLIB_OK;
  size_t cap = m->layer_capacity ? m->layer_capacity * 2 : 8;
  if (cap < m->layer_count + extra)
    cap = m->layer_count + extra;
  if (cap > SIZE_MAX / sizeof(nnlib_layer *))
    return nnlib__error(NNLIB_ERR_TOO_LARGE, "model description: too many "
                                             "layers");
  nnlib_layer **grown = nnlib__alloc(cap * sizeof *grown);
  if (grown == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "model description: no memory");
  if (m->layer_count > 0)
    memcpy(grown, m->layers, m->layer_count * sizeof *grown);
  nnlib__free(m->layers);
  m->layers = grown;
  m->layer_capacity = cap;
  return NNLIB_OK;
}

nnlib_status nnlib_model_add_spec(nnlib_model *m, const char *spec) {
  NNLIB_CHECK_ARG(m != NULL && spec != NULL,
                  "nnlib_model_add_spec: model or spec is NULL");
  if (m->compiled)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_add_spec: the model is already compiled");
  size_t count = count_items(spec);
  nnlib_layer **layers = nnlib__calloc(count, sizeof *layers);
  if (layers == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "model description: no memory for %zu items", count);
  size_t added = 0;
  nnlib_status st = parse_all(spec, layers, &added);
  if (st == NNLIB_OK)
    st = reserve_layers(m, added);
  if (st == NNLIB_OK) {
    for (size_t i = 0; i < added; i++)
      m->layers[m->layer_count++] = layers[i];
  } else {
    for (size_t i = 0; i < count; i++)
      nnlib_layer_free(layers[i]);
  }
  nnlib__free(layers);
  return st;
}

/* ----------------------------------------------------------- printing */

nnlib_status nnlib_model_get_spec(const nnlib_model *m, char *buf,
                                  size_t capacity, size_t *needed) {
  NNLIB_CHECK_ARG(m != NULL, "nnlib_model_get_spec: model is NULL");
  NNLIB_CHECK_ARG(buf != NULL || capacity == 0,
                  "nnlib_model_get_spec: buf is NULL with capacity %zu",
                  capacity);
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    const nnlib__layer_codec *codec = nnlib__codec_for_kind(l->ops->kind);
    if (codec == NULL || codec->write_spec == NULL)
      return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                          "nnlib_model_get_spec: layer %zu (%s) has no "
                          "description item",
                          i, l->ops->name(l));
  }
  nnlib__text t = {buf, capacity, 0};
  if (capacity > 0)
    buf[0] = '\0';
  for (size_t i = 0; i < m->layer_count; i++) {
    if (i > 0)
      nnlib__text_append(&t, ",");
    nnlib__codec_for_kind(m->layers[i]->ops->kind)
        ->write_spec(m->layers[i], &t);
  }
  if (needed != NULL)
    *needed = t.length;
  return NNLIB_OK;
}
