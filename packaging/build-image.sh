#!/usr/bin/env bash
# npm run image -- --arch amd64|arm64 [--out DIR] [--reuse-rootfs] [--overlay DIR --name NAME]
#
# A hub image: a Debian bookworm root made by mmdebstrap from Debian's packages plus
# build/iq-hub_<version>_<arch>.deb (made first by packaging/build-deb.sh if missing), turned into
# a raw ext4 file system with `mke2fs -d` (no loop devices, no root mounts). Output in
# build/image-<arch>/ (or --out):
#   rootfs/            the tree (kept: --reuse-rootfs builds variants from it without mmdebstrap)
#   <name>.ext4        the file system image (name: iq-hub-<version>-<arch>, or --name)
#   vmlinuz, initrd.img   the kernel and initrd from the image's /boot, for qemu -kernel/-initrd
# --overlay DIR copies DIR over a copy of the tree before mke2fs (the VM boot test adds its check
# service this way: the production tree itself is never modified).
#
# What the image is: systemd, networkd (DHCP on every wired interface) and resolved,
# systemd-timesyncd (NTP), journald persistent with a 64 MiB cap, no SSH server, root locked
# (IQHUB_ROOT_PASSWORD_HASH= sets a crypt(3) hash), an empty machine-id, no storage key and no
# credential host key (each hub makes its own at first boot), iq-hub enabled and waiting to be
# provisioned. docs/installing.md, "Flash the image".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

HOST_ARCH=$(dpkg --print-architecture)
ARCH=$HOST_ARCH
OUT=
REUSE=0
OVERLAY=
NAME=
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=${2:?--arch needs amd64 or arm64}; shift 2 ;;
    --arch=*) ARCH=${1#--arch=}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --reuse-rootfs) REUSE=1; shift ;;
    --overlay) OVERLAY=${2:?--overlay needs a directory}; shift 2 ;;
    --name) NAME=${2:?--name needs a name}; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build-image: unknown option '$1' (expected --arch amd64|arm64, --out DIR, --reuse-rootfs, --overlay DIR, --name NAME)" >&2; exit 2 ;;
  esac
done
case "$ARCH" in
  amd64|arm64) ;;
  *) echo "build-image: --arch must be amd64 or arm64, not '$ARCH'" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "build-image: run as root (mmdebstrap --mode=root, files owned by the image's users)" >&2; exit 2; }

OUT=${OUT:+$(realpath -m "$OUT")}
VERSION=$(node -p 'require("./package.json").version')
OUT=${OUT:-$ROOT/build/image-$ARCH}
NAME=${NAME:-iq-hub-$VERSION-$ARCH}
DEB=$ROOT/build/iq-hub_${VERSION}_${ARCH}.deb
ROOTFS=$OUT/rootfs
MIRROR=${IQHUB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${IQHUB_DEBIAN_SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}
step() { echo "==> $*"; }
die() { echo "build-image: $*" >&2; exit 1; }
mkdir -p "$OUT"

if [ "$REUSE" = 1 ] && [ -f "$ROOTFS/.iq-hub-image" ] && [ "$ROOTFS/.iq-hub-image" -nt "$DEB" ]; then
  step "reusing $ROOTFS (newer than $DEB)"
else
  [ -f "$DEB" ] || { step "no $DEB: npm run package -- --arch $ARCH"; bash packaging/build-deb.sh --arch "$ARCH"; }
  if [ "$ARCH" != "$HOST_ARCH" ]; then
    # mmdebstrap runs the target's maintainer scripts inside the tree: a foreign tree needs the
    # kernel to run its binaries through qemu-user (binfmt_misc). Without it, say so plainly.
    [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    [ -e "/proc/sys/fs/binfmt_misc/qemu-aarch64" ] || die "building an $ARCH tree on $HOST_ARCH needs qemu-user-static with binfmt_misc (apt-get install qemu-user-static binfmt-support; update-binfmts --enable qemu-aarch64): /proc/sys/fs/binfmt_misc/qemu-aarch64 is missing"
  fi
  case "$ARCH" in
    amd64) KERNEL=linux-image-amd64; COMPONENTS=main ;;
    # Debian's arm64 kernel with the Raspberry Pi firmware and device trees (Pi 3/4 class boards);
    # raspi-firmware is in non-free-firmware.
    arm64) KERNEL=linux-image-arm64,raspi-firmware; COMPONENTS="main non-free-firmware" ;;
  esac
  rm -rf "$ROOTFS"
  step "mmdebstrap bookworm $ARCH → $ROOTFS (mirror $MIRROR)"
  T0=$(date +%s)
  # --variant=apt: Essential packages and apt, plus exactly what is listed (no recommends).
  mmdebstrap --mode=root --variant=apt --arch="$ARCH" --aptopt='APT::Install-Recommends "false"' \
    --include="systemd,systemd-sysv,udev,dbus,systemd-timesyncd,tzdata,systemd-resolved,libpam-systemd,iproute2,kmod,e2fsprogs,procps,less,$KERNEL,initramfs-tools" \
    --customize-hook="copy-in $DEB /tmp" \
    --customize-hook="chroot \"\$1\" apt-get install -y --no-install-recommends /tmp/$(basename "$DEB")" \
    --customize-hook="rm -f \"\$1\"/tmp/$(basename "$DEB")" \
    --customize-hook="ROOT_HASH='${IQHUB_ROOT_PASSWORD_HASH:-}' bash $ROOT/packaging/image-customize.sh \"\$1\"" \
    bookworm "$ROOTFS" \
    "deb $MIRROR bookworm $COMPONENTS" "deb $MIRROR bookworm-updates $COMPONENTS" "deb $SECURITY_MIRROR bookworm-security $COMPONENTS"
  date -u +%FT%TZ >"$ROOTFS/.iq-hub-image"
  step "mmdebstrap took $(( $(date +%s) - T0 )) s"
fi

# --- kernel and initrd for qemu -kernel/-initrd (they stay in /boot too, for a bootloader) -------
KVER=$(ls "$ROOTFS/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
[ -n "$KVER" ] || die "no kernel in $ROOTFS/boot"
cp "$ROOTFS/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$KVER" "$OUT/initrd.img"

# --- the file system ------------------------------------------------------------------------------
SRC=$ROOTFS
if [ -n "$OVERLAY" ]; then
  SRC=$OUT/$NAME.tree
  step "tree + overlay $OVERLAY → $SRC"
  rm -rf "$SRC"
  cp -a "$ROOTFS" "$SRC"
  cp -a "$OVERLAY/." "$SRC/"
fi
USED_MB=$(du -sm --exclude=./proc --exclude=./sys "$SRC" | cut -f1)
# Room for the store, the journal (64 MiB cap) and upgrades; a flashed card grows to its size at
# first boot (x-systemd.growfs in /etc/fstab).
SIZE_MB=$(( USED_MB + USED_MB / 4 + 256 ))
IMG=$OUT/$NAME.ext4
step "mke2fs -d: ${USED_MB} MiB of files in a ${SIZE_MB} MiB ext4 → $IMG"
rm -f "$IMG"
mke2fs -q -t ext4 -L iqhub-root -d "$SRC" "$IMG" "${SIZE_MB}M"
[ -n "$OVERLAY" ] && rm -rf "$SRC"
ls -l "$IMG" "$OUT/vmlinuz" "$OUT/initrd.img"
echo "image: $IMG ($(du -m --apparent-size "$IMG" | cut -f1) MiB raw, $(du -m "$IMG" | cut -f1) MiB used, kernel $KVER)"
