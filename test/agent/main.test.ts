/** The built `overlayd` (src/agent/main.ts): what it says when it cannot start, before any side effect. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../kit/cluster.js";

const MAIN = join(REPO_ROOT, "dist", "src", "agent", "main.js");

describe("overlayd --kubeconfig", () => {
  it("exits 1 naming the file when the Kubernetes credentials cannot be loaded", () => {
    const r = spawnSync(
      process.execPath,
      [
        MAIN,
        "--node",
        "n1",
        "--underlay-ip",
        "127.0.0.1",
        "--store",
        "sqlite::memory:",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    expect(r.status).toBe(1);
    const line = JSON.parse(r.stdout.trim().split("\n").pop() as string) as Record<string, unknown>;
    expect(line).toMatchObject({
      msg: "cannot load the Kubernetes credentials",
      kubeconfig: "/nonexistent/kubeconfig",
    });
    expect(String(line.err)).toContain("ENOENT");
  });
});

describe("overlayd --store etcds://", () => {
  it("exits 1 naming the store, the variable and the path when a certificate file cannot be read", () => {
    const r = spawnSync(
      process.execPath,
      [MAIN, "--node", "n1", "--underlay-ip", "127.0.0.1", "--store", "etcds://127.0.0.1:2379"],
      {
        encoding: "utf8",
        timeout: 30_000,
        env: {
          ...process.env,
          OVERLAY_ETCD_CA: "/nonexistent/ca.crt",
          OVERLAY_ETCD_CERT: "",
          OVERLAY_ETCD_KEY: "",
        },
      },
    );
    expect(r.status).toBe(1);
    const line = JSON.parse(r.stdout.trim().split("\n").pop() as string) as Record<string, unknown>;
    expect(line).toMatchObject({ msg: "cannot open the store", store: "etcds://127.0.0.1:2379" });
    expect(String(line.err)).toMatch(/cannot read OVERLAY_ETCD_CA=\/nonexistent\/ca\.crt: ENOENT/);
  });
});
