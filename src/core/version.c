/* version.c - the version of the library loaded at run time. */
#include "core/core.h"

unsigned nnlib_version(void) { return NNLIB_VERSION_NUMBER; }

const char *nnlib_version_string(void) { return NNLIB_VERSION_STRING; }
