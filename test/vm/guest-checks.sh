#!/bin/bash
# Runs INSIDE the VM of test/vm/boot.test.ts, as root, from iq-hub-vmtest.service (only in the
# test's image: the overlay adds it; the production image has no such unit). Each check prints one
# line `VMTEST PASS|FAIL|PENDING <name> <detail>` on the serial console; `VMTEST DONE` at the end,
# then the VM powers off. The host test asserts on those lines.
set -u
T=/usr/lib/iq-hub-vmtest
NODE=/usr/lib/iq-hub/node/bin/node
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "VMTEST $*" >/dev/ttyS0; }
# Progress on the console too (a slow or stuck check shows where it is).
step() { say "STEP $(date -u +%T) $*"; }
pass() { say "PASS $1 ${2:-}"; }
# A check whose feature is not merged yet (listed by the host in $T/pending) reports PENDING.
fail() {
  if grep -qx "$1" "$T/pending" 2>/dev/null; then say "PENDING $1 ${2:-}"; else say "FAIL $1 ${2:-}"; fi
}
# one line of detail (the serial log is line-based)
oneline() { tr '\n' ' ' | tr -s ' ' | cut -c1-600; }
prop() { systemctl show iq-hub -p "$1" --value; }
# Wait up to $2 s for `iq-hub` to be in state $1 (active = READY=1 received: Type=notify).
wait_state() {
  local i
  for ((i = 0; i < $2; i++)); do
    [ "$(systemctl is-active iq-hub)" = "$1" ] && return 0
    sleep 1
  done
  return 1
}
json() { "$NODE" -e "const s=JSON.parse(require('fs').readFileSync(0,'utf8')); $1"; }
uplink_connected() {
  iqhub status --json 2>/dev/null | json 'process.exit(s.components.some(c => c.state === "running" && / connected;/.test(c.detail ?? "")) ? 0 : 1)'
}

say "START $(date -u +%FT%TZ)"

# --- 1. first boot: storage key made and sealed, daemon READY under the shipped unit -------------
if wait_state active 300; then
  ready_us=$(prop ActiveEnterTimestampMonotonic)
  say "METRIC boot_to_ready_s $(awk "BEGIN { printf \"%.1f\", $ready_us / 1e6 }")"
  pass ready "iq-hub active (READY=1) $(awk "BEGIN { printf \"%.1f\", $ready_us / 1e6 }") s after boot"
else
  fail ready "$(systemctl status iq-hub --no-pager 2>&1 | oneline)"
fi
st=$(iqhub status --json 2>&1)
origin=$(echo "$st" | json 'console.log(s.storageKey.origin)' 2>/dev/null)
if [ -s /etc/iq-hub/credentials/storage-key.cred ] && [ -s /var/lib/systemd/credential.secret ] &&
  [ "$origin" = systemd-credential ] && [ ! -e /var/lib/iq-hub/storage-key ]; then
  pass credential "storage key from the encrypted credential; $(stat -c '%n %a %U' /etc/iq-hub/credentials/storage-key.cred)"
else
  fail credential "origin=$origin; $(ls -l /etc/iq-hub/credentials/ /var/lib/systemd/credential.secret 2>&1 | oneline)"
fi
pid=$(prop MainPID)
user=$(ps -o user= -p "$pid" | tr -d ' ')
capeff=$(awk '/^CapEff/ { print $2 }' "/proc/$pid/status")
dropins=$(prop DropInPaths)
# CAP_NET_ADMIN (12) and CAP_NET_RAW (13) only: 0x3000.
if [ "$user" = iqhub ] && [ "$capeff" = 0000000000003000 ] && [ -z "$dropins" ]; then
  pass sandbox "user $user, CapEff $capeff, no drop-ins, NoNewPrivs $(awk '/^NoNewPrivs/ { print $2 }' "/proc/$pid/status")"
else
  fail sandbox "user=$user CapEff=$capeff dropins=$dropins"
