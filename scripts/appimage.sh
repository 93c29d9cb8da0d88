#!/usr/bin/env bash
# Makes Between's AppImage from a built app (scripts/package.sh builds it first):
#   scripts/appimage.sh [APP_BINARY [OUT]]
# The packer is $BETWEEN_APPIMAGE_PACKER, else the release build of crates/appimage.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' tauri.conf.json | head -n1)
app="${1:-$CARGO_TARGET_DIR/release/between-app}"
out="${2:-$CARGO_TARGET_DIR/release/bundle/appimage/Between_${version}_amd64.AppImage}"
packer="${BETWEEN_APPIMAGE_PACKER:-$CARGO_TARGET_DIR/release/between-appimage}"
for f in "$app" "$packer"; do
  [ -x "$f" ] || { echo "$f is missing: run scripts/package.sh" >&2; exit 1; }
done

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
appdir="$dir/Between.AppDir"
mkdir -p "$appdir/usr/bin" "$appdir/usr/lib" "$appdir/usr/share/applications" \
  "$appdir/usr/share/icons/hicolor/128x128/apps" "$appdir/usr/share/icons/hicolor/256x256/apps"
install -m 755 "$app" "$appdir/usr/bin/between-app"
install -m 755 packaging/appimage/AppRun "$appdir/AppRun"
sed "s/@VERSION@/$version/" packaging/appimage/between-app.desktop > "$appdir/between-app.desktop"
cp "$appdir/between-app.desktop" "$appdir/usr/share/applications/"
cp icons/128x128.png "$appdir/usr/share/icons/hicolor/128x128/apps/between-app.png"
cp icons/128x128@2x.png "$appdir/usr/share/icons/hicolor/256x256/apps/between-app.png"
cp icons/128x128@2x.png "$appdir/between-app.png"
ln -s between-app.png "$appdir/.DirIcon"
# Libraries a desktop may lack travel along (found the way the loader finds them).
for lib in libopus.so.0; do
  path=$(ldd "$app" | awk -v l="$lib" '$1 == l {print $3}')
  [ -n "$path" ] || { echo "$app does not load $lib: update scripts/appimage.sh" >&2; exit 1; }
  cp -L "$path" "$appdir/usr/lib/$lib"
done
mkdir -p "$(dirname "$out")"
"$packer" pack "$appdir" "$out"
