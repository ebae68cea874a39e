/* dataset.c - where an MNIST-format data set lives and which files make up a
 * split. The files keep the names of the original distribution, each either
 * gzip-compressed (name.gz, as Debian's dataset-fashion-mnist ships them) or
 * plain (name, as after gunzip). */
#include "nnlib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char DEFAULT_DIR[] = "/usr/share/datasets/fashion-mnist";
enum { NUM_CLASSES = 10 };

const char *nnlib_dataset_default_dir(void) {
  const char *dir = getenv("NNLIB_DATA_DIR");
  return dir != NULL && dir[0] != '\0' ? dir : DEFAULT_DIR;
}

static bool file_exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return false;
  fclose(f);
  return true;
}

/* dir/base.gz if it exists, else dir/base if it exists, in a new string;
 * NNLIB_ERR_IO names both candidates when neither does. */
static nnlib_status resolve(const char *dir, const char *base, char **out) {
  size_t dir_len = strlen(dir);
  const char *sep = dir_len > 0 && dir[dir_len - 1] == '/' ? "" : "/";
  size_t bytes = dir_len + strlen(sep) + strlen(base) + sizeof ".gz";
  char *path = nnlib__alloc(bytes);
  if (path == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "dataset: no memory for a path of %zu bytes", bytes);
  snprintf(path, bytes, "%s%s%s.gz", dir, sep, base);
  if (!file_exists(path)) {
    path[strlen(path) - strlen(".gz")] = '\0';
    if (!file_exists(path)) {
      nnlib__free(path);
      return nnlib__error(NNLIB_ERR_IO,
                          "dataset: neither %s%s%s.gz nor the plain file "
                          "exists (set NNLIB_DATA_DIR, or install the "
                          "dataset-fashion-mnist package)",
                          dir, sep, base);
    }
  }
  *out = path;
  return NNLIB_OK;
}

/* Loads both files of a split given their paths. */
static nnlib_status load_pair(const char *image_path, const char *label_path,
                              int64_t limit, int one_hot,
                              nnlib_tensor **images, nnlib_tensor **labels) {
  NNLIB_TRY(nnlib_idx_load_images(images, image_path, limit));
  nnlib_status st =
      nnlib_idx_load_labels(labels, label_path, NUM_CLASSES, one_hot, limit);
  if (st == NNLIB_OK && (*images)->shape[0] != (*labels)->shape[0])
    st = nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                      "dataset: %s holds %lld images but %s holds %lld "
                      "labels",
                      image_path, (long long)(*images)->shape[0], label_path,
                      (long long)(*labels)->shape[0]);
  if (st != NNLIB_OK) {
    nnlib_tensor_free(*images);
    nnlib_tensor_free(*labels);
    *images = NULL;
    *labels = NULL;
  }
  return st;
}

nnlib_status nnlib_dataset_load_split(nnlib_tensor **images,
                                      nnlib_tensor **labels, const char *dir,
                                      nnlib_split split, int64_t limit,
                                      int one_hot) {
  static const char *const files[2][2] = {
      {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
      {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}};
  if (images != NULL)
    *images = NULL;
  if (labels != NULL)
    *labels = NULL;
  NNLIB_CHECK_ARG(images != NULL && labels != NULL,
                  "nnlib_dataset_load_split: images and labels must not be "
                  "NULL");
  NNLIB_CHECK_ARG(split == NNLIB_SPLIT_TRAIN || split == NNLIB_SPLIT_TEST,
                  "nnlib_dataset_load_split: split %d is not a split",
                  (int)split);
  NNLIB_CHECK_ARG(limit >= 0,
                  "nnlib_dataset_load_split: limit is %lld, must be >= 0",
                  (long long)limit);
  NNLIB_CHECK_ARG(one_hot == 0 || one_hot == 1,
                  "nnlib_dataset_load_split: one_hot must be 0 or 1");
  if (dir == NULL)
    dir = nnlib_dataset_default_dir();
  char *image_path = NULL, *label_path = NULL;
  nnlib_status st = resolve(dir, files[split][0], &image_path);
  if (st == NNLIB_OK)
    st = resolve(dir, files[split][1], &label_path);
  if (st == NNLIB_OK)
    st = load_pair(image_path, label_path, limit, one_hot, images, labels);
  nnlib__free(image_path);
  nnlib__free(label_path);
  return st;
}

/* The 1.0 order (deprecated: what the caller frees comes first). */
nnlib_status nnlib_dataset_load(const char *dir, nnlib_split split,
                                int64_t limit, int one_hot,
                                nnlib_tensor **images, nnlib_tensor **labels) {
  return nnlib_dataset_load_split(images, labels, dir, split, limit, one_hot);
}
