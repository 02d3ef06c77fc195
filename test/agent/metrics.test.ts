/**
 * `overlayd --metrics-listen IP:PORT` serves Prometheus metrics: the switch's counters per pod
 * port and per drop reason, the underlay's, what the agent programmed, and the process's own.
 * Scraped from inside the node's namespace, where the agent listens.
 */
import { describe, expect, it } from "vitest";
import { agentLogs, skipReason, useTalkingPods } from "../e2e/cluster.js";

const skip = skipReason("test/agent/metrics.test.ts");
const PORT = 9464;

/** Samples of one metric, as `{labels} value` pairs. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

describe.skipIf(skip !== undefined)("overlayd metrics", () => {
  const pods = useTalkingPods({ store: "sqlite", agentArgs: ["--metrics-listen", `0.0.0.0:${PORT}`] });

  async function scrape(node: number, path = "/metrics"): Promise<{ status: number; body: string }> {
    const { c } = pods;
    const n = c.node(node);
    const script =
      `const r = await fetch("http://${n.underlayIp}:${PORT}${path}");` +
      `process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() }));`;
    const r = await c.world!.exec(n.short, process.execPath, ["--input-type=module", "-e", script]);
    return JSON.parse(r.stdout) as { status: number; body: string };
  }

  it("counts a pod's traffic on its port, by namespace/pod", async () => {
    const { c, a, b } = pods;
    const before = await scrape(0);
    const sent = (text: string) =>
      samples(text, "overlay_port_received_packets_total").find((s) => s.labels.port === `coffee/${a.name}`)
        ?.value;
    const was = sent(before.body) ?? 0;
    await c.ping(a, b.ip, { count: 3 });
    const after = await scrape(0);
    expect(after.status).toBe(200);
    expect(sent(after.body), agentLogs(c)).toBeGreaterThanOrEqual(was + 3);
    const port = samples(after.body, "overlay_port_received_packets_total").find(
      (s) => s.labels.port === "coffee/web-a",
    );
    expect(port?.labels).toMatchObject({ kind: "pod", network: "red" });
    expect(
      samples(after.body, "overlay_underlay_datagrams_total").find((s) => s.labels.direction === "tx")?.value,
    ).toBeGreaterThan(0);
  });

  it("lists every drop reason, what the agent programmed, the offloads and the process's memory", async () => {
    const { body } = await scrape(1);
    const reasons = samples(body, "overlay_drops_total").map((s) => s.labels.reason);
    expect(reasons).toEqual(
      expect.arrayContaining(["spoofed_mac", "vni_mismatch", "unknown_dest", "vxlan_unknown_peer"]),
    );
    expect(samples(body, "overlay_agent_ready")[0]?.value).toBe(1);
    expect(samples(body, "overlay_peers")[0]?.value).toBe(1);
    // Node 1 knows web-a and node 0's gateway.
    expect(samples(body, "overlay_remote_endpoints")[0]?.value).toBeGreaterThanOrEqual(2);
    const ports = samples(body, "overlay_local_ports");
    expect(ports.find((s) => s.labels.kind === "pod")?.value).toBe(1);
    expect(ports.find((s) => s.labels.kind === "gateway")?.value).toBe(1);
    expect(samples(body, "overlay_offload_active").find((s) => s.labels.offload === "tso")?.value).toBe(1);
    expect(samples(body, "overlay_poll_window_bound_microseconds")[0]?.value).toBe(100);
    const found = samples(body, "overlay_thread_batches_total").map((s) => s.labels.found);
    expect(found).toEqual(expect.arrayContaining(["polling", "woken"]));
    // web-b's ADD on node 1, timed: a pod's attach latency.
    const adds = samples(body, "overlay_cni_request_duration_seconds_count").find(
      (s) => s.labels.op === "ADD" && s.labels.result === "ok",
    );
    expect(adds?.value).toBeGreaterThanOrEqual(1);
    const rss = samples(body, "process_resident_memory_bytes")[0]?.value ?? 0;
    expect(rss).toBeGreaterThan(10e6);
    expect(rss).toBeLessThan(150e6);
  });

  it("answers 404 for anything but /metrics", async () => {
    expect((await scrape(0, "/")).status).toBe(404);
  });
});
