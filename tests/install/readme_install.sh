#!/usr/bin/env bash
# The README's install lines, as written, into the default prefix of a
# throwaway root: a private mount namespace where /usr/local and /etc are
# overlays whose writes land in a tmpfs that vanishes with the test. Any
# nnlib already in /usr/local is removed there first and ld.so's cache
# rebuilt, so the root is a fresh machine's as far as nnlib goes.
#
# The README's block (after "Build and install the library"):
#   cmake -S . -B build && cmake --build build -j
#   sudo cmake --install build       # as root without sudo: cmake --install build
#   cc xor.c $(pkg-config --cflags --libs nnlib) -o xor && ./xor
# The first line is how ctest's build directory was made; the test runs the
# other two in a directory where `build` is that build directory and xor.c
# is the README's program, twice, each time in a new throwaway root:
#   root   the line after "as root without sudo:", with no sudo on PATH
#   sudo   the line as written, `sudo` being a stand-in that runs the command
#          with root's environment (env_reset and secure_path, as sudo does)
# and checks that the install alone made ./xor find libnnlib.so.1 (no
# LD_LIBRARY_PATH, no manual ldconfig) and that pkg-config prints plain
# paths: -I/usr/local/include and nothing of OpenBLAS.
#
# Usage: readme_install.sh BUILD_DIR SOURCE_DIR [SANITIZERS]
# Exit status 77 (a skip, with the reason) when not run as root, where mount
# namespaces or overlays are not permitted, or for a sanitized build, whose
# library needs the sanitizer runtime in the program.
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd) sanitize=${3:-}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

skip() { echo "SKIP: $*"; exit 77; }

# ---------------------------------------------------------------- outside
if [ -z "${NNLIB_THROWAWAY_ROOT:-}" ]; then
  [ -z "$sanitize" ] || skip "a library built with -fsanitize=$sanitize needs the sanitizer runtime in the README's plain cc program"
  command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
  # Root only: in a user namespace the overlays of root-owned /usr/local and
  # /etc stay read-only.
  [ "$(id -u)" -eq 0 ] || skip "needs root to write the overlays of /usr/local and /etc (CI runs as root)"
  ns=(unshare --mount --propagation private)
  "${ns[@]}" true 2>/dev/null ||
    skip "mount namespaces are not permitted here (unshare --mount failed)"
  # the namespace's tmpfs is mounted here and vanishes with the namespace
  NNLIB_THROWAWAY_SCRATCH=$(mktemp -d)
  NNLIB_THROWAWAY_OUTER_NS=$(readlink /proc/self/ns/mnt)
  export NNLIB_THROWAWAY_SCRATCH NNLIB_THROWAWAY_OUTER_NS
  trap 'rm -rf "$NNLIB_THROWAWAY_SCRATCH"' EXIT
  for variant in root sudo; do
    echo "== README install lines, $variant"
    NNLIB_THROWAWAY_ROOT=$variant "${ns[@]}" "$self" "$build" "$src" || exit $?
  done
  echo "ok: the README's install lines (as root and through sudo) installed into /usr/local, and ./xor ran without LD_LIBRARY_PATH or a manual ldconfig"
  exit 0
fi

# --------------------------------------------- inside: the throwaway root
variant=$NNLIB_THROWAWAY_ROOT scratch=$NNLIB_THROWAWAY_SCRATCH
# Never touch the machine's own /usr/local and /etc: only in a mount
# namespace of our own.
if [ "$(readlink /proc/self/ns/mnt)" = "${NNLIB_THROWAWAY_OUTER_NS:-}" ] ||
   [ -z "${NNLIB_THROWAWAY_OUTER_NS:-}" ]; then
  echo "FAIL: not in a mount namespace of the test's own" >&2
  exit 1
fi
unset NNLIB_THROWAWAY_ROOT NNLIB_THROWAWAY_SCRATCH NNLIB_THROWAWAY_OUTER_NS \
      LD_LIBRARY_PATH PKG_CONFIG_PATH PKG_CONFIG_LIBDIR CPATH C_INCLUDE_PATH \
      LIBRARY_PATH
# upper layers on a tmpfs: an overlay's upper directory may not itself be on
# an overlay (the root of a container often is)
mount -t tmpfs nnlib-throwaway "$scratch" ||
  skip "cannot mount a tmpfs in the namespace"
