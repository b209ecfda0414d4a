/**
 * Every code a HubError may carry, with its hint: what a person should do about it. One list, so
 * `tsc` refuses a misspelt or unknown code, and every error says what to do even where its throw
 * site gives no hint of its own (a throw site's hint, more precise, wins).
 *
 * Spelling: `area.detail`, lowercase, words joined by `-`, dot-separated parts
 * (test/unit/base/error-codes.test.ts checks it). Hints are short and never hold a secret: they are
 * shown to people, logged and sent over the control socket.
 *
 * Not here: the MQTT contract's codes (`bad_request`, `otp_mismatch`, … in src/contract/mqtt.ts and
 * docs/mqtt-api.md) are answers to the cloud, not HubErrors. The codes of this list that reach
 * `cmd/result` or `sync/ack` (lock.*, attach.*, sync.*) are documented there too and keep their
 * spelling byte for byte.
 *
 * src/base imports nothing outside src/base, so families built from other modules' codes are
 * listed member by member (the lock's refusals, the private key files): the throw sites type their
 * parts as unions, and `tsc` refuses a member missing here.
 */

/** For checks of invariants the hub keeps itself: nothing to fix in the installation. */
const BUG = 'a bug in iq-hub, not in the installation: report it with the log lines around it';

export const ERROR_CODES = {
  // the configuration file and its keys
  'config.unreadable': "check the path given with --config and that the daemon's user may read the file",
  'config.syntax': 'fix the YAML syntax at the line shown',
  'config.invalid': 'see docs/configuration.md for every key, its type and its default',
  'config.radios': "give the radio's port in the config, e.g. radios.zigbee.port (docs/configuration.md)",
  'config.provisioning': 'check the provisioning.* keys against docs/configuration.md',
  'config.simulation':
    'set simulation.enabled to false on a real hub; the simulation runs under `iqhub run`, `iqhub demo` and the tests',
  'config.uplink':
    'set uplink.caFile, uplink.certFile and uplink.keyFile together, or none of them to use the identity installed with `iqhub provision`',

  // the database in the data directory
  'store.open': "check that the data directory exists and is writable by the daemon's user",
  'store.locked': 'another iq-hub daemon is running on this data directory; stop it first (systemctl stop iq-hub)',
  'store.corrupt':
    'stop the daemon, keep a copy of the data directory and restore the last backup (docs/operations.md)',
  'store.too-new': 'it was written by a newer iq-hub: install that version again; a downgrade would lose data',

  // a full disk under the data directory (issue 16, item 6): a state the daemon runs through
  'store.disk-full':
    "free space on the data directory's file system (iqhub diag names it); a running daemon keeps events on the locks and collects them when space returns, one that cannot start exits 75 and systemd starts it again",

  // secrets at rest: the storage key and the records sealed with it
  'storage-key.missing': 'create it (32 random bytes, mode 0600) or remove secrets.storageKeyFile to use the default',
  'storage-key.format': 'generate one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE`',
  'storage-key.unreadable':
    "secrets.storageKeyFile must be a regular file (not a symbolic link) that the daemon's user can read",
  'storage-key.not-file': 'secrets.storageKeyFile must name a regular file holding the 32-byte key',
  'storage-key.permissions':
    "only the daemon's user may read the storage key: chmod 600 it, and replace the key if it may have been copied",
  'storage-key.owner': "the storage key file must belong to the daemon's user: chown it as root",
  'storage-key.too-large': 'a storage key is 32 raw bytes or 64 hex digits: check that secrets.storageKeyFile names it',
  'seal.context': BUG,
  'seal.key': 'the storage key must be 32 bytes: check secrets.storageKeyFile',
  'seal.malformed': 'the record is damaged; restore it from the cloud or a backup',
  'seal.open':
    'it was altered, belongs to another record, or the storage key changed: put back the storage key that sealed it, or restore a backup',

  // the store and its storage key as one identity; what a start-up fault means (issue 16, items 4-5)
  'store.missing':
    'restore hub.db from a backup (keep the storage key beside it), or run `iqhub reset --yes` to start afresh (every lock must then be attached again)',
  'store.emptied':
    'restore hub.db from a backup (keep the storage key beside it), or run `iqhub reset --yes` to start afresh (every lock must then be attached again)',
  'store.key-missing':
    'put back the storage key that sealed this store (from your key backup), or run `iqhub reset --yes` to start afresh (every lock must then be attached again)',
  'store.key-mismatch':
    'put back the storage key that sealed this store (compare fingerprints), or restore the matching hub.db; `iqhub reset --yes` starts afresh',
  'store.hub-mismatch':
    "this store belongs to another hub: restore this hub's own data directory, or run `iqhub reset --yes` to start afresh",
  'store.not-a-database': 'the file is not an iq-hub database: move it aside and restore hub.db from a backup',
  'store.read-only':
    'the data directory is on a read-only file system: remount it read-write (the store is left untouched)',
  'store.not-writable':
    "the daemon's user cannot write the data directory: fix its owner and mode (chown iqhub:iqhub DIR; chmod 0700 DIR); the store is left untouched",
  'config.yaml-aliases': 'the configuration needs no YAML aliases: write the values out instead of `*alias` references',
  'reset.not-confirmed': 'run `iqhub reset --yes` (read what it does in `iqhub reset --help` first)',
  'reset.daemon-running': 'stop the daemon first: systemctl stop iq-hub',
  'reset.failed': 'nothing was deleted: check the message, fix it and run `iqhub reset --yes` again',

  // OCRA (RFC 6287), the one-time passwords of remote commands
  'ocra.suite-invalid': 'an OCRA suite looks like OCRA-1:HOTP-SHA256-8:C-QH64-T30S (RFC 6287 section 6)',
  'ocra.input-invalid': 'give every input the suite names (counter, question, time step…) in the format it names',

  // remote commands: the OTP key, the counter, sealed setup codes
  'commands.no-uplink': 'configure uplink (docs/configuration.md) or enrol the hub (docs/installing.md)',
  'commands.not-ready': 'iqhub status shows the uplink; try again once it says connected',
  'commands.otp-key.invalid':
    'install the OTP key delivered at enrollment (iqhub pki dev writes otp.key for development)',
  'commands.otp-key.sealed':
    'the storage key changed or the database was altered: install the OTP key file again (commands.otpKeyFile)',
  'commands.otp-key.unreadable':
    "commands.otpKeyFile must be a regular file (not a symbolic link) that the daemon's user can read",
  'commands.otp-key.not-file': 'commands.otpKeyFile must name a regular file holding the OTP key',
  'commands.otp-key.permissions':
    "only the daemon's user may read the OTP key: chmod 600 it, and have the key replaced if it may have been copied",
  'commands.otp-key.owner': "the OTP key file must belong to the daemon's user: chown it as root",
  'commands.otp-key.too-large': 'an OTP key is 32 raw bytes or 64 hex digits: check that commands.otpKeyFile names it',
  'counter.not-above': 'the command was not carried out: the cloud must send it again with a higher counter',
  'otp.canonical': 'the cloud must send plain JSON (no values without a canonical form) and sign exactly that',
  'otp.setup-code': "the cloud must seal the setup code with this hub's OTP key for this very cmdId (docs/mqtt-api.md)",

  // the access mirror: credentials, schedules, digital keys, offline lists
  'access.cloud-key':
    'give the cloud signing key from enrollment (iqhub pki dev writes cloud-signing.pub), or set access.cloudKeyFile to null',
  'access.config': 'offline list options are positive integers, and horizonDays is at most 60',
  'access.door-proof': BUG,
  'access.ed25519': 'give a raw Ed25519 key: a 32-byte seed for a private key, 32 bytes for a public key',
  'access.key-body': 'the digital key is malformed: the cloud must issue it again (docs/digital-keys.md)',
  'access.no-offline-list':
    'only bound locks get one; iqhub locks lists them (a lock bound a moment ago gets its list shortly)',
  'access.pin': 'a PIN is 4 to 12 digits (0-9) and nothing else',
  'access.pin-key': 'the site PIN key is 32 bytes: install the one delivered at enrollment again',
  'access.pin-throttle': 'wrongCodeLimit must be a positive integer and disableMs a number of milliseconds >= 0',
  'access.schedule':
    'give each interval as HH:MM to HH:MM (or 24:00) with at least one day; an interval past midnight is two intervals (docs/access.md)',
  'access.site-id': 'a site id is 1-64 of A-Z a-z 0-9 . _ : - and starts with a letter or digit',
  'access.tag-id': 'a tag credential id is 1 to 64 bytes',
  'access.time': 'write it like 2026-03-29T07:00:00Z or 2026-03-29T09:00:00+02:00',
  'access.time-zone': 'give the site an IANA time zone name such as Europe/Madrid or America/New_York',

  // the cloud's syncs of the mirror: answered on sync/ack with these codes (docs/access.md)
  'sync.invalid': 'the sync was not applied; the cloud must send a corrected one',
  'sync.duplicate': 'the sync was not applied; the cloud must send each id, PIN verifier and tag hash once',
  'sync.base-mismatch': 'the cloud must send a snapshot',
  'sync.stale-version': 'versions only increase; the cloud must send a newer snapshot',
  'sync.unknown-reference': 'the cloud must send a snapshot',
  'sync.too-large': 'the sync was not applied; the site holds more than one hub can mirror (docs/access.md, LIMITS)',
  // a sync sent in parts (docs/mqtt-api.md, "Sync in parts")
  'sync.incomplete':
    'not every part of the sync arrived in time (uplink.syncPartsTimeoutSec) or a newer sync replaced it; nothing was applied: send the sync again',
  'sync.part-mismatch':
    'every part of a sync carries the same sync id, kind, version, baseVersion, count and digest, and one set is received at a time: send the set again, with a new sync id',
  'sync.part-conflict':
    'a part of that index was already received with other content: send the whole set again, with a new sync id',
  'sync.part-out-of-range': 'a part index runs from 0 to count - 1',
  'sync.digest-mismatch':
    'the parts do not join to their digest (SHA-256 of the chunks joined in index order): nothing was applied; send the set again',
  'answer.too-large': 'the answer would exceed uplink.maxMessageBytes: ask for less (listLocks: a smaller limit)',

  // the lock link: Noise handshakes, the sealed transport, link frames
  'noise.config': BUG,
  'noise.state': BUG,
  'noise.size': BUG,
  'noise.decrypt': 'the message was altered, or the peer holds different keys; abort this session',
  'noise.dh': 'abort this handshake; the peer is faulty or hostile',
  'noise.nonce': 'run a new handshake',
  'noise.truncated': 'abort this handshake: the peer sent a short message (a faulty radio link, or a hostile peer)',
  'link.config': BUG,
  'link.oversize': BUG,
  'link.exhausted': 'run a new handshake with the lock; counters never wrap',
  'link.not-started': 'the daemon is still starting: try again once iqhub status shows it running',
  'frame.invalid': BUG,

  // the locks: answered on cmd/result with these codes (docs/mqtt-api.md)
  'lock.unknown': 'iqhub locks lists the locks attached to this hub',
  'lock.unreachable': 'it may be out of range or without power; iqhub lock shows when it was last seen',
  'lock.not-bound': 'iqhub lock shows its state: wait for a detach to finish, or attach it again',
  'lock.quarantined':
    'see iqhub security; iqhub lock ID --check if the real lock is back, else detach or forget it and attach it again',
  'lock.refused': 'see iqhub lock ID; if the lock was reset or replaced, detach or forget it and attach it again',
  // what the lock itself answered (LOCK_ERROR_CODES in src/contract/link-messages.ts)
  'lock.bad-request': 'the lock could not read the request: check that the lock firmware and iq-hub are compatible',
  'lock.unsupported': "the lock's firmware does not support this operation",
  'lock.busy': 'the lock is busy with another operation: try again in a few seconds',
  'lock.jammed': 'the bolt is jammed: check the door and the lock on site',
  'lock.battery-critical': "replace the lock's batteries",
  'lock.not-attached':
    'the lock says it is attached to no hub (reset, or an imitation): see iqhub security, then forget it and attach it again',
  'lock.internal': 'the lock reported an internal fault: try again; if it persists, have the lock serviced',

  // attaching a lock: answered on cmd/result with these codes (docs/mqtt-api.md)
  'attach.already-attached': 'detach it first (iqhub detach ID), or iqhub forget ID --force if it was destroyed',
  'attach.in-progress': 'wait for the running attach of this lock to finish',
  'attach.unreachable': 'move closer to the lock, or check the radio with iqhub status',
  'attach.not-found': 'check the device id on the sticker, that the lock has power, and that it is in range',
  'attach.not-in-attach-mode': 'present the maintenance card to the lock, then attach within a minute',
  'attach.wrong-setup-code': "check the setup code on the lock's sticker; if it is right, this device is not that lock",
  'attach.refused': 'the lock refused this hub: reset it to factory state, put it in attach mode and attach again',
  'attach.failed': 'stay in range of the lock and try again while it is in attach mode',
  'attach.install-code':
    'give the install code printed on the lock (or its QR text), once the ZigBee radio is ready (docs/zigbee.md)',

  // the radios
  'radio.no-zigbee': 'set radios.zigbee.enabled and radios.zigbee.port in the config (docs/zigbee.md)',
  'ble.config': 'fix the BLE option named in the message (docs/ble.md)',
  'zigbee.config': 'fix the ZigBee option named in the message (docs/zigbee.md)',
  'zigbee.data-dir': 'dataDir must be writable by the hub user',
  'zigbee.network-file': 'restore it from a backup of the data directory; a new network would orphan every joined lock',
  'zigbee.backup':
    'iqhub backup --list shows the sealed backups present; iqhub backup makes a new one (docs/zigbee.md)',
  'zigbee.unavailable': 'retry once the ZigBee radio is ready (iqhub status)',

  // the durable outbox to the cloud
  'outbox.bad-limit': 'set uplink.outboxMaxMB to a positive size',
  'outbox.bad-topic': BUG,
  'outbox.not-contract': BUG,

  // the cloud uplink: broker, TLS files, claim enrollment, certificate rotation
  'uplink.bad-url': 'write it as mqtts://host:8883',
  'uplink.insecure-url': 'write it as mqtts://host:8883; there is no plaintext (mqtt://, ws://) fallback, by design',
  'uplink.bad-hub-id': 'use the CN of the hub certificate: 1-64 characters of A-Za-z0-9._:- (no /, + or #)',
  'uplink.hub-id':
    "a certificate's CN is an MQTT topic level: have it issued with 1-64 of A-Z a-z 0-9 . _ : - (no / + #)",
  'uplink.files': 'check uplink.* and provisioning.* in the config and the file permissions',
  'uplink.tls-material': 'check the certificate, key and CA files (PEM; the key must belong to the certificate)',
  'uplink.no-identity':
    'run `iqhub provision init`, have the CSR signed and `iqhub provision install --cert FILE --ca FILE` (or enroll with a claim certificate); or set uplink.caFile, uplink.certFile and uplink.keyFile',
  'uplink.key.invalid': 'give the PEM private key that belongs to the certificate',
  'uplink.key.mismatch': 'install the key that was generated with this certificate, or issue a new certificate',
  'uplink.key.missing': 'check the path of the private key in the config',
  'uplink.key.unreadable':
    "the private key must be a regular file (not a symbolic link) that the daemon's user can read",
  'uplink.key.not-file': 'the private key must be a regular file',
  'uplink.key.permissions':
    "only the daemon's user may read the private key: chmod 600 it, and replace the key if it may have been copied",
  'uplink.key.owner': "the private key file must belong to the daemon's user: chown it as root",
  'uplink.key.too-large': 'check that the config names the PEM private key, not another file',
  'enroll.connection': 'check the network and the broker; the hub retries with backoff',
  'enroll.timeout': 'the cloud did not answer; the hub retries with backoff',
  'enroll.refused':
    "the cloud or broker refused the claim: check the claim certificate and the broker's ACL (docs/mqtt-api.md)",
  'enroll.incomplete': 'the cloud must answer with cert, ca and secrets (docs/mqtt-api.md); the hub retries',
  'enroll.ca-mismatch': 'the cloud must return the CA the hub was built to trust (provisioning.claimCaFile)',
  'enroll.secret': "the cloud must wrap each secret for the key of this hub's CSR (docs/mqtt-api.md); the hub retries",
  'enroll.stopped': 'the daemon stopped during enrollment; it enrolls again at its next start',
  'rotation.timeout': 'the cloud did not answer; the hub asks again later',
  'rotation.not-sent': "check the broker's ACL for cert/request; the hub asks again later",
  'rotation.refused':
    'the cloud refused the renewal; the hub asks again later, and the current certificate stays in use',
  'rotation.switch':
    'the broker did not accept the new certificate; the old one stays in use and the hub asks again later',
  'rotation.no-identity': 'install the hub certificate again (`iqhub provision install --cert FILE --ca FILE`)',

  // the hub's identity: iqhub provision, iqhub cert, iqhub pki dev
  'identity.none': '`iqhub provision init`, have the CSR signed, then `iqhub provision install --cert FILE --ca FILE`',
  'identity.unreadable':
    "run as the daemon's user (e.g. `sudo -u iqhub iqhub ...`) and check the permissions of the identity directory",
  'identity.incomplete': 'install the certificate again with its CA: `iqhub provision install --cert FILE --ca FILE`',
  'identity.damaged': 'install the certificate again (`iqhub provision install --cert FILE --ca FILE`)',
  'identity.no-key':
    'the key cannot be recovered: make a new one with `iqhub provision init --force` and have its CSR signed',
  'identity.key-mismatch':
    'install the certificate issued for this key, or make a new key with `iqhub provision init --force`',
  'identity.hub-id':
    'the CN is the hub id and an MQTT topic segment: have the certificate issued with 1-64 of A-Z a-z 0-9 . _ : - (no / + #)',
  'identity.key.unreadable':
    "run as the daemon's user (e.g. `sudo -u iqhub iqhub ...`); the hub's key must not be a symbolic link",
  'identity.key.not-file': "the hub's key must be a regular file: make a new one with `iqhub provision init --force`",
  'identity.key.permissions':
    "only the daemon's user may read the hub's key: chmod 600 it, and make a new key if it may have been copied",
  'identity.key.owner': "the hub's key must belong to the daemon's user: chown it as root",
  'identity.key.too-large': "the hub's key file is not a key: make a new one with `iqhub provision init --force`",
  'provision.bad-hub-id': 'a hub id is 1-64 of A-Z a-z 0-9 . _ : - and starts with a letter or digit (e.g. "hub-0001")',
  'provision.no-hub-id':
    'pass --hub-id ID (the id the cloud knows this hub by), or set provisioning.hubId in the config',
  'provision.no-key': 'run `iqhub provision init` first: it makes the key and its CSR',
  'provision.key-exists':
    '`iqhub provision csr` prints the CSR for it again; `--force` makes a new key (a new certificate must then be issued)',
  'provision.bad-key': 'make a new key and CSR with `iqhub provision init --force`, and have the new CSR signed',
  'provision.unreadable': 'check the path',
  'provision.not-pem': 'pass the PEM certificate file',
  'provision.key-mismatch':
    "have the CA sign this hub's own CSR (`iqhub provision csr`); a certificate made for another key cannot be used",
  'provision.wrong-ca': 'pass the CA that issued this certificate with --ca, or have the certificate issued by that CA',
  'provision.cn-mismatch': 'the CA must issue the certificate with CN = the hub id, as the CSR asks',
  'provision.not-client-cert': 'have the CA issue a client certificate (extendedKeyUsage = clientAuth) from the CSR',
  'provision.not-yet-valid':
    "if the hub's clock is wrong, set it (timedatectl; check NTP) and install again; otherwise have a certificate issued that is valid now",
  'provision.expired':
    "have a new certificate issued from the CSR (`iqhub provision csr`); if the hub's clock is wrong, set it first",
  'provision.wrong-user':
    "run the command as the daemon's user, who owns the data directory (sudo -u USER iqhub provision ...)",
  'pki.bad-identity':
    'choose an id of printable characters without +, # or / (e.g. "hub-0001"), and a cloud id other than the hub id',
  'pki.bad-days': 'pass a whole number of days, e.g. 825',
  'pki.bad-host': 'pass the name or address clients use to reach the broker, e.g. "mqtt.example.com"',
  'pki.exists':
    'use another directory, or add --force to `iqhub pki dev` to replace it (certificates issued by it stop working)',
  'pki.bad-file-name': "use letters, digits, '.', '_' or '-', and not 'ca' or 'broker'",
  'pki.bad-otp-key': 'make one with iqhub pki dev, or write 32 random bytes as hex',

  // the control socket: the daemon's side, and iqhub's side of a call
  'control.in-use': 'stop it first (systemctl stop iq-hub), or give this one another runDir',
  'control.too-large': 'the request was too long: check its arguments',
  'control.bad-json': 'use an iqhub of the same version as the daemon',
  'control.bad-request': 'use an iqhub of the same version as the daemon',
  'control.unknown-method': 'use an iqhub of the same version as the daemon',
  'control.bad-params': 'check the arguments of the command (iqhub COMMAND --help)',
  'control.internal': 'check `journalctl -u iq-hub` for the error',
  'daemon.not-running':
    'start it with `systemctl start iq-hub` (or `iqhub run --config FILE`); to try it out, `npm start` runs a demo',
  'daemon.forbidden': 'run as a member of the iqhub group, or with sudo',
  'daemon.unreachable': 'check `journalctl -u iq-hub`',
  'daemon.timeout': 'check `journalctl -u iq-hub`',
  'daemon.bad-reply': 'check `journalctl -u iq-hub`, and that iqhub and the daemon are the same version',
  'daemon.unknown-error':
    'iqhub and the daemon may be different versions: install the same version of both; `journalctl -u iq-hub` has the details',

  // the command line
  'cli.cancelled': 'run the command again',
  'cli.needs-force': 'use iqhub detach ID for a working lock; add --force for a destroyed one',
  'cli.no-setup-code': 'pipe it in, or type it when asked',
  'cli.install-code-file':
    'give the file that holds the install code printed on the lock (or scanned from its QR code) on its first line (docs/zigbee.md)',

  // the simulation's, for the demo and the tests
  'sim.config': 'a simulated site has 0 to 1000 locks',
  'sim.unknown-lock': 'name a lock of the simulated site',
  'sim-lock.config': 'fix the simulated lock option named in the message',
  'sim-lock.input': 'give a value in the range the message names',
  'sim-lock.running': 'it is already running: use it as it is, or crash() it before booting it again',
  'sim-lock.off': 'boot() it first',
  'sim-lock.bind': 'give the 32-byte public key of the hub',
  'sim-lock.offline-full': 'give the simulated lock fewer offline entries at once',
  'sim-lock.seq-exhausted': 'reset the simulated lock (remove its storage file) and attach it again',
  'sim-lock.internal': BUG,
  'sim-lock.storage-corrupt':
    'restore the file from a backup, or remove it to reset the lock to its factory state (it must then be attached again)',
  'sim-lock.storage-unreadable':
    'check the file permissions, or remove the file to reset the lock to its factory state',
  'sim-lock.storage-unwritable': 'check the file permissions and the free space of the simulation directory',
  'sim-radio.config': 'fix the simulated radio option named in the message',
  'sim-radio.duplicate-address': 'give each simulated peripheral its own address',
  'sim-site.config': 'give install codes to ZigBee locks only',
  'hci-emu.config': 'attMtu is an integer 23…517',
  'hci-emu.address': 'write a BLE address as aa:bb:cc:dd:ee:ff',
  'hci-emu.closed': 'the HCI emulator was closed: start a new one',
  'hci-emu.duplicate-address': 'give each emulated peripheral its own address',
  'znp-emu.config': 'fix the ZNP emulator option named in the message',
  'znp-emu.duplicate-address': 'give each emulated device its own address',
  'znp-emu.unknown-device': 'name a device the ZNP emulator holds',
  'pty.start': 'check that socat is installed and that the emulator listens on the bridged TCP port',
  'broker.listen': 'choose another port (0 picks a free one) or stop what is using it',
  'cloud.admin': 'name a row the reference cloud holds',
  'phone.no-key': 'deliver a digital key to the simulated phone first',
  'phone.key-seal': 'seal only a key the cloud signed',
  'phone.key-open': 'it was sealed to another phone, altered, or relabelled with another key id',
  'phone.key-malformed': 'deliver a key the reference cloud issued, unaltered',
  'phone.key-not-mine': 'deliver the key to the phone it was issued for',
  'phone.key-signature': "deliver a key signed by the site's cloud key",
  // site PIN key delivery and rotation (src/access/pin-keys.ts, docs/digital-keys.md)
  'sync.pin-key': 'the sync was not applied: the cloud must seal the PIN key to this hub and give each version one key',
  'sync.pin-key-downgrade':
    'the sync was not applied: PIN key versions only increase; the cloud must send the current version or a newer one',
  'access.pin-key-store': 'a stored PIN key does not open with the storage key: the cloud must send the key again',
  // Metrics endpoint (src/metrics, issue 18).
  'config.metrics': 'see metrics.listen and metrics.allowRemote in docs/configuration.md',
  'metrics.in-use':
    'stop what listens there (ss -ltnp, or a stale socket file another daemon holds), or choose another metrics.listen',
  'metrics.listen':
    'check that the directory of the socket exists and is writable by the daemon (e.g. /run/iq-hub), or choose another metrics.listen',
  // hub backup and replacement (iqhub hub-backup, iqhub hub-restore; docs/operations.md, "Hub replacement")
  'backup.no-recovery-key':
    'set backup.recoveryPublicKey in the config to the cloud\'s recovery public key (docs/operations.md, "Hub replacement")',
  'backup.recovery-key':
    "backup.recoveryPublicKey must be the cloud's X25519 recovery public key, 32 bytes in base64url",
  'backup.no-hub-id': 'install the hub certificate (iqhub provision) or set provisioning.hubId, or pass --hub-id',
  'backup.snapshot': 'check the free space and permissions of the data directory, then run iqhub hub-backup again',
  'backup.unreadable': 'check the path and that this user may read it',
  'backup.malformed': 'use the file exactly as it was written (iqhub hub-backup, iqhub hub-restore, or the cloud)',
  'backup.open': 'the backup was altered or sealed to another recovery key: use an intact copy made for this cloud',
  'backup.recovery-key-mismatch':
    "the backup was sealed to another recovery key: check the hub's backup.recoveryPublicKey",
  'backup.same-hub': 'a replacement hub has its own certificate and hub id; the old one is revoked',
  'backup.no-request': 'run `iqhub hub-restore FILE` first and send the request it writes to the cloud',
  'backup.approval-mismatch': "ask the cloud for the approval of this hub's request for this backup",
  'backup.approval-open': 'the approval was altered or made for another request: ask the cloud for a new one',
  'backup.target-not-empty':
    'restore into the fresh data directory of the new hub (`iqhub reset --yes` moves a store aside)',
  'backup.daemon-running': 'stop the daemon first (systemctl stop iq-hub), then run iqhub hub-restore again',
  'backup.hub-revoked': 'this hub was replaced and its certificate revoked; it may not be used again',
  'backup.identity': "check the hub's identity key and certificate (iqhub provision; iqhub cert)",
  'backup.request-identity':
    "the restore request must be signed by the new hub's own certificate, issued by the hubs' CA, CN = the new hub id",
  // Lock firmware update relay (src/firmware/, docs/operations.md "Firmware updates").
  'firmware.malformed': 'give the image file the vendor or the cloud published, unaltered',
  'firmware.forged':
    'the image is not signed by a vendor key pinned in firmware.vendorKeys: get the image from the vendor again, or pin its key',
  'firmware.truncated': 'the image is incomplete: download or copy it again',
  'firmware.digest-mismatch': 'the image was altered or damaged: download or copy it again',
  'firmware.wrong-model': 'choose the image built for this lock model (iqhub firmware status shows each lock’s model)',
  'firmware.downgrade': 'install a newer version, or ask the vendor for an image that allows a downgrade',
  'firmware.too-large': 'the image exceeds firmware.maxImageBytes or what the lock can hold',
  'firmware.unknown-image': 'upload the image first (iqhub firmware push FILE LOCK… does both)',
  'firmware.busy': 'a transfer to this lock is already running: wait for it or cancel it',
  'firmware.lock-refused':
    'the lock refused the image or its install: see the outcome in the message; the old firmware keeps running',
  'firmware.failed':
    'the transfer stopped; it resumes from where the lock stopped when retried (iqhub firmware push again)',
  'cli.firmware-file': 'give the path of the image file the vendor or the cloud published',
  // OTP key delivery over the uplink and syncNow (issue 17: factory-provisioned hubs, sync requests).
  'otp-key.identity': "the hub's certificate key must be RSA, EC or Ed25519 to sign its delivery key",
  'otp-key.does-not-open':
    "the delivery was sealed to another hub or key, or altered: the cloud must seal to the key of this hub's latest otp-key/request",
  'otp-key.malformed': 'the cloud must seal exactly the 32-byte OTP key',
  'sync.request-not-sent':
    'the uplink is down or the broker refused sync/request: send syncNow again once the hub is online',
  // The pending restore key (hub replacement), read as a private file.
  'backup.restore-key.unreadable':
    "the restore key under <data>/restore must be a regular file (not a symbolic link) that the daemon's user can read",
  'backup.restore-key.not-file': 'the restore key under <data>/restore must be a regular file',
  'backup.restore-key.permissions':
    "only the daemon's user may read the restore key: remove <data>/restore and ask for a new restore (iqhub hub-restore FILE)",
  'backup.restore-key.owner':
    "the restore key must belong to the daemon's user: chown it as root, or make a new request",
  'backup.restore-key.too-large': 'the restore key is 64 bytes: remove <data>/restore and make a new request',
  // The demo as a package of its own, and its external broker (issue 18: iq-hub-demo, iqhub demo --broker).
  'demo.not-installed':
    'install the package iq-hub-demo of the same version as iq-hub (built beside it by npm run package); a production hub does not need it',
  'demo.broker':
    'give --broker an mqtts:// URL and --broker-pki a directory as `iqhub pki dev` writes it (ca.crt, hub.crt, hub.key, cloud.crt, cloud.key)',
  // Group commits (issue 15: one durable commit per command on the critical path).
  'store.closed': 'the daemon is stopping: what was queued before the stop was committed; retry once it runs again',
  // The command line's review (issue 15): an empty --socket is refused, not read as "from the config".
  'cli.socket-path': "give the path of the daemon's control socket, or leave --socket out to take it from the config",
  // Store.commitLater inside a transaction (tzif helper, issue 15 review of the lazy writes).
  'store.rolled-back':
    'the write ran inside a transaction that was then rolled back (see the cause): nothing of it is stored; retry it',
} as const;

export type HubErrorCode = keyof typeof ERROR_CODES;

/** Whether a string from outside (the daemon's reply) is a code of this list. */
export function isHubErrorCode(s: string): s is HubErrorCode {
  return Object.hasOwn(ERROR_CODES, s);
}
