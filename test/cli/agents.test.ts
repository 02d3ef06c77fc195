/**
 * dctl asking agents, in-process, without root: node records that publish an API address (or
 * none), agents that answer, refuse the connection, or hang past the timeout; and the agent's
 * side (OperatorApi) over a fake switch. No command may wait longer than its timeout.
 */
import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiError, OperatorApi, type ApiSource, type StatusJson } from "../../src/agent/api.js";
import { buildNodeRecord, createNetwork, parseNode, registerNode } from "../../src/model/index.js";
import { openStore } from "../../src/store/index.js";
import type { Store } from "../../src/store/store.js";
import { dctl } from "./harness.js";

let store: Store;
const servers: Server[] = [];
const sockets: Socket[] = [];
beforeEach(async () => {
  store = await openStore("sqlite::memory:");
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  await store.close();
});

/** An HTTP server on 127.0.0.1 answering with `handler` (or never, without one). */
async function agentAt(
  handler?: (path: string, body: string) => { status: number; body: unknown },
): Promise<string> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      if (handler === undefined) return; // hangs
      const r = handler(req.url ?? "/", body);
      res.writeHead(r.status, { "content-type": "application/json" }).end(JSON.stringify(r.body));
    });
  });
  server.on("connection", (s) => sockets.push(s));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function fakeStatus(node: string, over: Partial<StatusJson> = {}): StatusJson {
  return {
    node,
    version: "0.1.0",
    ready: true,
    following: true,
    storeTroubles: 0,
    lease: { renewedAgoMs: 100, ttlSeconds: 10 },
    peers: { programmed: 1, expected: 1 },
    endpoints: { pods: 2, gateways: 1, remote: 3 },
    offloads: ["tso"],
    drops: { windowMs: 60_000, total: 0, byReason: {} },
    uptimeMs: 1000,
    ...over,
  };
}

describe("node records: the API address", () => {
  it("is optional, kept when valid, refused when not IPV4:PORT", () => {
    const base = {
      schemaVersion: 1,
      name: "n1",
      underlayIp: "10.0.0.1",
      registeredAt: "2026-01-01T00:00:00Z",
    };
    const without = parseNode({ key: "k", value: JSON.stringify(base) });
    expect(without.ok && without.value.apiAddress).toBe(undefined);
    const withApi = parseNode({ key: "k", value: JSON.stringify({ ...base, apiAddress: "10.0.0.1:9464" }) });
    expect(withApi.ok && withApi.value.apiAddress).toBe("10.0.0.1:9464");
    expect(
      buildNodeRecord({ name: "n1", underlayIp: "10.0.0.1", apiAddress: "10.0.0.1:9464" }).apiAddress,
    ).toBe("10.0.0.1:9464");
    expect(() => buildNodeRecord({ name: "n1", underlayIp: "10.0.0.1", apiAddress: "host:1" })).toThrow(
      /invalid API address "host:1"/,
    );
  });
});

