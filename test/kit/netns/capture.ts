/**
 * Packet capture with tshark inside a world namespace: an independent view of what is on the wire
 * (Wireshark's own VXLAN dissector, not the switch's idea of it).
 */
import { sleep } from "./exec.js";
import type { NsProcess, World } from "./world.js";

export interface CaptureOptions {
  /** Capture filter (BPF), e.g. "udp port 4789". */
  filter?: string;
  /** Wireshark fields to print per packet, e.g. ["ip.src", "vxlan.vni"]. */
  fields: string[];
  /** Decode-as rules (tshark -d), e.g. ["udp.port==4789,vxlan"]. */
  decodeAs?: string[];
  /** Dissector preferences (tshark -o), e.g. ["tcp.check_checksum:TRUE"]. */
  preferences?: string[];
  /** Pause after tshark reports it is capturing; default 500 ms. */
  settleMs?: number;
  /** How long to wait for tshark to start capturing; default 15 s. */
  startTimeoutMs?: number;
}

/** One packet: each field's values (a field may occur several times, e.g. outer and inner ip.src). */
export type CapturedPacket = Record<string, string[]>;

export class Capture {
  constructor(
    private readonly proc: NsProcess,
    private readonly fields: string[],
  ) {}

  /** Stops tshark and returns the packets it printed. */
  async stop(): Promise<CapturedPacket[]> {
    // Let the last packets through the kernel's capture buffer before tshark goes.
    await sleep(300);
    await this.proc.stop(3000);
    return parseFields(this.proc.stdout, this.fields);
  }
}

const SEP = "\t";
const AGG = "|";

export function parseFields(text: string, fields: string[]): CapturedPacket[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((line) => {
      const cols = line.split(SEP);
      const pkt: CapturedPacket = {};
      fields.forEach((f, i) => {
        const v = cols[i] ?? "";
        pkt[f] = v === "" ? [] : v.split(AGG);
      });
      return pkt;
    });
}

/** Starts tshark on `dev` inside `ns` and resolves once it is capturing. */
export async function startCapture(
  world: World,
  ns: string,
  dev: string,
  options: CaptureOptions,
): Promise<Capture> {
  const args = ["-i", dev, "-n", "-l", "-T", "fields", "-E", `separator=${SEP}`, "-E", "occurrence=a"];
  args.push("-E", `aggregator=${AGG}`);
  if (options.filter) args.push("-f", options.filter);
  for (const d of options.decodeAs ?? []) args.push("-d", d);
  for (const o of options.preferences ?? []) args.push("-o", o);
  for (const f of options.fields) args.push("-e", f);
  const proc = world.start(ns, "tshark", args);
  const until = Date.now() + (options.startTimeoutMs ?? 15_000);
  while (!/Capturing on/.test(proc.stderr)) {
    if (!proc.running) throw new Error(`tshark exited: ${proc.stderr.trim()}`);
    if (Date.now() > until) {
      await proc.stop();
      throw new Error(`tshark did not start capturing on ${dev} in ${ns}: ${proc.stderr.trim()}`);
    }
    await sleep(50);
  }
  // tshark reports "Capturing on" a moment before the first packets are seen.
  await sleep(options.settleMs ?? 500);
  return new Capture(proc, options.fields);
}
