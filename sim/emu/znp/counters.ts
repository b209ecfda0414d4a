/**
 * The ZNP emulator's fault knobs and what it counts. Every part of the emulator (the serial line,
 * the command handlers, the air) adds to the same counters, so they live on their own rather than
 * with any one of them; tests read them to tell a fault that was injected from one that was not.
 */

export interface ZnpFaults {
  /** Probability that one ZCL frame on the air (either way) is lost. */
  readonly dropAir: number;
  /** Probability that one MT frame to the host has a byte flipped (its FCS then fails). */
  readonly corruptSerial: number;
}

export interface ZnpCounters {
  framesIn: number;
  framesOut: number;
  /** Socket writes to the host: the frames answering one read (or sent by one timer) are one burst, one write. */
  hostWrites: number;
  garbageBytes: number;
  badFcs: number;
  malformed: number;
  unknownCommands: number;
  ignoredWhileStalled: number;
  connectionsRefused: number;
  joinsAccepted: number;
  joinsRefused: number;
  /**
   * Join attempts (inside an open window) that failed on the link key: the lock has an install
   * code and the trust center holds no key or another key for it, or the trust center holds an
   * install-code key for a lock that has none. The host never hears of them.
   */
  installCodeJoinsRefused: number;
  /** bdbAddInstallCode requests accepted / refused (bad format, length or CRC). */
  installCodesAdded: number;
  installCodesRefused: number;
  leaves: number;
  airDropped: number;
  serialCorrupted: number;
  linkFragmentsFromHub: number;
  linkFragmentsToHub: number;
  linkRejected: number;
  linkFramesWithoutLink: number;
  dataRequestsNoAck: number;
  /** ZCL frames the coordinator put on the air to a joined device (any cluster), and from devices. */
  airFramesToDevices: number;
  airFramesFromDevices: number;
  /** Of those from devices: the periodic genBasic modelId reports (the locks' "advertisements"). */
  airAdvertisements: number;
}

export function zeroCounters(): ZnpCounters {
  return {
    framesIn: 0,
    framesOut: 0,
    hostWrites: 0,
    garbageBytes: 0,
    badFcs: 0,
    malformed: 0,
    unknownCommands: 0,
    ignoredWhileStalled: 0,
    connectionsRefused: 0,
    joinsAccepted: 0,
    joinsRefused: 0,
    installCodeJoinsRefused: 0,
    installCodesAdded: 0,
    installCodesRefused: 0,
    leaves: 0,
    airDropped: 0,
    serialCorrupted: 0,
    linkFragmentsFromHub: 0,
    linkFragmentsToHub: 0,
    linkRejected: 0,
    linkFramesWithoutLink: 0,
    dataRequestsNoAck: 0,
    airFramesToDevices: 0,
    airFramesFromDevices: 0,
    airAdvertisements: 0,
  };
}
