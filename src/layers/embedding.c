/* embedding.c - STUB: being written; replaced wholesale by its implementation. */
#include "layers/layer.h"

static nnlib_status stub_parse(const nnlib__spec_item *item, nnlib_layer **out) {
  (void)item;
  *out = NULL;
  return nnlib__error(NNLIB_ERR_UNSUPPORTED, "embedding: not built yet");
}
static void stub_write_spec(const nnlib_layer *l, nnlib__text *out) {
  (void)l;
  (void)out;
}
static void stub_write_config(const nnlib_layer *l, nnlib__writer *w) {
  (void)l;
  (void)w;
}
static nnlib_status stub_read_config(nnlib__reader *r, nnlib_layer **out) {
  (void)r;
  *out = NULL;
  return nnlib__error(NNLIB_ERR_UNSUPPORTED, "embedding: not built yet");
}
const nnlib__layer_codec nnlib__embedding_codec = {
    NNLIB_LAYER_EMBEDDING, {"embedding"}, stub_parse, stub_write_spec,
    stub_write_config, stub_read_config};
