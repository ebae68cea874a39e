/* spec.c - the text model description:
 * nnlib_model_add_spec ("dense:256,relu,dense:10") and its inverse,
 * nnlib_model_get_spec.
 *
 * Grammar (include/nnlib.h documents it for users): items separated by ','
 * outside parentheses; whitespace around an item is ignored, inside one it
 * is an error. An item is [NAME=]BODY[(REF,...)]: NAME names the node the
 * item makes, the references name the nodes it reads (else it reads the
 * previous item's node). BODY is fields separated by ':', the first naming
 * a registered layer kind, the rest its arguments. What the arguments mean
 * is up to the kind's codec (nnlib__layer_codec in src/layers/layer.h), so
 * a new layer kind adds its items by registering a codec in
 * src/layers/registry.c. The field helpers the codecs use are in
 * src/core/text.c. Two bodies
 * are not layers: "input:DIMS" declares a model input, and "last" right
 * after a recurrent item makes that layer return only its last step
 * (nnlib__recurrent_spec_last). One makes several: "transformer:..." is a
 * whole pre-norm block (spec_transformer.c).
 *
 * Items are built into the model one by one through the graph calls of
 * model.c, so a reference can only name a node made before it; a failing
 * item truncates the model back to where the call found it. */
#define _POSIX_C_SOURCE 200809L /* strtof's locale: localeconv() */
#include "nnlib_internal.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- parsing */

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

/* One item with its graph parts: NAME= before the body, (REF,...) after
 * it. item.text is the whole item, so messages show what was written;
 * item.fields are the body's, which is all a codec reads. */
typedef struct graph_item {
  nnlib__spec_item item;
  const char *name; /* NULL: unnamed */
  size_t name_length;
  const char *refs; /* between the parentheses; NULL: none */
  size_t refs_length;
  size_t ref_count;
} graph_item;

/* Column in the whole text of a character of the item. */
static size_t column_of(const nnlib__spec_item *item, const char *at) {
  return item->column + (size_t)(at - item->text);
}

/* text[begin, end) trimmed, as the item numbered index (no fields yet). */
static void locate_item(const char *text, size_t begin, size_t end,
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
}

/* The end of the item that starts at spec[begin]: the next ',' outside
 * parentheses (a reference list has commas of its own), or the end of the
 * text. Unbalanced parentheses are an error about the item. */
static nnlib_status find_item_end(const char *spec, size_t begin,
                                  size_t index, size_t *end) {
  size_t depth = 0, open = 0, i = begin;
  for (; spec[i] != '\0' && !(spec[i] == ',' && depth == 0); i++) {
    if (spec[i] == '(' && depth++ == 0)
      open = i;
    if (spec[i] != ')')
      continue;
    if (depth == 0) {
      size_t stray = i;
      while (spec[i] != '\0' && spec[i] != ',')
        i++;
      nnlib__spec_item item;
      locate_item(spec, begin, i, index, &item);
      return nnlib__spec_error(&item, "unbalanced parentheses: ')' at column "
                                      "%zu closes no '('",
                               stray + 1);
    }
    depth--;
  }
  if (depth > 0) {
    nnlib__spec_item item;
    locate_item(spec, begin, i, index, &item);
    return nnlib__spec_error(&item, "unbalanced parentheses: '(' at column "
                                    "%zu is never closed",
                             open + 1);
  }
  *end = i;
  return NNLIB_OK;
}