fi
[ -s /etc/machine-id ] && pass machine-id "made at first boot" || fail machine-id "empty"
if systemctl is-active -q systemd-timesyncd && [ -d "/var/log/journal/$(cat /etc/machine-id)" ] &&
  ! ss -ltnH | grep -q ':22 ' && ! systemctl cat ssh.service >/dev/null 2>&1; then
  pass image-services "timesyncd active, journal persistent, no SSH"
else
  fail image-services "timesyncd=$(systemctl is-active systemd-timesyncd) journal=$(ls /var/log/journal 2>&1) listen=$(ss -ltnH | oneline)"
fi

# --- 1b. the production image has no demo: no simulation, no aedes; iqhub demo says what to install
step demo-absent
d_out=$(cd /tmp && timeout 300 iqhub demo --exit 2>&1)
d_rc=$?
if [ ! -e /usr/lib/iq-hub/dist/sim ] && [ ! -e /usr/lib/iq-hub/dist/src/demo ] && [ ! -e /usr/lib/iq-hub/node_modules/aedes ] &&
  ! dpkg -s iq-hub-demo >/dev/null 2>&1 && [ "$d_rc" = 1 ] && echo "$d_out" | grep -q 'needs the package iq-hub-demo'; then
  pass demo-absent "no sim/, src/demo/ or aedes in the image; iqhub demo: $(echo "$d_out" | head -1 | oneline)"
else
  fail demo-absent "exit $d_rc: $(echo "$d_out" | head -3 | oneline); $(ls -d /usr/lib/iq-hub/dist/sim /usr/lib/iq-hub/dist/src/demo /usr/lib/iq-hub/node_modules/aedes 2>&1 | oneline)"
fi

# --- 2. provisioning: the dev PKI of the host's broker, uplink on, restart ----------------------
step provision
install -d -o root -g iqhub -m 0750 /etc/iq-hub/pki
install -o root -g iqhub -m 0640 "$T/pki/ca.crt" "$T/pki/hub.crt" /etc/iq-hub/pki/
install -o iqhub -g iqhub -m 0600 "$T/pki/hub.key" "$T/pki/otp.key" /etc/iq-hub/pki/
install -o root -g iqhub -m 0640 "$T/config.yaml" /etc/iq-hub/config.yaml
# The test's config simulates a lock (simulation.enabled): without iq-hub-demo the daemon refuses
# to start, says what to install, and systemd does not restart it (exit 78). Then the test
# installs iq-hub-demo into this test image (never into the production image).
since=$(date +%s)
systemctl restart iq-hub 2>/dev/null
for ((i = 0; i < 120; i++)); do [ "$(systemctl is-active iq-hub)" = failed ] && break; sleep 1; done
s_status=$(prop ExecMainStatus)
s_log=$(journalctl -u iq-hub --since "@$since" -o cat | grep -m1 'iq-hub-demo')
dpkg -i "$T/iq-hub-demo.deb" >/tmp/dpkg-demo.log 2>&1
s_dpkg=$?
if [ "$s_status" = 78 ] && [ -n "$s_log" ] && [ "$s_dpkg" = 0 ] && [ -e /usr/lib/iq-hub/node_modules/aedes ]; then
  pass simulation-needs-demo "exit 78 without iq-hub-demo: $(echo "$s_log" | cut -c1-220); dpkg -i iq-hub-demo: ok"
else
  fail simulation-needs-demo "status=$s_status state=$(systemctl is-active iq-hub) log=[$s_log] dpkg -i rc=$s_dpkg $(tail -3 /tmp/dpkg-demo.log | oneline)"
fi
systemctl reset-failed iq-hub
systemctl restart iq-hub
ok=1
wait_state active 180 || ok=0
for ((i = 0; i < 120 && ok; i++)); do uplink_connected && break; sleep 1; done
if [ "$ok" = 1 ] && uplink_connected; then
  pass provision "uplink connected to the host's broker"
else
  fail provision "$(iqhub status 2>&1 | oneline) $(journalctl -u iq-hub -n 5 -o cat | oneline)"
