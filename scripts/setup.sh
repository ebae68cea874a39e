#!/usr/bin/env bash
# Installs the Debian packages nnlib needs that are not installed yet.
#   scripts/setup.sh --demo   the main job's: scripts/packages-demo.txt
#   scripts/setup.sh          everything: that list, scripts/packages.txt (the
#                             tests') and a locale whose decimal point is ','
#                             (de_DE.UTF-8, for test_spec's locale test)
# Idempotent: a machine that has them all is left untouched and needs no
# root. Otherwise it runs apt-get (and locale-gen) as root, or through sudo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

lists=("$here/packages-demo.txt" "$here/packages.txt")
want_locale=1
for arg in "$@"; do
  case $arg in
    --demo) lists=("$here/packages-demo.txt"); want_locale=0 ;;
    *) echo "usage: scripts/setup.sh [--demo]" >&2; exit 2 ;;
  esac
done

# as_root WHY CMD...: runs CMD as root (directly, or through sudo); without
# either, says WHY root was needed and fails.
as_root() {
  local why=$1
  shift
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: $why needs root: run scripts/setup.sh as root or install sudo" >&2
    exit 1
  fi
}

mapfile -t wanted < <(grep -hv -e '^#' -e '^$' "${lists[@]}")
installed=" $(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${wanted[@]}" \
              2>/dev/null | awk '$1 == "ii" { printf "%s ", $2 }' || true)"
missing=()
for pkg in "${wanted[@]}"; do
  [[ $installed == *" $pkg "* ]] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
else
  echo "setup: installing ${missing[*]}"
  why="installing ${missing[*]}"
  as_root "$why" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root "$why" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A second locale, with ',' decimals: test_spec checks that model
# descriptions keep '.' under it. Debian generates the locales enabled in
# /etc/locale.gen (kept across upgrades of `locales`), so enable it there.
locale_line="de_DE.UTF-8 UTF-8"
if [ "$want_locale" -eq 1 ] && ! locale -a 2>/dev/null | grep -qix 'de_DE\.utf-\?8'; then
  echo "setup: generating the de_DE.UTF-8 locale"
  if grep -q "^# *$locale_line\$" /etc/locale.gen; then
    as_root "generating a locale" sed -i "s/^# *$locale_line\$/$locale_line/" /etc/locale.gen
  elif ! grep -q "^$locale_line\$" /etc/locale.gen; then
    echo "$locale_line" | as_root "generating a locale" tee -a /etc/locale.gen >/dev/null
  fi
  as_root "generating a locale" locale-gen >/dev/null
fi