/* Splits the body text[begin, end) of the item at ':' into its fields. */
static nnlib_status split_fields(nnlib__spec_item *item, size_t begin,
                                 size_t end) {
  size_t start = begin;
  for (size_t i = begin; i <= end; i++) {
    if (i < end && item->text[i] != ':')
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

/* [NAME '='] body ['(' REFS ')'] of an item whose parentheses balance.
 * NAME is what comes before the first '=' ahead of any '('. */
static nnlib_status split_item(const char *text, size_t begin, size_t end,
                               size_t index, graph_item *g) {
  memset(g, 0, sizeof *g);
  nnlib__spec_item *item = &g->item;
  locate_item(text, begin, end, index, item);
  if (item->length == 0)
    return nnlib__spec_error(item, "empty item (two commas in a row, or a "
                                   "comma at the start or end)");
  for (size_t i = 0; i < item->length; i++)
    if (is_space(item->text[i]))
      return nnlib__spec_error(item, "whitespace at column %zu inside the "
                                     "item (allowed only around items)",
                               item->column + i);
  const char *paren = memchr(item->text, '(', item->length);
  size_t body_end = paren != NULL ? (size_t)(paren - item->text)
                                  : item->length;
  const char *equals = memchr(item->text, '=', body_end);
  size_t body_begin = 0;
  if (equals != NULL) {
    g->name = item->text;
    g->name_length = (size_t)(equals - item->text);
    body_begin = g->name_length + 1;
  }
  if (paren != NULL) {
    const char *close = memchr(paren, ')', item->length - body_end);
    const char *inner = memchr(paren + 1, '(', (size_t)(close - paren - 1));
    if (inner != NULL)
      return nnlib__spec_error(item, "'(' at column %zu inside the "
                                     "references (they are NAME,NAME,...)",
                               column_of(item, inner));
    if (close != item->text + item->length - 1)
      return nnlib__spec_error(item, "text after the ')' at column %zu (the "
                                     "references end the item)",
                               column_of(item, close));
    g->refs = paren + 1;
    g->refs_length = item->length - body_end - 2;
    g->ref_count = 1;
    for (size_t i = 0; i < g->refs_length; i++)
      g->ref_count += g->refs[i] == ',';
  }
  if (body_begin == body_end)
    return nnlib__spec_error(item, "no layer or input at column %zu (an "
                                   "item is [NAME=]LAYER[(REF,...)])",
                             item->column + body_begin);
  return split_fields(item, body_begin, body_end);
}

/* A constructor's argument errors become parse errors about the item. */
static nnlib_status parse_item(const nnlib__spec_item *item,
                               nnlib_layer **out) {
  const nnlib__spec_field *name = &item->fields[0];
  const nnlib__layer_codec *codec =
      nnlib__codec_for_name(name->text, name->length);
  if (codec == NULL || codec->parse_spec == NULL) {
    char known[512];
    nnlib__text t = {known, sizeof known, 0};
    nnlib__codec_append_names(&t);
    nnlib__text_append(&t, ", input, last, transformer");
    int shown = name->length > NNLIB__SPEC_SHOWN ? NNLIB__SPEC_SHOWN : (int)name->length;
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

/* The graph refusing an item (an input after layers on the implicit input,
 * say) is the description's fault: a parse error about the item. Running
 * out of memory stays what it is. */
static nnlib_status graph_refusal(const nnlib__spec_item *item,
                                  nnlib_status st) {
  if (st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY)
    return st;
  char detail[400];
  snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
  return nnlib__spec_error(item, "%s", detail);
}

/* NAME := [A-Za-z_][A-Za-z0-9_]*, 1 to 31 characters (as
 * nnlib_model_set_node_name). */
enum { NAME_MAX_LENGTH = 31 };

static bool is_name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (!first && c >= '0' && c <= '9');
}

static nnlib_status check_name_syntax(const nnlib__spec_item *item,
                                      const char *name, size_t length,
                                      const char *what) {
  bool ok = length >= 1 && length <= NAME_MAX_LENGTH;
  for (size_t i = 0; ok && i < length; i++)
    ok = is_name_char(name[i], i == 0);
  if (ok)
    return NNLIB_OK;
  int shown = length > NNLIB__SPEC_SHOWN ? NNLIB__SPEC_SHOWN : (int)length;
  return nnlib__spec_error(item, "bad %s '%.*s' at column %zu: a name is 1 "
                                 "to %d characters of [A-Za-z0-9_], starting "
                                 "with a letter or '_'",
                           what, shown, name, column_of(item, name),
                           NAME_MAX_LENGTH);
}

/* The item's NAME= is well formed and names no node of the model yet
 * (earlier items of this text and earlier calls included). */
static nnlib_status check_new_name(const nnlib_model *m, const graph_item *g) {
  NNLIB_TRY(check_name_syntax(&g->item, g->name, g->name_length, "name"));
  int64_t owner = nnlib__model_find_name(m, g->name, g->name_length);
  if (owner < 0)
    return NNLIB_OK;
  return nnlib__spec_error(&g->item, "the name '%.*s' at column %zu is used "
                                     "twice: node %lld already has it (names "
                                     "are unique in a model)",
                           (int)g->name_length, g->name,
                           column_of(&g->item, g->name), (long long)owner);
}

/* The nodes the item's references name, in order, into inputs[ref_count]. */
static nnlib_status resolve_refs(const nnlib_model *m, const graph_item *g,
                                 size_t *inputs) {
  const char *ref = g->refs, *end = g->refs + g->refs_length;
  for (size_t k = 0; k < g->ref_count; k++) {
    const char *comma = memchr(ref, ',', (size_t)(end - ref));
    size_t length = (size_t)((comma != NULL ? comma : end) - ref);
    NNLIB_TRY(check_name_syntax(&g->item, ref, length, "reference"));
    int64_t node = nnlib__model_find_name(m, ref, length);
    if (node < 0)
      return nnlib__spec_error(&g->item, "refers to '%.*s' at column %zu, "
                                         "which no earlier item defines (a "
                                         "node can only read nodes made "
                                         "before it, so cycles cannot be "
                                         "written)",
                               (int)length, ref, column_of(&g->item, ref));
    inputs[k] = (size_t)node;
    ref = comma != NULL ? comma + 1 : end;
  }
  return NNLIB_OK;
}

/* A merge layer reads two or more nodes, named by references; any other
 * layer one, the previous item's or the one named. At most
 * NNLIB__MAX_INPUTS, as nnlib_model_apply takes. */
static nnlib_status check_ref_count(const graph_item *g,
                                    const nnlib_layer *l) {
  const char *kind = l->ops->name(l);
  size_t min = nnlib__layer_min_inputs(l);
  if (nnlib__layer_is_merge(l) && g->ref_count < min)
    return nnlib__spec_error(&g->item, "%s merges %zu or more nodes, but "
                                       "the item names %zu: write "
                                       "%s(A,B,...)",
                             kind, min, g->ref_count, kind);
  if (!nnlib__layer_is_merge(l) && g->ref_count > 1)
    return nnlib__spec_error(&g->item, "%s reads one node, but the item "
                                       "names %zu (only add, concat and "
                                       "multiply read several)",
                             kind, g->ref_count);
  if (g->ref_count > NNLIB__MAX_INPUTS)
    return nnlib__spec_error(&g->item, "%s reads at most %d nodes, but the "
                                       "item names %zu",
                             kind, NNLIB__MAX_INPUTS, g->ref_count);
  return NNLIB_OK;
}

/* What building a description carries from one item to the next. */
typedef struct spec_builder {
  nnlib_model *m;
  int64_t previous;            /* node of the previous item; -1: none yet */
  nnlib_layer *previous_layer; /* its layer (NULL for an input), for last */
} spec_builder;

/* "input:DIMS", DIMS 1 to NNLIB_MAX_RANK - 1 integers joined by 'x'. */
static nnlib_status parse_input_shape(const nnlib__spec_item *item,
                                      nnlib__shape *shape) {
  NNLIB_TRY(nnlib__spec_fields(item, 2, 2));
  const nnlib__spec_field *f = &item->fields[1];
  memset(shape, 0, sizeof *shape);
  int64_t v = 0;
  bool digits = false;
  for (size_t i = 0; i <= f->length; i++) {
    char c = 'x'; /* the end reads as one more separator */
    if (i < f->length)
      c = f->text[i];
    bool ok;
    if (c >= '0' && c <= '9') {
      ok = v <= (NNLIB__BLAS_DIM_MAX - (c - '0')) / 10;
      v = v * 10 + (c - '0');
      digits = true;
    } else {
      ok = c == 'x' && digits && v >= 1 && shape->rank < NNLIB_MAX_RANK - 1;
      if (ok)
        shape->dims[shape->rank++] = v;
      v = 0;
      digits = false;
    }
    if (!ok) {
      char what[96];
      snprintf(what, sizeof what, "is not a shape DxDx... of 1 to %d "
                                  "integers in 1..%lld",
               NNLIB_MAX_RANK - 1, (long long)NNLIB__BLAS_DIM_MAX);
      return nnlib__spec_field_error(item, 1, what);
    }
  }
  return NNLIB_OK;
}

/* Declared through nnlib_model_input, which refuses an input after layers
 * on the implicit input and a shape too large to count. */
static nnlib_status build_input(spec_builder *b, const graph_item *g,
                                size_t *node) {
  if (g->refs != NULL)
    return nnlib__spec_error(&g->item, "an input reads no node, so it takes "
                                       "no references");
  nnlib__shape shape;
  NNLIB_TRY(parse_input_shape(&g->item, &shape));
  nnlib_node handle;
  NNLIB_TRY(graph_refusal(&g->item, nnlib_model_input(b->m, shape.dims,
                                                      shape.rank, &handle)));
  *node = b->m->node_count - 1;
  return NNLIB_OK;
}

/* Applies the item's layer to its references, or to the previous item's
 * node, or (first item, no references) as nnlib_model_add does. Takes l. */
static nnlib_status apply_layer(spec_builder *b, const graph_item *g,
                                nnlib_layer *l, size_t *node) {
  size_t inputs[NNLIB__MAX_INPUTS];
  nnlib_status st = check_ref_count(g, l);
  if (st == NNLIB_OK && g->ref_count > 0)
    st = resolve_refs(b->m, g, inputs);
  if (st != NNLIB_OK) {
    nnlib_layer_free(l);
    return st;
  }
  if (g->ref_count > 0) {
    st = nnlib__model_apply(b->m, l, inputs, g->ref_count, node);
  } else if (b->previous >= 0) {
    size_t previous = (size_t)b->previous;
    st = nnlib__model_apply(b->m, l, &previous, 1, node);
  } else {
    st = nnlib_model_add(b->m, l);
    *node = b->m->node_count - 1;
  }
  return graph_refusal(&g->item, st);
}

/* A transformer block reads one node: its reference or the previous item's
 * (the graph refuses what does not fit). */
static nnlib_status build_transformer(spec_builder *b, const graph_item *g,
                                      size_t *node) {
  size_t x;
  if (g->ref_count > 1)
    return nnlib__spec_error(&g->item, "transformer reads one node, but the "
                                       "item names %zu",
                             g->ref_count);
  if (g->ref_count == 1)
    NNLIB_TRY(resolve_refs(b->m, g, &x));
  else if (b->previous >= 0)
    x = (size_t)b->previous;
  else if (b->m->node_count > 0)
    x = b->m->node_count - 1;
  else
    return nnlib__spec_error(&g->item, "a transformer block reads [T, D] "
                                       "vectors: put it after an input or an "
                                       "embedding");
  nnlib_status st = nnlib__spec_transformer(b->m, &g->item, x, node);
  return st == NNLIB_ERR_PARSE ? st : graph_refusal(&g->item, st);
}

static nnlib_status build_item(spec_builder *b, const graph_item *g) {
  if (nnlib__spec_field_is(&g->item, 0, "last")) {
    if (g->name != NULL || g->refs != NULL)
      return nnlib__spec_error(&g->item, "\"last\" changes the item before "
                                         "it and makes no node: it takes no "
                                         "name and no references");
    return nnlib__recurrent_spec_last(&g->item, b->previous_layer);
  }
  if (g->name != NULL)
    NNLIB_TRY(check_new_name(b->m, g));
  size_t node = 0;
  nnlib_layer *l = NULL;
  if (nnlib__spec_field_is(&g->item, 0, "input")) {
    NNLIB_TRY(build_input(b, g, &node));
  } else if (nnlib__spec_field_is(&g->item, 0, "transformer")) {
    NNLIB_TRY(build_transformer(b, g, &node));
  } else {
    NNLIB_TRY(parse_item(&g->item, &l));
    NNLIB_TRY(apply_layer(b, g, l, &node));
  }
  b->previous = (int64_t)node;
  b->previous_layer = l;
  if (g->name == NULL)
    return NNLIB_OK;
  return graph_refusal(&g->item, nnlib__model_set_name(b->m, node, g->name,
                                                       g->name_length));
}

/* Builds every item in order; stops at the first error. */
static nnlib_status build_all(spec_builder *b, const char *spec) {
  size_t begin = 0;
  for (size_t index = 1;; index++) {
    size_t end = 0;
    graph_item g;
    NNLIB_TRY(find_item_end(spec, begin, index, &end));
    NNLIB_TRY(split_item(spec, begin, end, index, &g));
    NNLIB_TRY(build_item(b, &g));
    if (spec[end] == '\0')
      return NNLIB_OK;
    begin = end + 1;
  }
}

nnlib_status nnlib_model_add_spec(nnlib_model *m, const char *spec) {
  NNLIB_CHECK_ARG(m != NULL && spec != NULL,
                  "nnlib_model_add_spec: model or spec is NULL");
  if (m->compiled)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_add_spec: the model is already compiled");
  size_t before = m->node_count;
  spec_builder b = {m, -1, NULL};
  nnlib_status st = build_all(&b, spec);
  if (st != NNLIB_OK)
    nnlib__model_truncate(m, before); /* the model is as it was */
  return st;
}

/* ----------------------------------------------------------- printing */

static bool is_implicit_input(const nnlib_model *m, size_t v) {
  return m->implicit_input && m->input_count > 0 && m->inputs[0] == v;
}

/* Whether node r's item names its inputs: they are not exactly the node of
 * the item before (nodes print in order, one item each). */
static bool prints_refs(const nnlib_model *m, size_t r) {
  const nnlib__node *n = &m->nodes[r];
  return n->layer != NULL && !(n->input_count == 1 && n->inputs[0] + 1 == r);
}

/* Whether node v's item carries NAME=: an input always (except the
 * implicit one, which has no item), any other node when an item with
 * references reads it. */
static bool prints_name(const nnlib_model *m, size_t v) {
  if (m->nodes[v].layer == NULL && !is_implicit_input(m, v))
    return true;
  for (size_t r = v + 1; r < m->node_count; r++) {
    if (!prints_refs(m, r))
      continue;
    for (size_t k = 0; k < m->nodes[r].input_count; k++)
      if (m->nodes[r].inputs[k] == v)
        return true;
  }
  return false;
}

enum { NAME_BUF = NAME_MAX_LENGTH + 1 };

/* Node v's name in the text: its own, else n<v> (n<v>_2, ... when the
 * model already uses that name). Deterministic, so printing the reparsed
 * text, where v carries that name, gives the same text. */
static const char *print_name(const nnlib_model *m, size_t v,
                              char buf[NAME_BUF]) {
  if (m->nodes[v].name != NULL)
    return m->nodes[v].name;
  snprintf(buf, NAME_BUF, "n%zu", v);
  for (unsigned k = 2; nnlib__model_find_name(m, buf, strlen(buf)) >= 0; k++)
    snprintf(buf, NAME_BUF, "n%zu_%u", v, k);
  return buf;
}

static void print_input(const nnlib_model *m, size_t v, nnlib__text *t) {
  const nnlib__shape *s = &m->nodes[v].shape;
  nnlib__text_append(t, "input:");
  for (size_t i = 0; i < s->rank; i++)
    nnlib__text_append(t, "%s%lld", i > 0 ? "x" : "", (long long)s->dims[i]);
}

/* The layer's item with "(REFS)" after its body: a codec may write items
 * that follow it (",last"), which go after the references. */
static nnlib_status print_layer(const nnlib_model *m, size_t v,
                                nnlib__text *t) {
  const nnlib__node *n = &m->nodes[v];
  char item[256];
  nnlib__text own = {item, sizeof item, 0};
  nnlib__codec_for_kind(n->layer->ops->kind)->write_spec(n->layer, &own);
  if (own.length >= sizeof item)
    return nnlib__error(NNLIB_ERR_INTERNAL, "nnlib_model_get_spec: the item "
                                            "of node %zu is longer than %zu",
                        v, sizeof item - 1);
  size_t body = strcspn(item, ",");
  nnlib__text_append(t, "%.*s", (int)body, item);
  if (prints_refs(m, v)) {
    for (size_t k = 0; k < n->input_count; k++) {
      char buf[NAME_BUF];
      nnlib__text_append(t, "%s%s", k > 0 ? "," : "(",
                         print_name(m, n->inputs[k], buf));
    }
    nnlib__text_append(t, ")");
  }
  nnlib__text_append(t, "%s", item + body);
  return NNLIB_OK;
}

/* A graph the grammar cannot write: an output other than the last item,
 * or the implicit input read out of order (it has no item to name). */
static nnlib_status check_printable(const nnlib_model *m) {
  if (m->output_set && m->output + 1 != m->node_count)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "nnlib_model_get_spec: the output is node %zu, not "
                        "the newest node %zu; a description's output is its "
                        "last item",
                        m->output, m->node_count - 1);
  for (size_t i = 0; i < m->input_count; i++)
    if (is_implicit_input(m, m->inputs[i]) && prints_name(m, m->inputs[i]))
      return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                          "nnlib_model_get_spec: the implicit input (node "
                          "%zu) is read by a node other than the first "
                          "layer; declare it with nnlib_model_input to "
                          "describe this graph",
                          m->inputs[i]);
  return NNLIB_OK;
}

static nnlib_status print_graph(const nnlib_model *m, nnlib__text *t) {
  NNLIB_TRY(check_printable(m));
  const char *sep = "";
  for (size_t v = 0; v < m->node_count; v++) {
    if (is_implicit_input(m, v))
      continue;
    nnlib__text_append(t, "%s", sep);
    sep = ",";
    if (prints_name(m, v)) {
      char buf[NAME_BUF];
      nnlib__text_append(t, "%s=", print_name(m, v, buf));
    }
    if (m->nodes[v].layer == NULL)
      print_input(m, v, t);
    else
      NNLIB_TRY(print_layer(m, v, t));
  }
  return NNLIB_OK;
}

/* 1.2's text: the layers in order, nothing else. */
static void print_chain(const nnlib_model *m, nnlib__text *t) {
  for (size_t i = 0; i < m->layer_count; i++) {
    if (i > 0)
      nnlib__text_append(t, ",");
    nnlib__codec_for_kind(m->layers[i]->ops->kind)
        ->write_spec(m->layers[i], t);
  }
}

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
  /* a declared input with no layer yet prints as its input item */
  bool inputs_only = m->layer_count == 0 && m->input_count > 0;
  if (nnlib__model_is_chain(m) && !inputs_only)
    print_chain(m, &t);
  else
    NNLIB_TRY(print_graph(m, &t));
  if (needed != NULL)
    *needed = t.length;
  return NNLIB_OK;
}
