#!/usr/bin/env bash
# A loop-mounted btrfs volume, so the btrfs storage driver (O(1) snapshot forks) can be used and
# tested on machines whose disks are not btrfs.
#
#   btrfs-volume.sh up <mountpoint> [size, default 8G] [image, default <mountpoint>.img]
#                        create the image (sparse) if new, mount it at <mountpoint>
#   btrfs-volume.sh down <mountpoint> [image]
#                        unmount (the image is kept for the next up); no loop device stays attached
#
# Idempotent and silent when there is nothing to do. Never mounts over a non-empty directory (that
# would hide its files). Exit 3 when the volume cannot be made here (not root, no loop device, no
# btrfs in the kernel, mount refused), with the reason on stderr; 2 on bad usage.
set -euo pipefail

say() { printf '[btrfs-volume] %s\n' "$*" >&2; }
cannot() { printf '[btrfs-volume] cannot: %s\n' "$*" >&2; exit 3; }
usage() { printf 'usage: %s up <mountpoint> [size] [image] | down <mountpoint> [image]\n' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
action="$1"
mnt="$(realpath -m -- "$2")"
if [ "$action" = down ]; then size=; img="${3:-}"; else size="${3:-8G}"; img="${4:-}"; fi
[ "$mnt" != / ] || usage
if [ -n "$img" ]; then img="$(realpath -m -- "$img")"; else img="$mnt.img"; fi
case "$img" in "$mnt"/*) usage ;; esac

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
    if ! mounted; then [ -f "$img" ] && [ "$(id -u)" = 0 ] && [ -n "$(losetup -n -O NAME -j "$img" 2>/dev/null)" ] || exit 0; fi
    as_root true 2>/dev/null || cannot "unmounting $mnt needs root or passwordless sudo"
    ;;
  *) usage ;;
esac

# Serialises concurrent callers (parallel test runs): two mounts of one image would corrupt it.
mkdir -p -- "$(dirname -- "$mnt")"
{ exec 9>>"$mnt.lock"; } 2>/dev/null || exec 9<"$mnt.lock"
flock 9

# Loop devices still attached to the image but mounted nowhere (a umount without autoclear).
detach_idle() {
  local dev
  for dev in $(as_root losetup -n -O NAME -j "$img" 2>/dev/null || true); do
    findmnt -n -S "$dev" >/dev/null 2>&1 || as_root losetup -d "$dev" 2>/dev/null || true
  done
}

if [ "$action" = down ]; then
  if mounted; then
    err="$(as_root umount -- "$mnt" 2>&1)" || cannot "umount $mnt failed: $err (files still open there?)"
  fi
  [ ! -f "$img" ] || detach_idle
  exit 0
fi

mounted && exit 0
if [ -d "$mnt" ] && [ -n "$(ls -A -- "$mnt" 2>/dev/null)" ]; then
  cannot "$mnt is not empty and not a btrfs mount; mounting $img over it would hide its files"
fi

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

[ ! -f "$img" ] || detach_idle
attached="$(as_root losetup -n -O NAME -j "$img" 2>/dev/null || true)"
for dev in $attached; do
  where="$(findmnt -n -o TARGET -S "$dev" 2>/dev/null | head -n1 || true)"
  [ -z "$where" ] || cannot "$img is already mounted at $where"
done

created=
if [ ! -f "$img" ]; then
  say "creating a sparse $size btrfs image at $img"
  # Built under a temporary name so an interrupted mkfs never leaves a half-made image behind.
  as_root mkdir -p -- "$(dirname -- "$img")"
  as_root rm -f -- "$img.new"
  as_root truncate -s "$size" -- "$img.new" || cannot "could not create $img.new (size $size)"
  # The image holds every branch's data: readable by root only.
  as_root chmod 0600 -- "$img.new"
  as_root mkfs.btrfs -q -- "$img.new" >/dev/null || { as_root rm -f -- "$img.new"; cannot "mkfs.btrfs failed on $img.new"; }
  as_root mv -- "$img.new" "$img"
  created=1
fi

as_root mkdir -p -- "$mnt"
if ! err="$(as_root mount -t btrfs -o loop -- "$img" "$mnt" 2>&1)"; then
  # An image that was just made and can never be mounted here is not left behind.
  if [ -n "$created" ]; then as_root rm -f -- "$img"; fi
  cannot "mount -o loop $img $mnt failed: $(printf '%s' "$err" | tr '\n' ' ')(no usable loop device or no mount permission here, or $img is not a btrfs image: delete it to have it recreated)"
fi
# Compute processes run as an unprivileged user and must traverse the mount root.
as_root chmod 0755 -- "$mnt"
say "mounted $img at $mnt"
