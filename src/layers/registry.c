/* registry.c - THE LAYER REGISTRY: one row per layer kind that model
 * descriptions and model files know, looked up by the kind's pinned number
 * or by a description item's name. A new kind adds its codec here (see
 * nnlib__layer_codec in layer.h). */
#include "layers/layer.h"

#include <string.h>

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
    &nnlib__add_codec,
    &nnlib__concat_codec,
    &nnlib__multiply_codec,
    &nnlib__rnn_codec,
    &nnlib__lstm_codec,
    &nnlib__gru_codec,
    &nnlib__embedding_codec,
    &nnlib__positional_codec,
    &nnlib__layernorm_codec,
    &nnlib__attention_codec,
    &nnlib__linear_codec,
    &nnlib__transpose_codec,
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

void nnlib__codec_append_names(nnlib__text *t) {
  const char *sep = "";
  for (size_t i = 0; i < REGISTRY_SIZE; i++)
    for (size_t n = 0; n < NNLIB__CODEC_MAX_NAMES; n++) {
      if (registry[i]->spec_names[n] == NULL)
        break;
      nnlib__text_append(t, "%s%s", sep, registry[i]->spec_names[n]);
      sep = ", ";
    }
}

