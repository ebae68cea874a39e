/* file.c - whole files for the loaders and savers (.nnl model files,
 * ONNX): reading a regular file only, every byte of it; writing through a
 * temporary file renamed over the target, so that a failed save leaves
 * the file that was there. Each failure NNLIB_ERR_IO naming what could
 * not be done and why. */
#define _POSIX_C_SOURCE 200809L /* strerror_r, mkstemp, fsync, O_DIRECTORY */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ------------------------------------------------------------ writing */

static nnlib_status write_error(const char *who, const char *doing,
                                const char *path, int err) {
  char reason[128] = "unknown error";
  strerror_r(err, reason, sizeof reason);
  return nnlib__error(NNLIB_ERR_IO, "%s: %s %s: %s", who, doing, path, reason);
}

static nnlib_status write_all(const char *who, int fd,
                              const unsigned char *data, size_t size,
                              const char *tmp) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return write_error(who, "writing", tmp, n < 0 ? errno : EIO);
    data += n;
    size -= (size_t)n;
  }
  return NNLIB_OK;
}

/* A new file gets 0644 (mkstemp makes 0600); a replaced one keeps its mode.
 * umask cannot be read without changing it, which is not thread-safe. */
static void set_mode(int fd, const char *path) {
  struct stat st;
  mode_t mode = 0644;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
    mode = st.st_mode & 07777;
  (void)fchmod(fd, mode);
}

/* Makes the rename durable; a directory that cannot be synced (some file
 * systems) does not make the save fail: the file itself is complete. */
static void sync_directory(const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[4096];
  if (slash == NULL)
    snprintf(dir, sizeof dir, ".");
  else if ((size_t)(slash - path) < sizeof dir)
    snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path),
             path);
  else
    return;
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

nnlib_status nnlib__write_file_atomically(const char *who, const char *path,
                                          const unsigned char *data,
                                          size_t size) {
  /* rename would replace a directory's entry or a device node (as root,
   * /dev/full itself): only regular files are replaced */
  struct stat target;
  if (stat(path, &target) == 0 && !S_ISREG(target.st_mode))
    return nnlib__error(NNLIB_ERR_IO, "%s: %s exists and is not a regular file",
                        who, path);
  size_t length = strlen(path);
  char *tmp = nnlib__alloc(length + 12);
  if (tmp == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "%s: no memory", who);
  memcpy(tmp, path, length);
  memcpy(tmp + length, ".tmp-XXXXXX", 12);
  nnlib_status st = NNLIB_OK;
  int fd = mkstemp(tmp);
  if (fd < 0) {
    st = write_error(who, "creating a temporary file", tmp, errno);
    nnlib__free(tmp);
    return st;
  }
  set_mode(fd, path);
  st = write_all(who, fd, data, size, tmp);
  if (st == NNLIB_OK && fsync(fd) != 0)
    st = write_error(who, "syncing", tmp, errno);
  if (close(fd) != 0 && st == NNLIB_OK)
    st = write_error(who, "closing", tmp, errno);
  if (st == NNLIB_OK && rename(tmp, path) != 0)
    st = write_error(who, "renaming the temporary file to", path, errno);
  if (st != NNLIB_OK)
    (void)unlink(tmp);
  else
    sync_directory(path);
  nnlib__free(tmp);
  return st;
}
