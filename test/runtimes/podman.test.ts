/**
 * podman 4 (Debian's, CNI backend) drives the plugin, as people run it: `podman run --network
 * overlay`, with CNI_ARGS `IgnoreUnknown=1;K8S_POD_NAME=<container name>` and no namespace.
 * A private podman instance (test/kit/runtimes/podman.ts) against one real agent of a local
 * cluster; the conflist as `overlayd install-cni` writes it.
 *
 * The plugin is the one runtimes exec on a node: build/Release/overlay-cni, copied into the
 * runtime's CNI bin folder.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conflist } from "../../src/agent/install.js";
import { installPlugin } from "../kit/runtimes/plugin.js";
import { PrivatePodman, TEST_IMAGE, podmanMissing } from "../kit/runtimes/podman.js";
import {
  agentLogs,
  createOverlay,
  show,
  skipReason,
  startCluster,
  type LocalCluster,
} from "../e2e/cluster.js";

const skip = skipReason("test/runtimes/podman.test.ts");

describe.skipIf(skip !== undefined)("podman (CNI backend) on the overlay", () => {
  let cluster: LocalCluster | undefined;
  let podman: PrivatePodman | undefined;

  beforeAll(async () => {
    const missing = podmanMissing();
    if (missing !== undefined) throw new Error(missing);
    const c = await startCluster({ store: "sqlite", nodes: 2 });
    cluster = c;
    await createOverlay(c);
    podman = await PrivatePodman.start(mkdtempSync(join(tmpdir(), "overlay-podman-")));
    installPlugin(podman.binDir);
    const node = c.nodes[0];
    if (node === undefined) throw new Error("no node");
    const write = (file: string, cniVersion: string, name: string) =>
      writeFileSync(
        join((podman as PrivatePodman).netDir, file),
        JSON.stringify(conflist({ name, cniVersion, socket: node.socket, namespace: "espresso" })),
      );
    write("10-overlay.conflist", "1.0.0", "overlay");
    write("20-overlay-new.conflist", "1.1.0", "overlay-new");
  }, 180_000);

  afterAll(async () => {
    await podman?.close();
    await cluster?.close();
  }, 120_000);

  const p = (): PrivatePodman => {
    if (podman === undefined) throw new Error("podman did not start");
    return podman;
  };
  const c = (): LocalCluster => {
    if (cluster === undefined) throw new Error("cluster did not start");
    return cluster;
  };

  it("attaches named and unnamed containers in the configuration's namespace; they reach each other; rm detaches", async () => {
    const web = await p().podman([
      "run",
      "-d",
      "--name",
      "web_1",
      "--network",
      "overlay",
      TEST_IMAGE,
      "sleep",
      "300",
    ]);
    expect(web.code, `${show(web)}\n${agentLogs(c())}`).toBe(0);
    const addr = await p().podman(["exec", "web_1", "ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    expect(addr.code, show(addr)).toBe(0);
    const ip = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(addr.stdout)?.[1];
    expect(ip, addr.stdout).toMatch(/^172\.30\./);

    // A container without --name: podman generates one with '_' (e.g. wonderful_galileo).
    const pinger = await p().podman(
      ["run", "--rm", "--network", "overlay", TEST_IMAGE, "ping", "-c", "1", "-W", "5", ip as string],
      60_000,
    );
    expect(pinger.code, `${show(pinger)}\n${agentLogs(c())}`).toBe(0);

    const eps = await c().dctl(["network", "overlay", "endpoints", "red", "-n", "espresso", "-o", "json"]);
    expect(eps.code, show(eps)).toBe(0);
    const pods = (JSON.parse(eps.stdout) as { pod: string; namespace: string; ip: string }[]).map(
      (e) => e.pod,
    );
    expect(pods).toEqual(["web_1"]); // the unnamed one was removed with --rm

    const rm = await p().podman(["rm", "--force", "--time", "0", "web_1"]);
    expect(rm.code, show(rm)).toBe(0);
    const after = await c().dctl(["network", "overlay", "endpoints", "red", "-n", "espresso", "-o", "json"]);
    expect(JSON.parse(after.stdout)).toEqual([]);
  }, 180_000);

  it("refuses a 1.1.0 configuration's results, as docs/CNI.md says (use 1.0.0)", async () => {
    const r = await p().podman(["run", "--rm", "--network", "overlay-new", TEST_IMAGE, "true"], 60_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'plugin type="overlay-cni" failed (add): unsupported CNI result version "1.1.0"',
    );
    const eps = await c().dctl(["network", "overlay", "endpoints", "red", "-n", "espresso", "-o", "json"]);
    expect(JSON.parse(eps.stdout)).toEqual([]);
  }, 120_000);
});
