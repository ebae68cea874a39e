/* export_stub.c - STUB while the ONNX writer is written: every call refuses with
 * NNLIB_ERR_UNSUPPORTED. */
#include "nnlib_internal.h"

nnlib_status nnlib_model_save_onnx(const nnlib_model *model,
                                   const char *path) {
  (void)model;
  (void)path;
  return nnlib__error(NNLIB_ERR_UNSUPPORTED, "ONNX: not built yet");
}

nnlib_status nnlib_model_save_onnx_to_buffer(void **data, size_t *size,
                                             const nnlib_model *model) {
  (void)data;
  (void)size;
  (void)model;
  return nnlib__error(NNLIB_ERR_UNSUPPORTED, "ONNX: not built yet");
}
