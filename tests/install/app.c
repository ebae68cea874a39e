/* A program outside the project, built against the installed nnlib. */
#include <nnlib.h>
#include <stdio.h>

int main(void) {
  nnlib_model *m;
  nnlib_layer *d;
  if (nnlib_model_create(&m) != NNLIB_OK || nnlib_dense_create(&d, 3, 2, 1) ||
      nnlib_model_add(m, d))
    return 1;
  int64_t in[1] = {3};
  if (nnlib_model_compile(m, in, 1, 4, NNLIB_LOSS_NONE, NULL, 1) != NNLIB_OK)
    return 1;
  int64_t params = 0;
  nnlib_model_get_param_count(m, &params);
  printf("nnlib %s, %lld parameters\n", nnlib_version_string(),
         (long long)params);
  nnlib_model_free(m);
  return params == 8 && nnlib_version() / 10000 == NNLIB_VERSION_MAJOR ? 0 : 1;
}
