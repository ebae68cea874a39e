/* text.c - the helpers of description text that the layer codecs and the
 * description parser share: appending to a bounded buffer, floats that
 * read back exactly in any locale, and the fields of one description item
 * (nnlib__spec_item) read as integers, floats and words with messages that
 * point at the item. */
#define _POSIX_C_SOURCE 200809L /* strtof's locale: localeconv() */
#include "core/codec.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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
  if (p == NULL || p[0] == '\0')
    return '.';
  return p[0];
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

/* The same float bit for bit: -0 is not 0, and the text must say which. */
static bool same_bits(float a, float b) {
  uint32_t x, y;
  memcpy(&x, &a, sizeof x);
  memcpy(&y, &b, sizeof y);
  return x == y;
}

void nnlib__text_append_float(nnlib__text *t, float v) {
  char buf[64] = "";
  /* 9 significant digits always read back exactly (FLT_DECIMAL_DIG) */
  for (int digits = 1; digits <= 9; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
    swap_chars(buf, locale_point(), '.');
    bool ok;
    float back = parse_decimal(buf, strlen(buf), &ok);
    if (ok && same_bits(back, v))
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

nnlib_status(nnlib__spec_error)(const nnlib__spec_item *item, const char *fmt,
                                ...) {
  char detail[320];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  int shown = item->length > NNLIB__SPEC_SHOWN ? NNLIB__SPEC_SHOWN : (int)item->length;
  return nnlib__error(NNLIB_ERR_PARSE,
                      "model description: item %zu \"%.*s%s\" at column %zu: "
                      "%s",
                      item->index, shown, item->text,
                      item->length > NNLIB__SPEC_SHOWN ? "..." : "", item->column,
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

nnlib_status(nnlib__spec_field_error)(const nnlib__spec_item *item,
                                      size_t field, const char *what) {
  const nnlib__spec_field *f = &item->fields[field];
  int shown = f->length > NNLIB__SPEC_SHOWN ? NNLIB__SPEC_SHOWN : (int)f->length;
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
    return nnlib__spec_field_error(item, field, range);
  int64_t v = 0;
  for (size_t i = 0; i < f->length; i++) {
    char c = f->text[i];
    if (c < '0' || c > '9')
      return nnlib__spec_field_error(item, field, range);
    /* v * 10 + digit > max, without overflow; a negative max - digit
     * is already over (truncating division would round it to 0) */
    if (max - (c - '0') < 0 || v > (max - (c - '0')) / 10)
      return nnlib__spec_field_error(item, field, range);
    v = v * 10 + (c - '0');
  }
  if (v < min)
    return nnlib__spec_field_error(item, field, range);
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
    return nnlib__spec_field_error(item, field, "is not a finite decimal number");
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

