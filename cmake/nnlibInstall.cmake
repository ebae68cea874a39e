# Install steps that need the install prefix, which is known only at install
# time (`cmake --install build --prefix DIR` overrides CMAKE_INSTALL_PREFIX).

# nnlib_install_pc(TEMPLATE): installs TEMPLATE (NAME.pc.in) as
# <libdir>/pkgconfig/NAME.pc with `prefix=` the prefix it is installed into,
# so that pkg-config prints plain paths (-I/usr/local/include, not
# -I/usr/local/lib/pkgconfig/../../include). @VAR@ in TEMPLATE is replaced
# now, except @NNLIB_PC_PREFIX@, replaced at install time; @NNLIB_PC_LIBDIR@
# and @NNLIB_PC_INCLUDEDIR@ are the directories written from ${prefix}.
function(nnlib_install_pc template)
  get_filename_component(name "${template}" NAME)
  string(REGEX REPLACE "\\.pc\\.in$" "" name "${name}")
  foreach(kind LIBDIR INCLUDEDIR)
    if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
      set(NNLIB_PC_${kind} "${CMAKE_INSTALL_${kind}}")
    else()
      set(NNLIB_PC_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}")
    endif()
  endforeach()
  set(NNLIB_PC_PREFIX "@NNLIB_PC_PREFIX@") # kept for the install-time pass
  set(staged "${PROJECT_BINARY_DIR}/${name}.pc.prefixless")
  configure_file("${template}" "${staged}" @ONLY)
  # The build tree's copy names the configured prefix.
  set(NNLIB_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  configure_file("${staged}" "${PROJECT_BINARY_DIR}/${name}.pc" @ONLY)
  # A scratch directory of its own: two installs of one build tree into
  # different prefixes may run at once (the install tests do).
  install(CODE "
    set(NNLIB_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
    string(RANDOM LENGTH 16 _nnlib_pc_key)
    set(_nnlib_pc_dir \"${PROJECT_BINARY_DIR}/pc-\${_nnlib_pc_key}\")
    configure_file(\"${staged}\" \"\${_nnlib_pc_dir}/${name}.pc\" @ONLY)
    file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\"
         TYPE FILE FILES \"\${_nnlib_pc_dir}/${name}.pc\")
    file(REMOVE_RECURSE \"\${_nnlib_pc_dir}\")")
endfunction()

# nnlib_install_ldconfig(): the last install step. Where the library goes
# into a directory the dynamic linker searches (/usr/local/lib on Debian,
# listed in /etc/ld.so.conf.d/libc.conf), it runs ldconfig, so that programs
# find the new libnnlib.so.1 at once; elsewhere it says how to run them.
# Staged installs (DESTDIR set, as packages do) leave the cache alone.
function(nnlib_install_ldconfig)
  install(CODE "set(_nnlib_libdir \"${CMAKE_INSTALL_LIBDIR}\")")
  install(CODE [[
    if(NOT IS_ABSOLUTE "${_nnlib_libdir}")
      set(_nnlib_libdir "${CMAKE_INSTALL_PREFIX}/${_nnlib_libdir}")
    endif()
    find_program(_nnlib_ldconfig ldconfig PATHS /sbin /usr/sbin)
    if("$ENV{DESTDIR}" STREQUAL "" AND _nnlib_ldconfig)
      # The directories ld.so searches, one "DIR: (from FILE:LINE)" line each.
      execute_process(COMMAND "${_nnlib_ldconfig}" -v -N -X
                      OUTPUT_VARIABLE _nnlib_out ERROR_QUIET)
      string(REGEX MATCHALL "(^|\n)/[^\n:]*:" _nnlib_dirs "${_nnlib_out}")
      file(REAL_PATH "${_nnlib_libdir}" _nnlib_real)
      set(_nnlib_searched FALSE)
      foreach(_nnlib_dir IN LISTS _nnlib_dirs)
        string(REGEX REPLACE "^\n?(.*):$" "\\1" _nnlib_dir "${_nnlib_dir}")
        file(REAL_PATH "${_nnlib_dir}" _nnlib_dir)
        if(_nnlib_dir STREQUAL _nnlib_real)
          set(_nnlib_searched TRUE)
        endif()
      endforeach()
      if(_nnlib_searched)
        message(STATUS "Updating the dynamic linker's cache: ldconfig")
        execute_process(COMMAND "${_nnlib_ldconfig}" RESULT_VARIABLE _nnlib_rc)
        if(NOT _nnlib_rc EQUAL 0)
          message(WARNING "ldconfig failed: run `sudo ldconfig` (or ldconfig "
                          "as root) so that programs find libnnlib.so.1")
        endif()
      else()
        message(STATUS "${_nnlib_libdir} is not on the dynamic linker's path: "
                       "run programs with LD_LIBRARY_PATH=${_nnlib_libdir} or "
                       "link them with -Wl,-rpath,${_nnlib_libdir}")
      endif()
    endif()
  ]])
endfunction()
