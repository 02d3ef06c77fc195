/**
 * The etcd helper as later integration tests use it: etcd inside a network namespace, bound to
 * an address on a veth that this test creates (and removes).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdStore } from "../../src/store/etcd.js";
import { StoreUnavailableError } from "../../src/store/store.js";
import { requireEtcdBinary, startEtcd, type TestEtcd } from "../helpers/etcd.js";

const run = promisify(execFile);
const ip = (...args: string[]) => run("ip", args);

const tag = (process.pid % 100_000).toString(36);
const netns = `ovl-etcd-${tag}`;
const hostIf = `oe${tag}h`;
const nsIf = `oe${tag}n`;
// A /30 from the benchmarking range 198.18.0.0/15, varied by pid so parallel runs do not collide.
const octet = process.pid % 250;
const hostIp = `198.18.${octet}.1`;
const nsIp = `198.18.${octet}.2`;

let created = false;

beforeAll(async () => {
  await ip("netns", "add", netns);
  created = true;
  await ip("-n", netns, "link", "set", "lo", "up");
  await ip("link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", netns);
  await ip("addr", "add", `${hostIp}/30`, "dev", hostIf);
  await ip("link", "set", hostIf, "up");
  await ip("-n", netns, "addr", "add", `${nsIp}/30`, "dev", nsIf);
  await ip("-n", netns, "link", "set", nsIf, "up");
});

afterAll(async () => {
  // Deleting the namespace deletes the veth pair with it.
  if (created) await ip("netns", "del", netns);
});

describe("test etcd helper", () => {
  it("says clearly what to install when etcd is missing", () => {
    expect(() => requireEtcdBinary("/nonexistent/etcd")).toThrow(/etcd-server/);
  });

  it("runs etcd in a network namespace on a given address, stops and restarts it, and cleans up", async () => {
    let etcd: TestEtcd | undefined;
    let store: EtcdStore | undefined;
    try {
      etcd = await startEtcd({ netnsName: netns, ip: nsIp });
      expect(etcd.url).toBe(`etcd://${nsIp}:${etcd.clientPort}`);
      const pid = etcd.pid;
      expect(pid).toBeTypeOf("number");
      // The process really lives in the namespace.
      const { stdout } = await ip("netns", "identify", String(pid));
      expect(stdout.trim()).toBe(netns);

      store = new EtcdStore([etcd.endpoint], { timeoutMs: 1500 });
      const r = await store.txn([], [{ type: "put", key: "ns/k", value: "v" }]);
      await etcd.stopServer();
      expect(etcd.pid).toBeUndefined();
      await expect(store.get("ns/k")).rejects.toBeInstanceOf(StoreUnavailableError);
      await etcd.startServer();
      // Same data and ports after the restart.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const got = await store.get("ns/k").catch((e: unknown) => e);
        if (!(got instanceof Error)) {
          expect(got).toMatchObject({ value: "v", modRevision: r.revision });
          break;
        }
        if (Date.now() > deadline) throw got;
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      await store?.close();
      const dataDir = etcd?.dataDir;
      await etcd?.stop();
      if (dataDir !== undefined) expect(existsSync(dataDir)).toBe(false);
    }
  }, 60_000);
});
