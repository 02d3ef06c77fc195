/**
 * The Containerfile builds, without a container registry, and the agent runs from the image
 * under podman in the namespace world: a node namespace of a World, the agent's container
 * joined to it, the plugin on the host reaching its socket (CNI STATUS), dctl from the image
 * reading the store the agent wrote.
 *
 * Opt-in (OVERLAY_TEST_IMAGE=1): it takes about ten minutes on two cores and needs Debian's
 * mirror and the npm registry (test/kit/runtimes/image.ts).
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, REPO_ROOT } from "../kit/cluster.js";
import { World, buildNodes, isRoot, type NodeInfo } from "../kit/netns/index.js";
import { buildBaseImage, buildImage, imageBuildMissing } from "../kit/runtimes/image.js";
import { PrivatePodman, podmanMissing } from "../kit/runtimes/podman.js";

const TAG = "localhost/overlay-switch:test";
const wanted = process.env.OVERLAY_TEST_IMAGE === "1";
if (!wanted)
  console.log("test/deploy/image.test.ts: skipped, set OVERLAY_TEST_IMAGE=1 to build the image (~10 min)");

describe.skipIf(!wanted || !isRoot())("the overlayd image, built without a registry", () => {
  let dir: string;
  let podman: PrivatePodman | undefined;
  let world: World | undefined;
  let node: NodeInfo | undefined;

  beforeAll(async () => {
    const missing = podmanMissing() ?? imageBuildMissing();
    if (missing !== undefined) throw new Error(missing);
    dir = mkdtempSync(join(tmpdir(), "overlay-image-"));
    podman = await PrivatePodman.start(join(dir, "podman"));
    await buildBaseImage(podman, join(dir, "base"));
    // The packages are fetched here, into an npm cache of the test's, and the build installs
    // from it offline (image.ts says why).
    const cache = join(dir, "npm-cache");
    const fetch = join(dir, "fetch");
    mkdirSync(fetch);
    for (const f of ["package.json", "package-lock.json"]) cpSync(join(REPO_ROOT, f), join(fetch, f));
    const fetched = spawnSync(
      "npm",
      ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--cache", cache],
      {
        cwd: fetch,
        encoding: "utf8",
        timeout: 600_000,
      },
    );
    expect(fetched.status, fetched.stderr).toBe(0);
    await buildImage(podman, REPO_ROOT, TAG, cache);
    world = await World.create();
    const cluster = await buildNodes(world, { count: 2 });
    node = cluster.nodes[0];
  }, 1_800_000);

  afterAll(async () => {
    await podman?.podman(["rm", "--all", "--force", "--time", "2"]).catch(() => undefined);
    await world?.destroy();
    await podman?.close();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  const p = (): PrivatePodman => podman as PrivatePodman;

  it("holds overlayd and dctl", async () => {
    const help = await p().podman(["run", "--rm", "--network", "none", TAG, "overlayd", "--help"]);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain("--kubeconfig");
    const dctl = await p().podman(["run", "--rm", "--network", "none", TAG, "dctl", "--help"]);
    expect(dctl.code, dctl.stderr).toBe(0);
  }, 120_000);

  it("runs the agent in a node's namespace: ready for the plugin, registered in the store", async () => {
    const n = node as NodeInfo;
    const run = join(dir, "run");
    const data = join(dir, "data");
    mkdirSync(run);
    mkdirSync(data);
    const started = await p().podman([
      ...["run", "-d", "--name", "overlayd", "--privileged", "--network", `ns:${n.nsPath}`],
      ...["-v", "/var/run/netns:/var/run/netns:rshared", "-v", `${run}:/run/overlay`, "-v", `${data}:/data`],
      ...[
        TAG,
        "overlayd",
        "--node",
        "node1",
        "--underlay-ip",
        n.underlayIp,
        "--store",
        "sqlite:/data/store.db",
      ],
    ]);
    expect(started.code, started.stderr).toBe(0);
    const conf = JSON.stringify({
      cniVersion: "1.1.0",
      name: "overlay",
      type: "overlay-cni",
      socket: join(run, "agent.sock"),
    });
    const status = () =>
      spawnSync(process.execPath, [BIN.cni], {
        input: conf,
        env: { CNI_COMMAND: "STATUS" },
        encoding: "utf8",
      }).status;
    const logs = async () => {
      const l = await p().podman(["logs", "overlayd"]);
      const ps = await p().podman(["ps", "-a"]);
      return `${l.stdout}${l.stderr}\n${ps.stdout}`;
    };
    const deadline = Date.now() + 60_000;
    while (status() !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    expect(status(), await logs()).toBe(0);
    const nodes = await p().podman([
      ...["run", "--rm", "--network", "none", "-v", `${data}:/data`, TAG],
      ...["dctl", "--store", "sqlite:/data/store.db", "node", "list", "-o", "json"],
    ]);
    expect(nodes.code, nodes.stderr).toBe(0);
    expect(JSON.parse(nodes.stdout)).toEqual([
      expect.objectContaining({ name: "node1", underlayIp: n.underlayIp }),
    ]);
  }, 180_000);
});