for dir in /usr/local /etc; do
  name=${dir//\//_}
  mkdir -p "$scratch/up$name" "$scratch/work$name"
  mount -t overlay overlay \
    -o "lowerdir=$dir,upperdir=$scratch/up$name,workdir=$scratch/work$name" "$dir" ||
    skip "cannot mount an overlay on $dir in the namespace"
done

for dir in /usr/local /etc; do
  [ "$(findmnt -n -o FSTYPE --mountpoint "$dir")" = overlay ] ||
    { echo "FAIL: $dir is not the test's overlay" >&2; exit 1; }
done

# A fresh machine's /usr/local as far as nnlib goes.
rm -rf /usr/local/include/nnlib*.h /usr/local/lib*/libnnlib* \
       /usr/local/lib*/pkgconfig/nnlib*.pc /usr/local/lib*/cmake/nnlib \
       /usr/local/bin/nnlib
ldconfig
if ldconfig -p | grep libnnlib >/dev/null; then
  echo "FAIL: ld.so's cache still knows libnnlib after a fresh start" >&2
  exit 1
fi

# The README's block and its program.
readme=$src/README.md
block=$(awk '/^Build and install the library/ { seen = 1 }
             seen && /^```sh$/ { on = 1; next }
             on && /^```$/ { exit }
             on' "$readme")
line1=$(sed -n 1p <<<"$block") line2=$(sed -n 2p <<<"$block")
line3=$(sed -n 3p <<<"$block")
check_line() {
  case $2 in
    "$3"*) ;;
    *) echo "FAIL: the README's install line $1 is '$2'; the test expects it to start with '$3'" >&2
       exit 1 ;;
  esac
}
check_line 1 "$line1" "cmake -S . -B build && cmake --build build"
check_line 2 "$line2" "sudo cmake --install build"
check_line 3 "$line3" "cc xor.c \$(pkg-config --cflags --libs nnlib) -o xor && ./xor"
as_root=$(sed -n 's/.*# as root without sudo: *//p' <<<"$line2")
[ -n "$as_root" ] || { echo "FAIL: line 2 gives no 'as root without sudo:' form" >&2; exit 1; }

work=$scratch/work
mkdir -p "$work/bin"
ln -s "$build" "$work/build"
awk '/^```c$/ { on = 1; next } /^```$/ { on = 0 } on' "$readme" > "$work/xor.c"
cd "$work"

sudo_path=$(command -v sudo || true)
case $variant in
  root)
    # no sudo on this machine: hide one the host may have
    [ -z "$sudo_path" ] || mount --bind /dev/null "$sudo_path"
    install_line=${as_root%%#*} ;;
  sudo)
    cat > bin/sudo <<'EOF'
#!/bin/sh
# stands in for sudo: the command with root's reset environment
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LOGNAME=root USER=root "$@"
EOF
    chmod +x bin/sudo
    export PATH=$work/bin:$PATH
    install_line=${line2%%#*} ;;
esac
echo "\$ $install_line"
bash -euo pipefail -c "$install_line" > install.log || { cat install.log; exit 1; }
grep -F "ldconfig" install.log || true

# The install alone made ld.so find the library.
if ! ldconfig -p | grep 'libnnlib\.so\.1 .*=> /usr/local/lib/libnnlib\.so\.1$'; then
  echo "FAIL: after the install, ld.so's cache does not list /usr/local/lib/libnnlib.so.1" >&2
  exit 1
fi

# pkg-config: plain paths, no OpenBLAS include directory.
cflags=$(pkg-config --cflags nnlib) libs=$(pkg-config --libs nnlib)
echo "pkg-config --cflags nnlib: $cflags"
echo "pkg-config --libs nnlib: $libs"
[ "$(echo $cflags)" = "-I/usr/local/include" ] ||
  { echo "FAIL: pkg-config --cflags nnlib should be -I/usr/local/include" >&2; exit 1; }
[ "$(echo $libs)" = "-L/usr/local/lib -lnnlib" ] ||
  { echo "FAIL: pkg-config --libs nnlib should be -L/usr/local/lib -lnnlib" >&2; exit 1; }
if pkg-config --exists nnlib_mpi; then
  mpi_flags=$(pkg-config --cflags --libs nnlib_mpi)
  echo "pkg-config --cflags --libs nnlib_mpi: $mpi_flags"
  case $mpi_flags in *..*|*openblas*)
    echo "FAIL: nnlib_mpi's flags should be plain and free of OpenBLAS" >&2; exit 1 ;;
  esac
fi

# The README's last line, as written.
echo "\$ $line3"
bash -euo pipefail -c "$line3" | tee xor.out
ldd ./xor > ldd.out
grep -q 'libnnlib\.so\.1 => /usr/local/lib/libnnlib\.so\.1 ' ldd.out ||
  { echo "FAIL: ./xor does not load /usr/local/lib/libnnlib.so.1" >&2; cat ldd.out >&2; exit 1; }
awk '{ if ($2 != "xor") exit 1 } END { if (NR != 4) exit 1 }' xor.out
grep -q '^0 xor 1 = 0\.9' xor.out
grep -q '^1 xor 1 = 0\.0' xor.out
