/* file.c - reading a whole file for the loaders (.nnl model files,
 * ONNX): a regular file only, every byte of it, each failure NNLIB_ERR_IO
 * naming what could not be done and why. */
#define _POSIX_C_SOURCE 200809L /* strerror_r */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static nnlib_status read_error(const char *who, const char *doing,
                               const char *path, int err) {
  char reason[128] = "unknown error";
  strerror_r(err, reason, sizeof reason);
  return nnlib__error(NNLIB_ERR_IO, "%s: cannot %s %s: %s", who, doing, path,
                      reason);
}

/* Reads up to `size` bytes of fd into buf; *got those read (fewer when
 * the file shrank meanwhile: it then reads as truncated). */
static nnlib_status read_all(const char *who, const char *path, int fd,
                             unsigned char *buf, size_t size, size_t *got) {
  *got = 0;
  while (*got < size) {
    ssize_t n = read(fd, buf + *got, size - *got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return read_error(who, "read", path, errno);
    if (n == 0)
      break;
    *got += (size_t)n;
  }
  return NNLIB_OK;
}

/* Only a regular file is read, so that a directory (which fopen opens on Linux,
 * its size then LONG_MAX) or a FIFO is NNLIB_ERR_IO instead of an
 * allocation of a bogus size or a block. O_NONBLOCK so that a FIFO is
 * refused instead of blocking the open. */
nnlib_status nnlib__read_file(const char *who, const char *path,
                              unsigned char **data, size_t *size) {
  int fd = open(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0)
    return read_error(who, "open", path, errno);
  struct stat st;
  nnlib_status status = NNLIB_OK;
  if (fstat(fd, &st) != 0)
    status = read_error(who, "inspect", path, errno);
  else if (!S_ISREG(st.st_mode))
    status =
        nnlib__error(NNLIB_ERR_IO, "%s: %s is not a regular file", who, path);
  unsigned char *buf = NULL;
  size_t got = 0;
  if (status == NNLIB_OK) {
    buf = nnlib__alloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (buf == NULL)
      status = nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                            "%s: no memory for %lld bytes of %s", who,
                            (long long)st.st_size, path);
  }
  if (status == NNLIB_OK)
    status = read_all(who, path, fd, buf, (size_t)st.st_size, &got);
  close(fd);
  if (status != NNLIB_OK) {
    nnlib__free(buf);
    return status;
  }
  *data = buf;
  *size = got;
  return NNLIB_OK;
}
