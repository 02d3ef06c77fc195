/** `overlayd install-cni` / `uninstall-cni` (src/agent/install.ts) into temp folders. */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DEFAULT_PLUGIN_SOURCE,
  installCni,
  runInstallCommand,
  uninstallCni,
  writeAtomically,
} from "../../src/agent/install.js";
import { parseConfig } from "../../src/cni/config.js";
import { REPO_ROOT } from "../kit/cluster.js";

let dir: string;
let binDir: string;
let confDir: string;
let source: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "overlay-install-"));
  binDir = join(dir, "opt/cni/bin");
  confDir = join(dir, "etc/cni/net.d");
  mkdirSync(binDir, { recursive: true });
  mkdirSync(confDir, { recursive: true });
  source = join(dir, "overlay-cni.build");
  writeFileSync(source, "#!/bin/sh\necho plugin v1\n");
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const code = await runInstallCommand(["node", "overlayd", ...args], (l) => out.push(l));
  return { code, out };
}

describe("overlayd install-cni", () => {
  it("puts the binary (0755) and a 1.0.0 conflist with the pod-annotations capability in place", async () => {
    const r = await cli("install-cni", "--source", source, "--bin-dir", binDir, "--conf-dir", confDir);
    expect(r.code).toBe(0);
    const bin = join(binDir, "overlay-cni");
    expect(readFileSync(bin, "utf8")).toContain("plugin v1");
    expect(statSync(bin).mode & 0o777).toBe(0o755);
    const conf = JSON.parse(readFileSync(join(confDir, "10-overlay.conflist"), "utf8"));
    expect(conf).toEqual({
      cniVersion: "1.0.0",
      name: "overlay",
      plugins: [
        {
          type: "overlay-cni",
          socket: "/run/overlay/agent.sock",
          capabilities: { "io.kubernetes.cri.pod-annotations": true },
        },
      ],
    });
    // What the runtime will hand the plugin is a configuration the plugin accepts.
    expect(parseConfig({ ...conf, ...conf.plugins[0] }, "ADD").cniVersion).toBe("1.0.0");
    // Nothing left behind: no temporary files.
    expect(readdirSync(binDir)).toEqual(["overlay-cni"]);
    expect(readdirSync(confDir)).toEqual(["10-overlay.conflist"]);
  });

  it("takes the version, name, socket and namespace from flags, and replaces an older install", async () => {
    installCni({
      source,
      binDir,
      confDir,
      conflist: "10-overlay.conflist",
      name: "overlay",
      cniVersion: "1.0.0",
      socket: "/run/overlay/agent.sock",
    });
    writeFileSync(source, "#!/bin/sh\necho plugin v2\n");
    const r = await cli(
      ...["install-cni", "--source", source, "--bin-dir", binDir, "--conf-dir", confDir],
      ...["--cni-version", "1.1.0", "--name", "red", "--socket", "/var/run/o.sock", "--namespace", "podman"],
    );
    expect(r.code).toBe(0);
    expect(readFileSync(join(binDir, "overlay-cni"), "utf8")).toContain("plugin v2");
    const conf = JSON.parse(readFileSync(join(confDir, "10-overlay.conflist"), "utf8"));
    expect(conf).toMatchObject({ cniVersion: "1.1.0", name: "red" });
    expect(conf.plugins[0]).toMatchObject({ socket: "/var/run/o.sock", namespace: "podman" });
  });

  it("refuses a missing binary, a missing folder and an unsupported version, changing nothing", async () => {
    const missing = await cli(
      "install-cni",
      "--source",
      join(dir, "nope"),
      "--bin-dir",
      binDir,
      "--conf-dir",
      confDir,
    );
    expect(missing.code).toBe(1);
    const noDir = await cli(
      "install-cni",
      "--source",
      source,
      "--bin-dir",
      join(dir, "x"),
      "--conf-dir",
      confDir,
    );
    expect(noDir.code).toBe(1);
    const badVersion = await cli(
      "install-cni",
      "--source",
      source,
      "--bin-dir",
      binDir,
      "--conf-dir",
      confDir,
      "--cni-version",
      "0.3.1",
    );
    expect(badVersion.code).not.toBe(0);
    expect(readdirSync(binDir)).toEqual([]);
    expect(readdirSync(confDir)).toEqual([]);
  });

  it("writes atomically: the destination is never a partial file, and a failed write leaves it as it was", () => {
    const dest = join(confDir, "f");
    writeAtomically(dest, "one", 0o644);
    // A folder that cannot be written to: the write fails, the old file stays whole.
    chmodSync(confDir, 0o555);
    try {
      if (process.getuid?.() !== 0) expect(() => writeAtomically(dest, "two", 0o644)).toThrow();
    } finally {
      chmodSync(confDir, 0o755);
    }
    expect(readFileSync(dest, "utf8")).toBe("one");
    writeAtomically(dest, "two", 0o600);
    expect(readFileSync(dest, "utf8")).toBe("two");
    expect(statSync(dest).mode & 0o777).toBe(0o600);
  });

  it("defaults to the C++ plugin the build leaves in build/Release", () => {
    expect(DEFAULT_PLUGIN_SOURCE).toBe(join(REPO_ROOT, "build", "Release", "overlay-cni"));
  });
});

