#!/usr/bin/env bash
# A loop-mounted btrfs volume, so the btrfs storage driver (O(1) snapshot forks) can be used and
# tested on machines whose disks are not btrfs.
#
#   btrfs-volume.sh up <mountpoint> [size, default 8G]   create <mountpoint>.img if new, mount it
#   btrfs-volume.sh down <mountpoint>                     unmount (the image is kept for the next up)
#
# Idempotent and silent when there is nothing to do. Exit 3 when the volume cannot be made here
# (not root, no loop device, no btrfs in the kernel), with the reason on stderr; 2 on bad usage.
set -euo pipefail

say() { printf '[btrfs-volume] %s\n' "$*" >&2; }
cannot() { printf '[btrfs-volume] cannot: %s\n' "$*" >&2; exit 3; }
usage() { printf 'usage: %s up <mountpoint> [size] | down <mountpoint>\n' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
action="$1"
mnt="$(realpath -m -- "$2")"
size="${3:-8G}"
[ "$mnt" != / ] || usage
img="$mnt.img"

fstype() { stat -f -c %T -- "$mnt" 2>/dev/null || true; }
mounted() { mountpoint -q -- "$mnt" 2>/dev/null; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 1; fi
}

case "$action" in
  up)
    if mounted; then
      [ "$(fstype)" = btrfs ] || cannot "$mnt is already a mount point of type $(fstype), not btrfs"
      exit 0
    fi
    as_root true 2>/dev/null || cannot "mounting a loop device needs root or passwordless sudo (run as root, or mount a btrfs volume at $mnt yourself)"
    ;;
  down)
    mounted || exit 0
    as_root true 2>/dev/null || cannot "unmounting $mnt needs root or passwordless sudo"
    ;;
  *) usage ;;
esac

# Serialises concurrent callers (parallel test runs): two mounts of one image would corrupt it.
mkdir -p -- "$(dirname -- "$mnt")"
{ exec 9>>"$mnt.lock"; } 2>/dev/null || exec 9<"$mnt.lock"
flock 9

if [ "$action" = down ]; then
  mounted || exit 0
  as_root umount -- "$mnt" || cannot "umount $mnt failed (files still open there?)"
  exit 0
fi

mounted && exit 0

if ! command -v mkfs.btrfs >/dev/null 2>&1 || ! command -v btrfs >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || cannot "btrfs-progs is missing and apt-get is not available; install btrfs-progs"
  say "installing btrfs-progs"
  { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
    && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends btrfs-progs; } >/dev/null \
    || cannot "apt-get could not install btrfs-progs"
fi

if ! grep -qw btrfs /proc/filesystems; then
  command -v modprobe >/dev/null 2>&1 && as_root modprobe btrfs 2>/dev/null || true
  grep -qw btrfs /proc/filesystems || cannot "the kernel has no btrfs support (no btrfs in /proc/filesystems, modprobe btrfs failed)"
fi
[ -e /dev/loop-control ] || ls /dev/loop[0-9]* >/dev/null 2>&1 || cannot "no loop devices (/dev/loop-control missing; in a container, run it with --privileged or pass /dev/loop*)"

attached="$(as_root losetup -n -O NAME -j "$img" 2>/dev/null || true)"
for dev in $attached; do
  where="$(findmnt -n -o TARGET -S "$dev" 2>/dev/null | head -n1 || true)"
  [ -z "$where" ] || cannot "$img is already mounted at $where"
done

if [ ! -f "$img" ]; then
  say "creating a sparse $size btrfs image at $img"
  # Built under a temporary name so an interrupted mkfs never leaves a half-made image behind.
  as_root rm -f -- "$img.new"
  as_root truncate -s "$size" -- "$img.new" || cannot "could not create $img.new (size $size)"
  as_root mkfs.btrfs -q -- "$img.new" >/dev/null || { as_root rm -f -- "$img.new"; cannot "mkfs.btrfs failed on $img.new"; }
  as_root mv -- "$img.new" "$img"
fi

as_root mkdir -p -- "$mnt"
err="$(as_root mount -t btrfs -o loop -- "$img" "$mnt" 2>&1)" \
  || cannot "mount -o loop $img $mnt failed: $err (no usable loop device or btrfs here, or $img is not a btrfs image: delete it to have it recreated)"
# Compute processes run as an unprivileged user and must traverse the mount root.
as_root chmod 0755 -- "$mnt"
say "mounted $img at $mnt"