fi

# --- 5. group iqhub may use the CLI, others may not ---------------------------------------------
step group
useradd -M -s /bin/sh -G iqhub tech
useradd -M -s /bin/sh outsider
m_out=$(cd / && runuser -u tech -- iqhub status 2>&1)
m_rc=$?
# --socket: the refusal comes from the socket's directory (0750 iqhub), not from the config's mode.
o_out=$(cd / && runuser -u outsider -- iqhub status --socket /run/iq-hub/control.sock 2>&1)
o_rc=$?
if [ "$m_rc" = 0 ] && echo "$m_out" | grep -q '^version' && [ "$o_rc" != 0 ]; then
  pass group "member: exit 0; non-member: exit $o_rc: $(echo "$o_out" | head -2 | oneline)"
else
  fail group "member exit $m_rc: $(echo "$m_out" | head -3 | oneline); non-member exit $o_rc: $(echo "$o_out" | head -2 | oneline)"
fi

# --- 6. systemd-analyze security in the running system ------------------------------------------
step security
line=$(systemd-analyze security iq-hub --no-pager 2>&1 | grep 'Overall exposure level')
level=$(echo "$line" | grep -oE '[0-9]+\.[0-9]+' | head -1)
if [ -n "$level" ] && awk "BEGIN { exit !($level <= 2.0) }"; then
  pass security "exposure $level"
else
  fail security "$line"
fi