describe("dctl status against agents that answer, refuse, hang or publish nothing", () => {
  it("is OK when every agent is ready with its peers", async () => {
    await registerNode(store, {
      name: "n1",
      underlayIp: "10.0.0.1",
      apiAddress: await agentAt(() => ({ status: 200, body: fakeStatus("n1") })),
    });
    await registerNode(store, {
      name: "n2",
      underlayIp: "10.0.0.2",
      apiAddress: await agentAt(() => ({ status: 200, body: fakeStatus("n2") })),
    });
    const r = await dctl(store, "status");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("OK: store reachable, 2 of 2 nodes ready");
  });

  it("reports a hung agent within the timeout, a refused one, and one without an API; exit 1", async () => {
    await registerNode(store, { name: "hung", underlayIp: "10.0.0.1", apiAddress: await agentAt() });
    const refused = await agentAt(() => ({ status: 200, body: {} }));
    await new Promise((r) => servers.pop()?.close(r));
    for (const s of sockets.splice(0)) s.destroy();
    await registerNode(store, { name: "gone", underlayIp: "10.0.0.2", apiAddress: refused });
    await registerNode(store, { name: "mute", underlayIp: "10.0.0.3" });
    const started = Date.now();
    const r = await dctl(store, "status", "--timeout", "0.3");
    expect(Date.now() - started).toBeLessThan(3000);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^hung\s+no answer/m);
    expect(r.stdout).toContain("the agent on hung did not answer at");
    expect(r.stdout).toContain("within 0.3 s");
    expect(r.stdout).toContain(`nothing listens at ${refused} on gone`);
    expect(r.stdout).toMatch(/^mute\s+no API/m);
    expect(r.stdout).toContain(
      "the agent on mute publishes no API address (start overlayd with --metrics-listen IP:PORT)",
    );
    expect(r.stdout).toContain("3 problems");
    const j = await dctl(store, "status", "--timeout", "0.3", "-o", "json");
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, store: { reachable: true } });
  });

  it("names an agent that is not ready, lost the store, or lacks peers; notes drops", async () => {
    const sick = fakeStatus("n1", {
      ready: false,
      following: false,
      storeTroubles: 4,
      peers: { programmed: 0, expected: 1 },
      drops: { windowMs: 60_000, total: 5, byReason: { vni_mismatch: 5 } },
    });
    await registerNode(store, {
      name: "n1",
      underlayIp: "10.0.0.1",
      apiAddress: await agentAt(() => ({ status: 200, body: sick })),
    });
    await registerNode(store, {
      name: "n2",
      underlayIp: "10.0.0.2",
      apiAddress: await agentAt(() => ({ status: 200, body: fakeStatus("n2") })),
    });
    const r = await dctl(store, "status");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("n1: the agent is not ready");
    expect(r.stdout).toContain(
      "n1: the agent does not follow the cluster store (4 failed listings and watches)",
    );
    expect(r.stdout).toContain("n1: 0 peer VTEPs programmed, but 1 other node is registered");
    expect(r.stdout).toContain("n1 dropped 5 frames in the last 60 s (vni_mismatch 5)");
    expect(r.stdout).toContain("see: dctl network overlay drops --node n1");
  });

  it("drops: a hung agent is a warning within the timeout, the others' drops are shown", async () => {
    const events = {
      node: "n1",
      recordingSinceMs: 0,
      sampledOut: 0,
      events: [
        {
          timeMs: Date.parse("2026-01-01T10:00:00.123Z"),
          reason: "vni_mismatch",
          from: "coffee/a",
          vni: 4096,
          protocol: "tcp",
          src: "172.30.0.2",
          dst: "172.30.1.2",
          srcPort: 40000,
          dstPort: 80,
          count: 1,
        },
      ],
    };
    await registerNode(store, {
      name: "n1",
      underlayIp: "10.0.0.1",
      apiAddress: await agentAt(() => ({ status: 200, body: events })),
    });
    await registerNode(store, { name: "n2", underlayIp: "10.0.0.2", apiAddress: await agentAt() });
    const r = await dctl(store, "network", "overlay", "drops", "--timeout", "0.3");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Warning: the agent on n2 did not answer at \S+ within 0.3 s$/m);
    expect(r.stdout).toMatch(
      /^10:00:00\.123\s+n1\s+vni_mismatch\s+coffee\/a\s+4096\s+tcp\s+172\.30\.0\.2:40000\s+172\.30\.1\.2:80\s+1$/m,
    );
  });

  it("trace: an agent's error is one line naming it", async () => {
    await registerNode(store, { name: "n1", underlayIp: "10.0.0.1" });
    const r = await dctl(store, "network", "overlay", "trace", "coffee/a", "10.0.0.9", "--proto", "sctp");
    expect(r.stderr).toBe('Error: invalid --proto "sctp": expected tcp, udp or icmp\n');
  });
});

describe("the agent's operator API over a fake switch", () => {
  function source(over: Partial<ApiSource> = {}): ApiSource {
    return {
      state: () => ({
        ready: true,
        following: true,
        storeTroubles: 0,
        remoteEndpoints: 0,
        pollUs: 100,
        peers: 0,
        ports: [],
        offloads: [],
      }),
      inspection: () => ({
        node: "n1",
        records: undefined,
        pods: [],
        leaseRenewedAt: Date.now(),
        leaseTtlSeconds: 10,
      }),
      dataplane: () => undefined,
      ...over,
    };
  }

  it("answers 503 without a switch, 404 for a pod not on this node", () => {
    const api = new OperatorApi(source());
    expect(() => api.drops({})).toThrow(ApiError);
    expect(api.status()).toMatchObject({ node: "n1", ready: true, drops: null });
    const withSwitch = new OperatorApi(
      source({
        dataplane: () => ({
          counters: () => ({ ports: [], drops: {}, underlay: {} }) as never,
          dropEvents: () => ({ events: [], recordingSinceMs: 0, recordingUntilMs: 0, sampledOut: 0 }),
          trace: () => {
            throw new Error("not reached");
          },
        }),
      }),
    );
    expect(() =>
      withSwitch.trace({ namespace: "coffee", pod: "x", ip: "10.0.0.1", protocol: "icmp" }),
    ).toThrow("pod coffee/x has no port on node n1");
  });

  it("counts drops over the last minute from counter snapshots", () => {
    let total = 10;
    const api = new OperatorApi(
      source({
        dataplane: () => ({
          counters: () => ({ ports: [], drops: { flood: total, vni_mismatch: 0 }, underlay: {} }) as never,
          dropEvents: () => ({ events: [], recordingSinceMs: 0, recordingUntilMs: 0, sampledOut: 0 }),
          trace: () => {
            throw new Error("not reached");
          },
        }),
      }),
    );
    api.start();
    total = 13;
    expect(api.status().drops).toMatchObject({ total: 3, byReason: { flood: 3 } });
    api.stop();
  });
});

