/* spec_transformer.c - the description item of a pre-norm transformer
 * block, transformer:D:HEADS[:mlpM][:causal][:dropoutR], built as the
 * graph of its layers:
 *
 *   r = x + drop(attention(layernorm(x)))
 *   y = r + drop(linear_D(gelu(linear_M(layernorm(r)))))
 *
 * D is the model width (the block's input is [T, D]), M the hidden width
 * of the MLP (default 4 D), causal masks attention to earlier positions,
 * and R > 0 drops attention weights and both branch outputs in training
 * (the dropout layers are left out when R is 0). The item makes ordinary
 * nodes, so a model printed back shows them one by one. */
#include "nnlib_internal.h"

#include <string.h>

typedef struct block_args {
  int64_t width, heads, mlp;
  int causal;
  float dropout;
} block_args;

/* Field `field` after a prefix ("mlp512" -> "512") as its own item field,
 * so the shared integer and float parsers (and their messages) apply. */
static nnlib__spec_item without_prefix(const nnlib__spec_item *item,
                                       size_t field, size_t prefix) {
  nnlib__spec_item shifted = *item;
  shifted.fields[field].text += prefix;
  shifted.fields[field].length -= prefix;
  return shifted;
}

static bool has_prefix(const nnlib__spec_field *f, const char *prefix) {
  size_t n = strlen(prefix);
  return f->length > n && memcmp(f->text, prefix, n) == 0;
}

static nnlib_status parse_option(const nnlib__spec_item *item, size_t i,
                                 block_args *a, bool seen[3]) {
  const nnlib__spec_field *f = &item->fields[i];
  size_t which;
  if (nnlib__spec_field_is(item, i, "causal")) {
    which = 0;
    a->causal = 1;
  } else if (has_prefix(f, "mlp")) {
    which = 1;
    nnlib__spec_item s = without_prefix(item, i, 3);
    NNLIB_TRY(nnlib__spec_int(&s, i, 1, NNLIB__BLAS_DIM_MAX, &a->mlp));
  } else if (has_prefix(f, "dropout")) {
    which = 2;
    nnlib__spec_item s = without_prefix(item, i, 7);
    NNLIB_TRY(nnlib__spec_float(&s, i, &a->dropout));
    if (!(a->dropout >= 0.0f && a->dropout < 1.0f))
      return nnlib__spec_field_error(item, i, "is not a rate in [0, 1)");
  } else {
    return nnlib__spec_field_error(item, i, "is not an option of "
                                            "transformer (mlpM, causal, "
                                            "dropoutR)");
  }
  if (seen[which])
    return nnlib__spec_field_error(item, i, "repeats an option");
  seen[which] = true;
  return NNLIB_OK;
}

static nnlib_status parse_block(const nnlib__spec_item *item, block_args *a) {
  NNLIB_TRY(nnlib__spec_fields(item, 3, 6));
  memset(a, 0, sizeof *a);
  NNLIB_TRY(nnlib__spec_int(item, 1, 1, NNLIB__BLAS_DIM_MAX, &a->width));
  NNLIB_TRY(nnlib__spec_int(item, 2, 1, a->width, &a->heads));
  if (a->width % a->heads != 0)
    return nnlib__spec_field_error(item, 2, "does not divide the width D");
  bool seen[3] = {false, false, false};
  for (size_t i = 3; i < item->field_count; i++)
    NNLIB_TRY(parse_option(item, i, a, seen));
  if (a->mlp == 0 && nnlib__mul_overflows(a->width, 4, &a->mlp))
    return nnlib__spec_field_error(item, 1, "is too large");
  return NNLIB_OK;
}

/* Applies layer l, just made by a constructor that returned st, to one
 * node; the new node replaces *node. The model takes l. */
static nnlib_status then_apply(nnlib_model *m, nnlib_status st,
                               nnlib_layer *l, size_t *node) {
  NNLIB_TRY(st);
  return nnlib__model_apply(m, l, node, 1, node);
}

/* The residual x + drop(branch), branch the last node of f(x). */
static nnlib_status residual(nnlib_model *m, const block_args *a, size_t x,
                             size_t branch, size_t *out) {
  nnlib_layer *l = NULL;
  if (a->dropout > 0.0f) {
    nnlib_status st = nnlib_dropout_create(&l, a->dropout);
    NNLIB_TRY(then_apply(m, st, l, &branch));
  }
  size_t both[2] = {x, branch};
  NNLIB_TRY(nnlib_add_create(&l));
  return nnlib__model_apply(m, l, both, 2, out);
}

static nnlib_status attention_half(nnlib_model *m, const block_args *a,
                                   size_t x, size_t *out) {
  nnlib_layer *l = NULL;
  size_t h = x;
  nnlib_status st = nnlib_layernorm_create(&l, 1e-5f, 1);
  NNLIB_TRY(then_apply(m, st, l, &h));
  nnlib_attention_options o;
  NNLIB_TRY(nnlib_attention_options_init(&o));
  o.causal = a->causal;
  o.dropout = a->dropout;
  st = nnlib_attention_create(&l, a->heads, &o);
  NNLIB_TRY(then_apply(m, st, l, &h));
  return residual(m, a, x, h, out);
}

static nnlib_status mlp_half(nnlib_model *m, const block_args *a, size_t x,
                             size_t *out) {
  nnlib_layer *l = NULL;
  size_t h = x;
  nnlib_status st = nnlib_layernorm_create(&l, 1e-5f, 1);
  NNLIB_TRY(then_apply(m, st, l, &h));
  st = nnlib_linear_create(&l, a->mlp, 1);
  NNLIB_TRY(then_apply(m, st, l, &h));
  st = nnlib_activation_create(&l, NNLIB_ACT_GELU, 0.0f);
  NNLIB_TRY(then_apply(m, st, l, &h));
  st = nnlib_linear_create(&l, a->width, 1);
  NNLIB_TRY(then_apply(m, st, l, &h));
  return residual(m, a, x, h, out);
}

nnlib_status nnlib__spec_transformer(nnlib_model *m,
                                     const nnlib__spec_item *item, size_t x,
                                     size_t *out) {
  block_args a;
  NNLIB_TRY(parse_block(item, &a));
  size_t r;
  NNLIB_TRY(attention_half(m, &a, x, &r));
  return mlp_half(m, &a, r, out);
}