# --- 3. committed data survives SIGKILL: attach the simulated lock, open it, kill, compare -------
step sigkill
sticker=$(head -1 /var/lib/iq-hub/sim/stickers.txt 2>/dev/null)
device=${sticker%% *}
code=${sticker#* }
lock=$("$NODE" --input-type=module -e "
  import { callDaemon } from '/usr/lib/iq-hub/dist/src/control-socket/socket-client.js';
  const sock = '/run/iq-hub/control.sock';
  await callDaemon(sock, 'sim.card', { deviceId: '$device' }, 60000);
  const l = await callDaemon(sock, 'locks.attach', { deviceId: '$device', setupCode: '$code' }, 120000);
  console.log(l.lockId);" 2>&1)
iqhub open "$lock" --duration 1 >/dev/null 2>&1
sleep 3
before=$(iqhub events "$lock" --json 2>&1 | json 'console.log(s.map(e => `${e.seq}:${e.type}`).sort().join(","))' 2>&1)
restarts0=$(prop NRestarts)
systemctl kill -s SIGKILL iq-hub
for ((i = 0; i < 120; i++)); do [ "$(prop NRestarts)" -gt "$restarts0" ] && break; sleep 1; done
wait_state active 180
after=$(iqhub events "$lock" --json 2>&1 | json 'console.log(s.map(e => `${e.seq}:${e.type}`).sort().join(","))' 2>&1)
lost=$(comm -23 <(echo "$before" | tr ',' '\n' | sort) <(echo "$after" | tr ',' '\n' | sort) | oneline)
if [ -n "$lock" ] && [ -n "$before" ] && [ "$(prop NRestarts)" -gt "$restarts0" ] &&
  [ "$(systemctl is-active iq-hub)" = active ] && [ -z "$lost" ]; then
  pass sigkill "restarted (NRestarts $(prop NRestarts)); lock $lock and its $(echo "$before" | tr ',' '\n' | wc -l) events kept"
else
  fail sigkill "lock=$lock before=[$before] after=[$after] lost=[$lost] NRestarts=$(prop NRestarts) state=$(systemctl is-active iq-hub)"
fi

# --- 4. a blocked event loop: the watchdog (WatchdogSec=30) kills it, systemd restarts it --------
step watchdog
# A runtime drop-in only for this check: NODE_OPTIONS loads a module that busy-waits on SIGUSR2.
install -d /run/systemd/system/iq-hub.service.d
printf '[Service]\nEnvironment=NODE_OPTIONS=--import=%s/blocker.mjs\n' "$T" >/run/systemd/system/iq-hub.service.d/vmtest-blocker.conf
systemctl daemon-reload
systemctl restart iq-hub
wait_state active 180
since=$(date +%s)
restarts0=$(prop NRestarts)
step "watchdog: blocking the event loop (SIGUSR2 to the blocker)"
systemctl kill -s SIGUSR2 --kill-whom=main iq-hub
for ((i = 0; i < 150; i++)); do [ "$(prop NRestarts)" -gt "$restarts0" ] && break; sleep 1; done
wait_state active 180
wd=$(journalctl -u iq-hub --since "@$since" -o cat | grep -i 'watchdog timeout' | head -1)
if [ -n "$wd" ] && [ "$(prop NRestarts)" -gt "$restarts0" ] && [ "$(systemctl is-active iq-hub)" = active ]; then
  pass watchdog "\"$wd\"; restarted after $(($(date +%s) - since)) s"
else
  fail watchdog "NRestarts $restarts0 -> $(prop NRestarts); $(journalctl -u iq-hub --since "@$since" -o cat | tail -5 | oneline)"
fi
# The drop-in goes; the daemon systemd restarted keeps it until the next restart (exit78 below).
rm -rf /run/systemd/system/iq-hub.service.d
systemctl daemon-reload

# --- 7. a permanent fault (exit 78) is not restarted; the journal's priorities -------------------
step exit78
cp /etc/iq-hub/config.yaml /root/config.yaml.good
printf 'dataDir: relative/not-absolute\n' >/etc/iq-hub/config.yaml
since=$(date +%s)
systemctl restart iq-hub 2>/dev/null
for ((i = 0; i < 60; i++)); do [ "$(systemctl is-active iq-hub)" = failed ] && break; sleep 1; done
sleep 12 # more than twice RestartSec=5: a restart would have happened by now
status=$(prop ExecMainStatus)
state=$(systemctl is-active iq-hub)
starts=$(journalctl -u iq-hub --since "@$since" -o cat | grep -c '^Started\|^Starting')
if [ "$status" = 78 ] && [ "$state" = failed ] && [ "$starts" -le 2 ]; then
  pass exit78 "status=$status, state $state, not restarted"
else
  fail exit78 "status=$status state=$state starts=$starts"
fi
errs=$(journalctl -u iq-hub -p err --since "@$since" -o cat | grep -v '^iq-hub.service:\|Failed with result\|Main process exited\|Failed to start' )
infos=$(journalctl -u iq-hub -p err --since "@$(($(date +%s) - 3600))" -o cat | grep -c '"level":30\|iq-hub ready')
if echo "$errs" | grep -q 'dataDir' && [ "$infos" = 0 ]; then
  pass journal-priority "$(echo "$errs" | head -1 | cut -c1-200)"
else
  # Needs the syslog priority prefixes under JOURNAL_STREAM (the journald part of issue 18).
  fail journal-priority "errors=[$(echo "$errs" | head -2 | oneline)] info-lines-at-err=$infos"
fi
install -o root -g iqhub -m 0640 /root/config.yaml.good /etc/iq-hub/config.yaml
systemctl reset-failed iq-hub
systemctl start iq-hub
wait_state active 180 && pass restored "active again with the good config" || fail restored "$(systemctl is-active iq-hub)"

# --- 8. metrics: the endpoint on loopback, every listed series ------------------------------------
step metrics
# (Not run while pending: it restarts the daemon twice, minutes under TCG, for a known result.)
if grep -qx metrics "$T/pending" 2>/dev/null; then
  say "PENDING metrics the metrics endpoint is not merged yet"
elif out=$("$T/metrics-check.sh" 2>&1); then pass metrics "$out"; else fail metrics "$(echo "$out" | oneline)"; fi
[ "$(systemctl is-active iq-hub)" = active ] || { systemctl reset-failed iq-hub; systemctl start iq-hub; wait_state active 180; }

# --- 9. the packaged demo, as a group member, against the broker on the host ---------------------
# (iq-hub-demo, installed above; `iqhub demo --broker`: the host's mosquitto, the demo's hub and
# cloud with identities of their own from the host's PKI.) The hub stops meanwhile: the demo is a
# site of its own, and TCG has CPU for one.
step demo
systemctl stop iq-hub
install -d -o tech -m 0700 /tmp/demo-pki
install -o tech -m 0600 "$T"/demo-pki/* /tmp/demo-pki/
broker_url=$(cat "$T/demo-broker-url")
d_out=$(cd /tmp && timeout 1500 runuser -u tech -- iqhub demo --exit --broker "$broker_url" --broker-pki /tmp/demo-pki 2>&1)
d_rc=$?
if [ "$d_rc" = 0 ] && echo "$d_out" | grep -q "^external MQTT broker $broker_url "; then
  pass demo "$(echo "$d_out" | grep -m1 '^external MQTT broker' | cut -c1-160); $(echo "$d_out" | tail -1 | oneline)"
else
  fail demo "exit $d_rc: $(echo "$d_out" | grep -E '✗|failed|error' | head -4 | oneline) $(echo "$d_out" | tail -4 | oneline)"
fi
systemctl start iq-hub
wait_state active 300

# --- 10. the package: remove keeps the hub's data and key, reinstall finds them, purge deletes --
step deb
fp0=$(iqhub status --json 2>/dev/null | json 'console.log(s.storageKey.fingerprint ?? s.storageKey.path)')
# iq-hub-demo depends on iq-hub: it goes first (and comes back with it: the config simulates a lock).
dpkg -r iq-hub-demo iq-hub >/dev/null 2>&1
r_rc=$?
kept=$(ls /var/lib/iq-hub/hub.db /etc/iq-hub/credentials/storage-key.cred /etc/iq-hub/config.yaml 2>&1 | wc -l)
gone=$([ ! -e /usr/bin/iqhub ] && [ "$(systemctl is-active iq-hub)" != active ] && echo yes)
dpkg -i "$T/iq-hub.deb" "$T/iq-hub-demo.deb" >/dev/null 2>&1
i_rc=$?
step "deb: reinstalled (dpkg -i rc $i_rc), iq-hub $(systemctl is-enabled iq-hub 2>&1)/$(systemctl is-active iq-hub 2>&1)"
wait_state active 300
fp1=$(iqhub status --json 2>/dev/null | json 'console.log(s.storageKey.fingerprint ?? s.storageKey.path)')
locks=$(iqhub locks --json 2>/dev/null | json 'console.log(s.length)')
if [ "$r_rc" = 0 ] && [ "$kept" = 3 ] && [ "$gone" = yes ] && [ "$i_rc" = 0 ] && [ -n "$fp0" ] && [ "$fp0" = "$fp1" ] && [ "$locks" -ge 1 ]; then
  pass deb-remove "dpkg -r stopped it and kept the store, key and config; dpkg -i started it on them (same key, $locks lock)"
else
  fail deb-remove "remove rc=$r_rc kept=$kept gone=$gone install rc=$i_rc key $fp0 -> $fp1 locks=$locks; $(systemctl is-enabled iq-hub 2>&1)/$(systemctl is-active iq-hub 2>&1); $(iqhub status 2>&1 | head -2 | oneline); $(journalctl -u iq-hub -n 4 -o cat | oneline)"
fi
dpkg -P iq-hub-demo iq-hub >/dev/null 2>&1
p_rc=$?
if [ "$p_rc" = 0 ] && [ ! -e /var/lib/iq-hub ] && [ ! -e /etc/iq-hub ] && getent group iqhub >/dev/null; then
  pass deb-purge "dpkg -P removed /var/lib/iq-hub and /etc/iq-hub (the user stays)"
else
  fail deb-purge "rc=$p_rc $(ls -d /var/lib/iq-hub /etc/iq-hub 2>&1 | oneline)"
fi

say "DONE $(date -u +%FT%TZ)"
systemctl poweroff
