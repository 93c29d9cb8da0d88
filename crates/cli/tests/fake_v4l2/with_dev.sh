#!/bin/sh
# with_dev.sh DIR SAVED COMMAND...: runs COMMAND with DIR as its /dev, in a mount namespace
# of its own. DIR gets every entry of the real /dev (bind-mounted; the real one stays
# reachable at SAVED inside the namespace), so the command works
# as usual, and a file the test creates in DIR from outside (video77) appears in /dev inside:
# a camera plugged in, as far as a listing of /dev can tell. Needs root (mount namespaces).
# Test support only.
set -eu
# Never on the machine's own /dev: the script enters a mount namespace of its own first.
if [ "${1:-}" != "--in-namespace" ]; then
  exec unshare --mount --propagation private sh "$0" --in-namespace "$@"
fi
shift
dir=$1
saved=$2
shift 2
mount --rbind /dev "$saved"
for entry in "$saved"/*; do
  name=${entry##*/}
  if [ -L "$entry" ]; then
    cp -P "$entry" "$dir/$name"
  elif [ -d "$entry" ]; then
    mkdir -p "$dir/$name"
    mount --rbind "$entry" "$dir/$name"
  else
    : > "$dir/$name"
    mount --bind "$entry" "$dir/$name"
  fi
done
mount --rbind "$dir" /dev
exec "$@"
