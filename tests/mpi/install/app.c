/* An outside program against the installed libnnlib_mpi: the header alone
 * (no <mpi.h> needed) and the library's version, which is nnlib's. */
#include <nnlib_mpi.h>

#include <stdio.h>

int main(void) {
  nnlib_mpi_fit_options o;
  if (nnlib_mpi_fit_options_init(&o) != NNLIB_OK || o.epochs != 1)
    return 1;
  printf("nnlib_mpi %u, nnlib %u\n", nnlib_mpi_version(), nnlib_version());
  return nnlib_mpi_version() == nnlib_version() ? 0 : 1;
}
