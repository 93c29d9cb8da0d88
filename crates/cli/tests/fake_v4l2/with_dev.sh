#!/bin/sh
# with_dev.sh DIR SAVED COMMAND...: runs COMMAND with DIR as its /dev, in a mount namespace
# of its own (run it under `unshare --mount --propagation private`). DIR gets every entry of
# the real /dev (bind-mounted; the real one stays reachable at SAVED), so the command works
# as usual, and a file the test creates in DIR from outside (video77) appears in /dev inside:
# a camera plugged in, as far as a listing of /dev can tell. Test support only.
set -eu
# Never on the machine's own /dev: only inside a mount namespace of its own.
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
  echo "with_dev.sh: run me under unshare --mount --propagation private" >&2
  exit 2
fi
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
