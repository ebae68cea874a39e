/* spatial.c - what conv2d and the pooling layers share: the output size of
 * a sliding window, and the "32x5x5" / "s2" / "p1x2" fields of their model
 * description items. */
#include "layers/layer.h"

#include <stdio.h>

int64_t nnlib__window_out(int64_t in, int64_t kernel, int64_t stride,
                          int64_t pad, int64_t dilation) {
  /* every operand is at most 2^31 - 1 (checked by the constructors and
   * plan), so none of these overflow int64 */
  int64_t span = dilation * (kernel - 1) + 1;
  int64_t room = in + 2 * pad - span;
  return room < 0 ? 0 : room / stride + 1;
}

/* Digits of text[0, length) as an integer in [min, max]; false otherwise. */
static bool parse_bounded(const char *text, size_t length, int64_t min,
                          int64_t max, int64_t *out) {
  if (length == 0)
    return false;
  int64_t v = 0;
  for (size_t i = 0; i < length; i++) {
    char c = text[i];
    /* the second test catches max < 9, where the division truncates a
     * negative max - digit to 0 */
    if (c < '0' || c > '9' || v > (max - (c - '0')) / 10 ||
        v * 10 + (c - '0') > max)
      return false;
    v = v * 10 + (c - '0');
  }
  if (v < min)
    return false;
  *out = v;
  return true;
}

static nnlib_status dims_error(const nnlib__spec_item *item, size_t field,
                               size_t count, bool square, int64_t min,
                               int64_t max) {
  const nnlib__spec_field *f = &item->fields[field];
  int shown = f->length > 48 ? 48 : (int)f->length;
  const char *form = count == 3 ? "AxBxC" : "AxB";
  return nnlib__spec_error(item,
                           "argument %zu \"%.*s\" is not %s%s with integers in "
                           "%lld..%lld",
                           field, shown, f->text, square ? "N or " : "", form,
                           (long long)min, (long long)max);
}

nnlib_status nnlib__spec_dims(const nnlib__spec_item *item, size_t field,
                              size_t skip, size_t count, bool square,
                              int64_t min, int64_t max, int64_t *out) {
  const nnlib__spec_field *f = &item->fields[field];
  const char *text = f->text + skip, *end = f->text + f->length;
  size_t parsed = 0;
  while (parsed < count) {
    const char *stop = text;
    while (stop < end && *stop != 'x')
      stop++;
    if (!parse_bounded(text, (size_t)(stop - text), min, max, &out[parsed]))
      return dims_error(item, field, count, square, min, max);
    parsed++;
    if (stop == end)
      break;
    text = stop + 1;
    if (parsed == count) /* an 'x' after the last number */
      return dims_error(item, field, count, square, min, max);
  }
  if (parsed == 1 && square) {
    for (size_t i = 1; i < count; i++)
      out[i] = out[0];
    return NNLIB_OK;
  }
  if (parsed != count)
    return dims_error(item, field, count, square, min, max);
  return NNLIB_OK;
}

void nnlib__text_append_pair(nnlib__text *t, const char *prefix, int64_t a,
                             int64_t b) {
  if (a == b)
    nnlib__text_append(t, ":%s%lld", prefix, (long long)a);
  else
    nnlib__text_append(t, ":%s%lldx%lld", prefix, (long long)a, (long long)b);
}

void nnlib__shape_text(const nnlib__shape *s, char *buf, size_t size) {
  nnlib__text t = {buf, size, 0};
  nnlib__text_append(&t, "[");
  for (size_t i = 0; i < s->rank; i++)
    nnlib__text_append(&t, "%s%lld", i ? ", " : "", (long long)s->dims[i]);
  nnlib__text_append(&t, "]");
}
