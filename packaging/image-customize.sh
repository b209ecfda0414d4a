#!/usr/bin/env bash
# Called by build-image.sh as mmdebstrap's last customize hook: $1 is the image's root. What makes
# the tree a hub rather than a generic Debian (docs/installing.md, "What is on the image").
set -euo pipefail
R=${1:?root directory}

echo iq-hub >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tiq-hub\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"

# The root file system by label (mke2fs -L iqhub-root); grown to the card's size at first boot.
printf 'LABEL=iqhub-root\t/\text4\tdefaults,noatime,x-systemd.growfs\t0\t1\n' >"$R/etc/fstab"

# Network: DHCP on every wired interface, names resolved by systemd-resolved.
install -d "$R/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' >"$R/etc/systemd/network/20-wired.network"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
chroot "$R" systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service

# Time: NTP on (OTP windows and certificate validity need the right time). Debian's pool servers
# are timesyncd's default; a site with its own NTP server sets it in a drop-in or by DHCP.
install -d "$R/etc/systemd/timesyncd.conf.d"
printf '[Time]\n# Debian'"'"'s default pool; a site NTP server: NTP= in a drop-in of its own.\nFallbackNTP=0.debian.pool.ntp.org 1.debian.pool.ntp.org 2.debian.pool.ntp.org 3.debian.pool.ntp.org\n' \
  >"$R/etc/systemd/timesyncd.conf.d/iq-hub.conf"

# The journal on disk (survives reboots: what happened before a power cut), capped so it never
# fills the card, and kept for at most a month.
install -d "$R/etc/systemd/journald.conf.d" "$R/var/log/journal"
printf '[Journal]\nStorage=persistent\nSystemMaxUse=64M\nSystemKeepFree=256M\nRuntimeMaxUse=16M\nMaxRetentionSec=1month\n' \
  >"$R/etc/systemd/journald.conf.d/iq-hub.conf"

# No SSH server is installed (SSH off by default). Root cannot log in unless the builder gave a
# password hash (IQHUB_ROOT_PASSWORD_HASH): consoles only, never over the network.
if [ -n "${ROOT_HASH:-}" ]; then
  chroot "$R" usermod -p "$ROOT_HASH" root
else
  chroot "$R" passwd -l root >/dev/null
fi

# systemd-firstboot would ask on the console for a locale, time zone and root password at first
# boot (the machine-id is empty): a hub has no one at its console. UTC; no locale but C.UTF-8.
chroot "$R" systemctl mask systemd-firstboot.service
ln -sf /usr/share/zoneinfo/Etc/UTC "$R/etc/localtime"
echo Etc/UTC >"$R/etc/timezone"

# Every hub makes its own identity at first boot: none of these may be in the image.
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id" "$R/var/lib/systemd/credential.secret" "$R/var/lib/systemd/random-seed"
rm -f "$R"/etc/ssh/ssh_host_* "$R"/etc/iq-hub/credentials/*
rm -rf "$R/var/lib/iq-hub" "$R/var/lib/private/iq-hub"
[ -z "$(ls -A "$R/etc/iq-hub/credentials" 2>/dev/null)" ]
# iq-hub.service enabled by the package; check, so an image never ships a hub that does not start.
chroot "$R" systemctl is-enabled iq-hub.service >/dev/null

# Smaller: apt's lists and caches, docs other than copyright and iq-hub's own.
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb
find "$R/usr/share/doc" -mindepth 1 -maxdepth 1 ! -name iq-hub -exec sh -c 'find "$1" -type f ! -name copyright -delete' _ {} \;
rm -rf "$R"/usr/share/man/* "$R"/usr/share/info/* "$R"/usr/share/locale/*
