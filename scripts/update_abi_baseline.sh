#!/usr/bin/env bash
# Rewrites abi/nnlib.abi, the ABI baseline scripts/check_abi.sh compares
# every build with (abidw of a gcc -O2 -g build, types outside include/
# marked private). Run it, and commit the result in the same change:
#   - after adding functions (a minor release: they go in a new version
#     node of cmake/nnlib.map, e.g. NNLIB_1.1 { ... } NNLIB_1.0;);
#   - after a major version bump (NNLIB_VERSION_MAJOR and the SONAME moved);
#   - before 1.0.0 is released, after any intended change of the API.
# Never to silence check_abi.sh on an unintended change.
set -euo pipefail
exec "$(dirname "$0")/check_abi.sh" --update
