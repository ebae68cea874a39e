/* workspace.c - per-thread inference buffers over a shared, read-only model. */
#include "nnlib_internal.h"

struct nnlib_workspace {
  const nnlib_model *model;
  nnlib__buffers bufs;
};

nnlib_status nnlib_workspace_create(nnlib_workspace **out,
                                    const nnlib_model *model) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_workspace_create: out is NULL");
  *out = NULL;
  NNLIB_TRY(nnlib__check_compiled(model, "nnlib_workspace_create"));
  nnlib_workspace *ws = nnlib__calloc(1, sizeof *ws);
  if (ws == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_workspace_create: no memory");
  nnlib_status st = nnlib__buffers_alloc(model, &ws->bufs, false);
  if (st != NNLIB_OK) {
    nnlib__free(ws);
    return st;
  }
  ws->model = model;
  *out = ws;
  return NNLIB_OK;
}

void nnlib_workspace_free(nnlib_workspace *ws) {
  if (ws == NULL)
    return;
  nnlib__buffers_free(&ws->bufs);
  nnlib__free(ws);
}

nnlib_status nnlib_workspace_predict_inputs(nnlib_workspace *ws,
                                            const nnlib_tensor *const *x,
                                            size_t count, nnlib_tensor *y) {
  NNLIB_CHECK_ARG(ws != NULL, "nnlib_workspace_predict: workspace is NULL");
  return nnlib__model_predict(ws->model, &ws->bufs, x, count, y);
}

nnlib_status nnlib_workspace_predict(nnlib_workspace *ws, const nnlib_tensor *x,
                                     nnlib_tensor *y) {
  return nnlib_workspace_predict_inputs(ws, &x, 1, y);
}
