/**
 * Probes put crafted bytes where a pod or a peer VTEP would and read what the switch sends:
 * a frame probe sits on an interface (a pod's eth0), a datagram probe on an underlay address.
 * Used by the data-plane tests and for diagnostics; never on the packet path.
 */
import { isIPv4 } from "node:net";
import { loadNative } from "./load.js";
import type { NativeProbe } from "./native.js";
import { switchLimits } from "./switch.js";

function checkPort(port: number): void {
  const { min, max } = switchLimits().udpPort;
  if (!Number.isInteger(port) || port < min || port > max) {
    throw new RangeError(
      `port must be an integer from ${min} to ${max} (switchLimits().udpPort), got ${port}`,
    );
  }
}

export interface Received {
  data: Buffer;
  /** Sender's IPv4 address (datagram probes). */
  from?: string;
}

export class Probe {
  private native: NativeProbe | undefined;

  private constructor(native: NativeProbe) {
    this.native = native;
  }

  /** An AF_PACKET socket on `ifname` inside the namespace at `netns` (a path; "" = own). */
  static frames(netns: string, ifname: string): Probe {
    return new Probe(new (loadNative().Probe)({ netns, ifname }));
  }

  /** A UDP socket bound to ip:port inside the namespace at `netns`. */
  static datagrams(netns: string, ip: string, port: number): Probe {
    if (!isIPv4(ip)) throw new TypeError(`ip must be an IPv4 address, got ${ip}`);
    checkPort(port);
    return new Probe(new (loadNative().Probe)({ netns, ip, port }));
  }

  private get n(): NativeProbe {
    if (!this.native) throw new Error("probe is closed");
    return this.native;
  }

  /** Sends one frame (frame probe), or one datagram to ip:port (datagram probe). */
  send(data: Buffer, to?: { ip: string; port: number }): void {
    if (to === undefined) {
      this.n.send(data);
      return;
    }
    if (!isIPv4(to.ip)) throw new TypeError(`ip must be an IPv4 address, got ${to.ip}`);
    checkPort(to.port);
    this.n.send(data, to.ip, to.port);
  }

  /** Waits up to timeoutMs for the next frame or datagram; null when none came. Blocks. */
  receive(timeoutMs = 1000): Received | null {
    return this.n.receive(timeoutMs);
  }

  /** Receives until `match` accepts one, or the time is up. */
  receiveMatching(match: (r: Received) => boolean, timeoutMs = 1000): Received | null {
    const end = Date.now() + timeoutMs;
    for (let left = timeoutMs; left > 0; left = end - Date.now()) {
      const r = this.receive(left);
      if (r === null) return null;
      if (match(r)) return r;
    }
    return null;
  }

  close(): void {
    this.native?.close();
    this.native = undefined;
  }
}
