/**
 * containerd 1.6 (Debian's) drives the plugin through its CRI, as kubelet does: RunPodSandbox
 * with the seed's annotation, StopPodSandbox, over gRPC with the CRI's own messages
 * (test/kit/runtimes/cri.proto). A private containerd (test/kit/runtimes/containerd.ts) against
 * one real agent of a local cluster; the conflist as `overlayd install-cni` writes it, with the
 * io.kubernetes.cri.pod-annotations capability.
 *
 * The seed's scenario, Kubernetes-shaped as far as this machine allows (no API server): pods in
 * coffee and tea started through the CRI, isolated, joined, isolated again.
 *
 * The plugin is the one runtimes exec on a node: build/Release/overlay-cni, copied into the
 * runtime's CNI bin folder.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conflist } from "../../src/agent/install.js";
import { ENDPOINT_ANNOTATION } from "../../src/cni/request.js";
import { installPlugin, pings } from "../kit/runtimes/plugin.js";
import { PrivateContainerd, containerdMissing } from "../kit/runtimes/containerd.js";
import {
  agentLogs,
  createOverlay,
  show,
  skipReason,
  startCluster,
  type LocalCluster,
} from "../e2e/cluster.js";

const skip = skipReason("test/runtimes/containerd.test.ts");

const seedAnnotation = { [ENDPOINT_ANNOTATION]: '{ "network": "red", "perfTier": "best-effort" }' };

describe.skipIf(skip !== undefined)("containerd (CRI) on the overlay", () => {
  let cluster: LocalCluster | undefined;
  let ctrd: PrivateContainerd | undefined;
  let uid = 0;

  const c = (): LocalCluster => {
    if (cluster === undefined) throw new Error("cluster did not start");
    return cluster;
  };
  const rt = (): PrivateContainerd => {
    if (ctrd === undefined) throw new Error("containerd did not start");
    return ctrd;
  };

  function writeConflist(cniVersion: string): void {
    const node = c().nodes[0];
    if (node === undefined) throw new Error("no node");
    writeFileSync(
      join(rt().netDir, "10-overlay.conflist"),
      JSON.stringify(conflist({ name: "overlay", cniVersion, socket: node.socket })),
    );
  }

  /** RunPodSandbox; retried while containerd has not loaded the conflist yet. */
  async function run(name: string, namespace: string, annotations: Record<string, string>): Promise<string> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        return await rt().runPodSandbox({ name, namespace, uid: `uid-${++uid}`, annotations });
      } catch (err) {
        const msg = String(err);
        if (!/cni config not initialized|cni plugin not initialized/.test(msg) || Date.now() > deadline)
          throw err;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }

  async function endpoints(): Promise<{ pod: string; namespace: string; tier: string; ip: string }[]> {
    const r = await c().dctl(["network", "overlay", "endpoints", "red", "-o", "json"]);
    expect(r.code, show(r)).toBe(0);
    return JSON.parse(r.stdout) as { pod: string; namespace: string; tier: string; ip: string }[];
  }

  beforeAll(async () => {
    const missing = containerdMissing();
    if (missing !== undefined) throw new Error(missing);
    cluster = await startCluster({ store: "sqlite", nodes: 2 });
    await createOverlay(cluster);
    ctrd = await PrivateContainerd.start(mkdtempSync(join(tmpdir(), "overlay-containerd-")));
    installPlugin(ctrd.binDir);
    writeConflist("1.0.0");
  }, 180_000);

  afterAll(async () => {
    await ctrd?.close();
    await cluster?.close();
  }, 120_000);

  it("speaks CRI v1", async () => {
    expect(await rt().version()).toMatchObject({ runtimeName: "containerd", runtimeApiVersion: "v1" });
  });

  it("the seed's pods through the CRI: annotation honoured, isolated, joined, isolated again, stopped", async () => {
    const coffee = await run("nginx-1", "coffee", seedAnnotation).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${agentLogs(c())}\n${rt().log()}`);
    });
    const tea = await run("nginx-2", "tea", seedAnnotation);
    const a = await rt().podSandboxStatus(coffee);
    const b = await rt().podSandboxStatus(tea);
    expect(a.state).toBe("SANDBOX_READY");
    expect(a.ip).toMatch(/^172\.30\./);
    expect(b.ip).toMatch(/^172\.30\./);
    expect(a.netns).toBeDefined();
    const eps = await endpoints();
    expect(eps.map((e) => [e.namespace, e.pod, e.ip, e.tier]).sort()).toEqual([
      ["coffee", "nginx-1", a.ip, "best-effort"],
      ["tea", "nginx-2", b.ip, "best-effort"],
    ]);

    const from = a.netns as string;
    expect(await pings(from, b.ip)).toBe(false);
    const joined = await c().dctl(["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea"]);
    expect(joined.stdout).toContain("Successfully joined the network namespaces [[coffee tea]]");
    await expect.poll(() => pings(from, b.ip), { timeout: 20_000 }).toBe(true);
    const isolated = await c().dctl(["network", "overlay", "update", "red", "--isolate-namespaces", "tea"]);
    expect(isolated.stdout).toContain("Successfully updated network");
    await expect.poll(() => pings(from, b.ip), { timeout: 20_000 }).toBe(false);

    // StopPodSandbox is kubelet's teardown: the plugin's DEL releases the endpoints.
    for (const id of [coffee, tea]) {
      await rt().stopPodSandbox(id);
      await rt().removePodSandbox(id);
    }
    expect(await endpoints()).toEqual([]);
  }, 120_000);

  it("fails a pod that names an unknown network, saying so, and leaves nothing behind", async () => {
    const err = await run("nginx-3", "coffee", { [ENDPOINT_ANNOTATION]: '{"network":"blue"}' }).then(
      () => undefined,
      (e: unknown) => String(e),
    );
    expect(err).toMatch(/blue/);
    expect(await endpoints()).toEqual([]);
  }, 60_000);

  it("fails every pod of a 1.1.0 conflist, as docs/CNI.md says (use 1.0.0)", async () => {
    writeConflist("1.1.0");
    const deadline = Date.now() + 20_000;
    let err = "";
    // containerd picks the changed conflist up within a moment.
    while (Date.now() < deadline) {
      const id = await run("nginx-4", "coffee", seedAnnotation).catch((e: unknown) => {
        err = String(e);
        return undefined;
      });
      if (id === undefined && err.includes('unsupported CNI result version "1.1.0"')) break;
      if (id !== undefined) {
        await rt().stopPodSandbox(id);
        await rt().removePodSandbox(id);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(err).toContain('plugin type="overlay-cni" failed (add): unsupported CNI result version "1.1.0"');
    writeConflist("1.0.0");
  }, 60_000);
});
