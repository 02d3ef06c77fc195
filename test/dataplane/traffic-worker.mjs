/**
 * A worker thread of test/dataplane/visibility.test.ts: keeps traffic going, or keeps watching
 * it, while the test's main thread is busy in the switch's control calls (replaceRemotes of
 * 10,000 endpoints blocks the main thread for tens of ms; frames must flow meanwhile).
 *
 * role "send": a frame probe on a pod's interface sends `frame` every `intervalMs`, writing into
 * its payload a magic number, its sequence number and its send time. role "receive": a datagram
 * probe on a fake peer VTEP records, for each VXLAN datagram carrying such a frame, its sequence
 * number, send time and arrival time. Times are ms since `baseNs` (process.hrtime.bigint(), the
 * monotonic clock every thread of the process shares).
 *
 * Shared memory: `ctrl` (Int32Array) [0] stop flag, [1] frames sent or entries recorded, [2]
 * ready flag; `data` (Float64Array, receivers) 3 numbers per entry: seq, sent, arrived.
 */
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import { workerData } from "node:worker_threads";

const STOP = 0;
const COUNT = 1;
const READY = 2;
/** Payload layout: magic (u32), seq (u32), send time (f64), all big-endian. */
const MAGIC = 0x76697331;
const PAYLOAD_BYTES = 16;

const w = workerData;
const ctrl = new Int32Array(w.ctrl);
const base = BigInt(w.baseNs);
const nowMs = () => Number(process.hrtime.bigint() - base) / 1e6;
const { Probe } = createRequire(import.meta.url)(w.addon);

if (w.role === "send") {
  const frame = Buffer.from(w.frame);
  const probe = new Probe({ netns: w.netns, ifname: w.ifname });
  Atomics.store(ctrl, READY, 1);
  let seq = 0;
  let next = nowMs();
  while (Atomics.load(ctrl, STOP) === 0) {
    frame.writeUInt32BE(MAGIC, w.payloadOffset);
    frame.writeUInt32BE(seq, w.payloadOffset + 4);
    frame.writeDoubleBE(nowMs(), w.payloadOffset + 8);
    probe.send(frame);
    seq++;
    Atomics.store(ctrl, COUNT, seq);
    // A steady cadence; after a stall (the thread did not get a core) carry on, no burst.
    next = Math.max(next + w.intervalMs, nowMs());
    const wait = next - nowMs();
    if (wait > 0) Atomics.wait(ctrl, STOP, 0, wait);
  }
  probe.close();
} else if (w.role === "receive") {
  const data = new Float64Array(w.data);
  const capacity = Math.floor(data.length / 3);
  const probe = new Probe({ netns: w.netns, ip: w.ip, port: w.port });
  Atomics.store(ctrl, READY, 1);
  let n = 0;
  for (;;) {
    const r = probe.receive(20);
    const arrived = nowMs();
    if (r === null) {
      if (Atomics.load(ctrl, STOP) !== 0) break;
      continue;
    }
    // VXLAN header (8) + the inner frame, whose payload starts at payloadOffset.
    const at = 8 + w.payloadOffset;
    if (r.data.length < at + PAYLOAD_BYTES || r.data.readUInt32BE(at) !== MAGIC) continue;
    if (n >= capacity) continue;
    data[3 * n] = r.data.readUInt32BE(at + 4);
    data[3 * n + 1] = r.data.readDoubleBE(at + 8);
    data[3 * n + 2] = arrived;
    n++;
    Atomics.store(ctrl, COUNT, n);
  }
  probe.close();
} else {
  throw new Error(`unknown role ${String(w.role)}`);
}
