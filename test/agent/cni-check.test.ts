/**
 * CNI CHECK against a real agent: the pod's side is inspected (interface, MAC, address, link
 * up) and compared with the runtime's prevResult, and each difference fails the check with its
 * own message.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createOverlay,
  show,
  skipReason,
  startCluster,
  type LocalCluster,
  type Pod,
} from "../e2e/cluster.js";

const skip = skipReason("test/agent/cni-check.test.ts");

describe.skipIf(skip !== undefined)("CNI CHECK through overlayd", () => {
  let c: LocalCluster;
  let pod: Pod;

  beforeAll(async () => {
    c = await startCluster({ store: "sqlite" });
    await createOverlay(c);
    pod = await c.addPod(0, "coffee", "web");
  }, 60_000);

  afterAll(async () => {
    await c?.close();
  });

  function check(prevResult: unknown = pod.result) {
    return c.cni(
      pod.node,
      "CHECK",
      {
        containerId: pod.containerId,
        netns: pod.netns,
        ifName: pod.ifName,
        args: `K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`,
      },
      { ...c.netConf(pod.node), prevResult },
    );
  }

  function errorOf(r: { code: number | null; stdout: string }): { code: number; msg: string } {
    expect(r.code).not.toBe(0);
    return JSON.parse(r.stdout) as { code: number; msg: string };
  }

  it("passes for a pod as ADD left it, prevResult being ADD's output", async () => {
    const r = await check();
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe("");
  });

  it("fails with code 105 when prevResult names another address", async () => {
    const prev = JSON.parse(JSON.stringify(pod.result)) as { ips: { address: string }[] };
    prev.ips[0]!.address = "172.30.250.250/16";
    expect(errorOf(await check(prev)).code).toBe(105);
  });

  it("fails with code 5 when the pod's interface lost its address, and passes once it is back", async () => {
    const world = c.world!;
    await world.ip(pod.short, ["addr", "flush", "dev", pod.ifName]);
    const e = errorOf(await check());
    expect(e.code).toBe(5);
    expect(e.msg).toContain(`lacks address ${pod.ip}/${pod.prefixLength}`);
    await world.ip(pod.short, ["addr", "add", `${pod.ip}/${pod.prefixLength}`, "dev", pod.ifName]);
    expect((await check()).code).toBe(0);
  });

  it("fails with code 5 when the pod's interface is down", async () => {
    const world = c.world!;
    await world.ip(pod.short, ["link", "set", pod.ifName, "down"]);
    expect(errorOf(await check()).msg).toContain("is down");
    await world.ip(pod.short, ["link", "set", pod.ifName, "up"]);
    expect((await check()).code).toBe(0);
  });
});
