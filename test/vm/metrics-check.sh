#!/bin/bash
# Inside the VM (run by guest-checks.sh): turn the metrics endpoint on (docs/operations.md,
# "Metrics": metrics.listen), restart, scrape it with the package's node, check that every series
# issue 18 lists is declared, then put the config back. Prints one line; exit 1 on a failure.
set -u
NODE=/usr/lib/iq-hub/node/bin/node
cp /etc/iq-hub/config.yaml /root/config.metrics.bak
printf '\nmetrics:\n  listen: "127.0.0.1:9464"\n' >>/etc/iq-hub/config.yaml
systemctl restart iq-hub
for ((i = 0; i < 180; i++)); do [ "$(systemctl is-active iq-hub)" = active ] && break; sleep 1; done
body=$("$NODE" -e 'fetch("http://127.0.0.1:9464/metrics").then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })' 2>&1)
missing=
n=0
for s in iqhub_outbox_depth iqhub_outbox_oldest_age_seconds iqhub_events_stored_total iqhub_events_sent_total \
  iqhub_events_acknowledged_total iqhub_commands_accepted_total iqhub_commands_refused_total \
  iqhub_commands_lockouts_total iqhub_lock_connected iqhub_lock_state iqhub_lock_handshake_failures_total \
  iqhub_access_decision_seconds iqhub_uplink_connected iqhub_radio_up iqhub_store_bytes iqhub_disk_free_bytes; do
  n=$((n + 1))
  grep -q "^# TYPE $s " <<<"$body" || missing="$missing $s"
done
install -o root -g iqhub -m 0640 /root/config.metrics.bak /etc/iq-hub/config.yaml
systemctl restart iq-hub
for ((i = 0; i < 180; i++)); do [ "$(systemctl is-active iq-hub)" = active ] && break; sleep 1; done
if [ -z "$missing" ] && grep -q '^iqhub_uplink_connected 1' <<<"$body"; then
  echo "all $n series declared; iqhub_uplink_connected 1"
else
  echo "missing:$missing; scrape: $(head -c 300 <<<"$body" | tr '\n' ' ')"
  exit 1
fi
