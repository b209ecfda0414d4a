// Loaded into the daemon by the VM boot test only (NODE_OPTIONS=--import=..., a runtime drop-in
// in test/vm/guest-checks.sh): on SIGUSR2 the event loop busy-waits for 10 minutes, as a stuck
// daemon would. The watchdog pings stop and systemd must kill and restart the service.
process.on('SIGUSR2', () => {
  const until = Date.now() + 600_000;
  while (Date.now() < until) {
    // a stuck event loop
  }
});
