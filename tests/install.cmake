# The README's install lines, as written, into /usr/local of a throwaway
# root (a mount namespace with overlays, made by the script), as root and
# through sudo; skipped (exit 77, with the reason) where namespaces are not
# permitted and for sanitized builds.
add_test(NAME install_readme
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install/readme_install.sh
          ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} "${NNLIB_SANITIZE}")
set_tests_properties(install_readme PROPERTIES
  SKIP_RETURN_CODE 77 TIMEOUT 300)