describe("overlayd install-cni and the loopback plugin containerd's CRI needs", () => {
  const loopback = (): string => join(binDir, "loopback");

  it("warns when the bin folder has none and no --loopback-source names one", async () => {
    const r = await cli("install-cni", "--source", source, "--bin-dir", binDir, "--conf-dir", confDir);
    expect(r.code).toBe(0);
    expect(r.out[1]).toMatch(
      /^warning: .* has no loopback plugin, which containerd's CRI runs for every pod/,
    );
    expect(statSync(loopback(), { throwIfNoEntry: false })).toBeUndefined();
  });

  it("copies --loopback-source in (0755) when the folder has none, before the conflist appears", async () => {
    const lo = join(dir, "loopback.ref");
    writeFileSync(lo, "#!/bin/sh\necho loopback\n");
    const args = ["--source", source, "--bin-dir", binDir, "--conf-dir", confDir];
    const r = await cli("install-cni", ...args, "--loopback-source", lo);
    expect(r.code).toBe(0);
    expect(r.out[1]).toBe(`installed ${loopback()} from ${lo}`);
    expect(readFileSync(loopback(), "utf8")).toContain("echo loopback");
    expect(statSync(loopback()).mode & 0o777).toBe(0o755);
    expect(statSync(join(confDir, "10-overlay.conflist")).isFile()).toBe(true);
  });

  it("never replaces the cluster's own loopback, and uninstall leaves it", async () => {
    writeFileSync(loopback(), "the cluster's");
    const lo = join(dir, "loopback.ref");
    writeFileSync(lo, "ours");
    const args = ["--source", source, "--bin-dir", binDir, "--conf-dir", confDir];
    const r = await cli("install-cni", ...args, "--loopback-source", lo);
    expect(r).toEqual({ code: 0, out: [expect.stringMatching(/^installed /)] });
    expect(readFileSync(loopback(), "utf8")).toBe("the cluster's");
    expect((await cli("uninstall-cni", "--bin-dir", binDir, "--conf-dir", confDir)).code).toBe(0);
    expect(readFileSync(loopback(), "utf8")).toBe("the cluster's");
  });

  it("refuses an unreadable --loopback-source and writes no conflist", async () => {
    const args = ["--source", source, "--bin-dir", binDir, "--conf-dir", confDir];
    const r = await cli("install-cni", ...args, "--loopback-source", join(dir, "nowhere"));
    expect(r.code).toBe(1);
    expect(statSync(join(confDir, "10-overlay.conflist"), { throwIfNoEntry: false })).toBeUndefined();
  });
});

describe("overlayd uninstall-cni", () => {
  it("removes both files, and again is a no-op", async () => {
    await cli("install-cni", "--source", source, "--bin-dir", binDir, "--conf-dir", confDir);
    const r = await cli("uninstall-cni", "--bin-dir", binDir, "--conf-dir", confDir);
    expect(r.code).toBe(0);
    expect(r.out[0]).toContain("removed");
    expect(readdirSync(binDir)).toEqual([]);
    expect(readdirSync(confDir)).toEqual([]);
    expect(uninstallCni({ binDir, confDir, conflist: "10-overlay.conflist" })).toEqual([]);
  });

  it("runs from the built overlayd, without --node or --underlay-ip", () => {
    const main = join(REPO_ROOT, "dist", "src", "agent", "main.js");
    const r = spawnSync(
      process.execPath,
      [main, "install-cni", "--source", source, "--bin-dir", binDir, "--conf-dir", confDir],
      {
        encoding: "utf8",
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("cniVersion 1.0.0");
    const u = spawnSync(
      process.execPath,
      [main, "uninstall-cni", "--bin-dir", binDir, "--conf-dir", confDir],
      {
        encoding: "utf8",
      },
    );
    expect(u.status, u.stderr).toBe(0);
  });
});
