/* fuzz_onnx: nnlib_model_load_onnx_buffer on arbitrary bytes (seeds: small
 * ONNX models from ONNX's backend tests and PyTorch exports, in
 * fuzz/corpus/onnx/). Whatever fails must fail with a status a hostile
 * file may give and a message; whatever loads must predict one sample of
 * zeros (token ids 0 for an input an embedding reads) when the pass is
 * cheap enough, with a finite-or-NUMERICAL result. Nothing may leak. */
#include "fuzz_common.h"

/* One sample of zeros per input, then predict. */
static void predict_zeros(nnlib_model *m) {
  size_t inputs = nnlib_model_get_input_count(m);
  nnlib_tensor *x[NNLIB_MAX_RANK * 8] = {NULL}, *y = NULL;
  if (inputs == 0 || inputs > sizeof x / sizeof x[0] ||
      !fuzz_cheap_enough(m, 1))
    return;
  nnlib_status st = NNLIB_OK;
  for (size_t k = 0; k < inputs && st == NNLIB_OK; k++) {
    int64_t dims[NNLIB_MAX_RANK + 1];
    size_t rank = 0;
    nnlib_dtype dtype;
    dims[0] = 1;
    FUZZ_CHECK(nnlib_model_get_input_shape_at(m, k, dims + 1, NNLIB_MAX_RANK,
                                              &rank) == NNLIB_OK);
    FUZZ_CHECK(nnlib_model_get_input_dtype(m, k, &dtype) == NNLIB_OK);
    st = dtype == NNLIB_DTYPE_INT32
             ? nnlib_tensor_create_int32(&x[k], dims, rank + 1)
             : nnlib_tensor_create(&x[k], dims, rank + 1);
    fuzz_expect(st);
  }
  int64_t out[NNLIB_MAX_RANK + 1];
  size_t out_rank = 0;
  out[0] = 1;
  if (st == NNLIB_OK) {
    FUZZ_CHECK(nnlib_model_get_output_shape(m, out + 1, NNLIB_MAX_RANK,
                                            &out_rank) == NNLIB_OK);
    st = nnlib_tensor_create(&y, out, out_rank + 1);
    fuzz_expect(st);
  }
  if (st == NNLIB_OK) {
    st = nnlib_model_predict_inputs(m, (const nnlib_tensor *const *)x, inputs,
                                    y);
    fuzz_expect(st);
  }
  for (size_t k = 0; k < inputs; k++)
    nnlib_tensor_free(x[k]);
  nnlib_tensor_free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_begin();
  nnlib_onnx_options o;
  FUZZ_CHECK(nnlib_onnx_options_init(&o) == NNLIB_OK);
  o.max_batch = 2;
  nnlib_model *m = (nnlib_model *)&o; /* must come back NULL on failure */
  nnlib_status st = nnlib_model_load_onnx_buffer(&m, data, size, &o);
  fuzz_expect(st);
  if (st != NNLIB_OK) {
    FUZZ_CHECK(m == NULL);
  } else {
    predict_zeros(m);
    nnlib_model_free(m);
  }
  fuzz_end();
  return 0;
}