describe("dctl connectivity-test against a fake agent: cleanup that does not succeed at once", () => {
  /** One node whose agent starts endpoints, answers pings by namespace, and fails DELETEs as told. */
  async function fakeNode(deletes: (id: string, attempt: number) => number): Promise<void> {
    const ns = new Map<string, string>();
    const attempts = new Map<string, number>();
    let n = 0;
    const address = await agentAt((path, body) => {
      if (path === "/connectivity/endpoints") {
        const b = JSON.parse(body) as { namespace: string };
        const id = `e${++n}`;
        const ip = `172.30.0.${n + 10}`;
        ns.set(ip, b.namespace);
        ns.set(id, b.namespace);
        return { status: 200, body: { id, ip } };
      }
      if (path === "/connectivity/ping") {
        const b = JSON.parse(body) as { from?: string; dst: string };
        const reach = b.from === undefined || ns.get(b.from) === ns.get(b.dst);
        return { status: 200, body: { sent: 3, received: reach ? 3 : 0, bytes: 56, df: true } };
      }
      const del = /^\/connectivity\/endpoints\/(\w+)$/.exec(path);
      if (del) {
        const id = del[1] as string;
        const attempt = (attempts.get(id) ?? 0) + 1;
        attempts.set(id, attempt);
        const status = deletes(id, attempt);
        return { status, body: status === 200 ? { removed: true } : { error: "CNI DEL failed: store busy" } };
      }
      return { status: 404, body: { error: "no" } };
    });
    await registerNode(store, { name: "n1", underlayIp: "10.0.0.1", apiAddress: address });
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16", isolateNs: true, setDefault: true });
  }

  it("tries again and succeeds: exit 0, with a note", async () => {
    await fakeNode((id, attempt) => (id === "e1" && attempt === 1 ? 500 : 200));
    const r = await dctl(store, "connectivity-test");
    expect(r.stderr).toMatch(/^Note: removed connectivity-test-a\/ct-n1-a\d on n1 at attempt 2$/m);
    expect(r.stdout).toContain("OK: 11 checks on 1 node: 11 passed, 0 failed; 3 of 3 test endpoints removed");
    expect(r.code).toBe(0);
  });

  it("gives up after three tries: exit 1, naming the endpoint and the agent's TTL", async () => {
    await fakeNode((id) => (id === "e2" ? 500 : 200));
    const r = await dctl(store, "connectivity-test", "--ttl", "60");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^Problem: could not remove test endpoint connectivity-test-\w\/ct-n1-\w\d on n1 \(the agent on n1 at \S+ answered 500: CNI DEL failed: store busy\); its agent removes it by itself within 60 s$/m,
    );
    expect(r.stdout).toContain(
      "FAILED: 11 checks on 1 node: 11 passed, 0 failed; 2 of 3 test endpoints removed",
    );
  }, 15_000);
});

describe("the agent's connectivity test endpoints", () => {
  it("removes an endpoint at its TTL when nobody else does", async () => {
    let now = 1000;
    const calls: string[] = [];
    const { ConnectivityEndpoints } = await import("../../src/agent/conntest.js");
    const { pino } = await import("pino");
    const t = new ConnectivityEndpoints({
      handle: (req) => {
        calls.push(req.op);
        return Promise.resolve(
          req.op === "ADD"
            ? {
                ok: true,
                result: {
                  interfaces: [],
                  ips: [{ address: "172.30.0.5/16", gateway: "172.30.0.1", interface: 0 }],
                  routes: [],
                  dns: {},
                },
              }
            : { ok: true },
        );
      },
      podMtu: 1450,
      log: pino({ level: "silent" }),
      exec: (file, args) => {
        calls.push(`${file} ${args.slice(0, 2).join(" ")}`);
        return Promise.resolve({
          command: [file, ...args],
          stdout: "",
          stderr: "",
          code: 0,
          signal: null,
          timedOut: false,
        });
      },
      now: () => now,
    });
    const e = await t.create({ namespace: "connectivity-test-a", pod: "p", ttlMs: 5000 });
    expect(e.ip).toBe("172.30.0.5");
    await t.sweep();
    expect(t.list()).toHaveLength(1);
    now += 5000;
    await t.sweep();
    expect(t.list()).toHaveLength(0);
    expect(calls).toEqual(["ip netns add", "ADD", "DEL", "ip netns del"]);
  });
});

describe("the agent's connectivity test endpoints, bounded", () => {
  it("refuses namespaces other than connectivity-test-*", async () => {
    const { ConnectivityEndpoints } = await import("../../src/agent/conntest.js");
    const { pino } = await import("pino");
    const t = new ConnectivityEndpoints({
      handle: () => Promise.reject(new Error("not reached")),
      podMtu: 1450,
      log: pino({ level: "silent" }),
      exec: () => Promise.reject(new Error("not reached")),
    });
    await expect(t.create({ namespace: "coffee", pod: "p", ttlMs: 1000 })).rejects.toThrow(
      "test endpoints live in namespaces named connectivity-test-*, not coffee",
    );
  });
});
