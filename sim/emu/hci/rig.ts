import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PtyBridge } from '../pty.js';
import { HciEmulator, type HciEmulatorOptions } from './controller.js';

/**
 * An emulated BLE adapter on a serial port: the HCI emulator (a TCP server) behind a socat PTY at
 * `path`. Point the BLE driver at `path` as a UART; host simulated locks on `emulator`.
 */
export interface EmulatedAdapter {
  readonly emulator: HciEmulator;
  readonly pty: PtyBridge;
  /** The serial port path. */
  readonly path: string;
  close(): Promise<void>;
}

export async function startEmulatedAdapter(socat: string, options: HciEmulatorOptions = {}): Promise<EmulatedAdapter> {
  const dir = mkdtempSync(join(tmpdir(), 'iqhub-hci-'));
  const emulator = await HciEmulator.start(options);
  const path = join(dir, 'ttyBLE');
  /** Undoes the start, whether the PTY came up or not. */
  const teardown = async (pty?: PtyBridge) => {
    await pty?.close();
    await emulator.close();
    rmSync(dir, { recursive: true, force: true });
  };
  let pty: PtyBridge;
  try {
    pty = await PtyBridge.open({ socat, path, port: emulator.port });
  } catch (e) {
    await teardown();
    throw e;
  }
  return { emulator, pty, path, close: () => teardown(pty) };
}
