/* import_stub.c - STUB while the ONNX reader is written: every call refuses with
 * NNLIB_ERR_UNSUPPORTED. */
#include "nnlib_internal.h"

nnlib_status nnlib_onnx_options_init_size(nnlib_onnx_options *o,
                                          size_t struct_size) {
  (void)o;
  (void)struct_size;
  return nnlib__error(NNLIB_ERR_UNSUPPORTED, "ONNX: not built yet");
}

nnlib_status nnlib_model_load_onnx(nnlib_model **out, const char *path,
                                   const nnlib_onnx_options *options) {
  (void)path;
  (void)options;
  if (out != NULL)
    *out = NULL;
  return nnlib__error(NNLIB_ERR_UNSUPPORTED, "ONNX: not built yet");
}

nnlib_status nnlib_model_load_onnx_buffer(nnlib_model **out, const void *data,
                                          size_t size,
                                          const nnlib_onnx_options *options) {
  (void)data;
  (void)size;
  (void)options;
  if (out != NULL)
    *out = NULL;
  return nnlib__error(NNLIB_ERR_UNSUPPORTED, "ONNX: not built yet");
}
