/**
 * deploy/overlay.yaml held to the code:
 * - the ClusterRole grants exactly KUBE_API_ACCESS (src/agent/kubeapi.ts), and exactly the verbs
 *   the agent was seen to use against the test kit's API server (namespace sync through a
 *   create and a delete, a pod read);
 * - every overlayd flag and ConfigMap key the DaemonSet names exists;
 * - the DaemonSet has what a node agent of an overlay needs (docs/KUBERNETES.md).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  loadAllYaml,
  type V1ClusterRole,
  type V1ClusterRoleBinding,
  type V1ConfigMap,
  type V1Container,
  type V1DaemonSet,
  type V1ServiceAccount,
} from "@kubernetes/client-node";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { KUBE_API_ACCESS, KubeApi } from "../../src/agent/kubeapi.js";
import { NamespaceSync } from "../../src/agent/kubernetes.js";
import { createNetwork, listNamespaces } from "../../src/model/index.js";
import { ETCD_TLS_ENV, openStore } from "../../src/store/index.js";
import { REPO_ROOT } from "../kit/cluster.js";
import { FakeKubeApi } from "../kit/kubeapi.js";

interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string };
}

/** The Secret's files (kubernetes.io/tls names, plus the CA) and the variables naming them. */
const ETCD_TLS_FILES = {
  OVERLAY_ETCD_CA: "ca.crt",
  OVERLAY_ETCD_CERT: "tls.crt",
  OVERLAY_ETCD_KEY: "tls.key",
};

const docs = loadAllYaml(readFileSync(join(REPO_ROOT, "deploy", "overlay.yaml"), "utf8")) as Doc[];

function one<T>(kind: string): T {
  const found = docs.filter((d) => d.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0] as T;
}

const role = one<V1ClusterRole>("ClusterRole");
const ds = one<V1DaemonSet>("DaemonSet");
const pod = ds.spec?.template.spec;
const agent = pod?.containers.find((c) => c.name === "overlayd") as V1Container;
const install = pod?.initContainers?.find((c) => c.name === "install-cni") as V1Container;

/** resource -> sorted verbs. */
function granted(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const rule of role.rules ?? []) {
    expect(rule.apiGroups).toEqual([""]);
    for (const r of rule.resources ?? []) out[r] = [...(out[r] ?? []), ...(rule.verbs ?? [])].sort();
  }
  return out;
}

describe("deploy/overlay.yaml", () => {
  it("grants exactly the API calls the agent declares", () => {
    const declared = Object.fromEntries(KUBE_API_ACCESS.map((a) => [a.resource, [...a.verbs].sort()]));
    expect(granted()).toEqual(declared);
    expect(JSON.stringify(role)).not.toContain("*");
  });

  it("grants exactly the verbs the agent was seen to use", async () => {
    const api = await FakeKubeApi.start();
    const dir = mkdtempSync(join(tmpdir(), "overlay-manifest-"));
    const store = await openStore(`sqlite:${join(dir, "store.db")}`);
    const kube = KubeApi.load(api.kubeconfig);
    const sync = new NamespaceSync({ api: kube, store, log: pino({ level: "silent" }), debounceMs: 5 });
    try {
      await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
      sync.start();
      api.createNamespace("coffee");
      const names = async () => (await listNamespaces(store, "red")).entries.map((e) => e.value.name);
      await expect.poll(names).toContain("coffee");
      api.deleteNamespace("coffee");
      await expect.poll(names).not.toContain("coffee");
      api.putPod("tea", "nginx-2");
      await kube.podAnnotations("tea", "nginx-2", 2000);
      const used = Object.fromEntries([...api.verbsUsed()].map(([r, v]) => [r, [...v].sort()]));
      expect(used).toEqual(granted());
    } finally {
      await sync.stop();
      await store.close();
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("binds the role to the DaemonSet's service account in the system namespace", () => {
    const ns = one<Doc>("Namespace").metadata.name;
    const sa = one<V1ServiceAccount>("ServiceAccount");
    const binding = one<V1ClusterRoleBinding>("ClusterRoleBinding");
    expect(sa.metadata?.namespace).toBe(ns);
    expect(binding.roleRef).toMatchObject({ kind: "ClusterRole", name: role.metadata?.name });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: sa.metadata?.name, namespace: ns }]);
    expect(pod?.serviceAccountName).toBe(sa.metadata?.name);
    expect(ds.metadata?.namespace).toBe(ns);
  });

  it("runs the agent on every node, host network, critical, one node at a time, ready when really ready", () => {
    expect(pod?.hostNetwork).toBe(true);
    expect(pod?.priorityClassName).toBe("system-node-critical");
    expect(pod?.tolerations).toEqual([{ operator: "Exists" }]);
    expect(ds.spec?.updateStrategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } });
    const metrics = agent.args?.find((a) => a.startsWith("--metrics-listen="));
    expect(metrics).toBe("--metrics-listen=0.0.0.0:9464");
    expect(agent.readinessProbe?.httpGet).toMatchObject({ path: "/readyz", port: 9464 });
    const env = Object.fromEntries((agent.env ?? []).map((e) => [e.name, e.valueFrom]));
    expect(env.NODE_NAME?.fieldRef?.fieldPath).toBe("spec.nodeName");
    expect(env.UNDERLAY_IP?.fieldRef?.fieldPath).toBe("status.hostIP");
    expect(agent.args).toContain("--kubeconfig=in-cluster");
  });

  it("mounts the TUN device, the netns folder (host to container), the socket folder and the CNI folders", () => {
    const volumes = Object.fromEntries((pod?.volumes ?? []).map((v) => [v.name, v.hostPath?.path]));
    const mounts = (c: V1Container) =>
      Object.fromEntries((c.volumeMounts ?? []).map((m) => [m.mountPath, m]));
    const a = mounts(agent);
    expect(volumes[a["/dev/net/tun"]?.name ?? ""]).toBe("/dev/net/tun");
    expect(volumes[a["/var/run/netns"]?.name ?? ""]).toBe("/var/run/netns");
    expect(a["/var/run/netns"]?.mountPropagation).toBe("HostToContainer");
    expect(volumes[a["/run/overlay"]?.name ?? ""]).toBe("/run/overlay");
    expect(agent.args).toContain("--socket=/run/overlay/agent.sock");
    const i = mounts(install);
    expect(volumes[i["/host/opt/cni/bin"]?.name ?? ""]).toBe("/opt/cni/bin");
    expect(volumes[i["/host/etc/cni/net.d"]?.name ?? ""]).toBe("/etc/cni/net.d");
    expect(install.command).toEqual(["overlayd", "install-cni"]);
    expect(install.args).toEqual(
      expect.arrayContaining(["--bin-dir=/host/opt/cni/bin", "--conf-dir=/host/etc/cni/net.d"]),
    );
  });

  it("gives an etcds:// store its CA, certificate and key from a read-only, optional Secret", () => {
    const env = Object.fromEntries((agent.env ?? []).map((e) => [e.name, e]));
    const mount = (agent.volumeMounts ?? []).find((m) => m.mountPath === "/etc/overlay/etcd");
    expect(mount?.readOnly).toBe(true);
    const volume = (pod?.volumes ?? []).find((v) => v.name === mount?.name);
    expect(volume?.secret).toEqual({ secretName: "overlay-etcd-tls", optional: true, defaultMode: 0o400 });
    for (const [name, file] of Object.entries(ETCD_TLS_FILES)) {
      expect(env[name]?.value, name).toBe(`/etc/overlay/etcd/${file}`);
    }
    for (const [name, key] of [
      ["OVERLAY_ETCD_USER", "username"],
      ["OVERLAY_ETCD_PASSWORD", "password"],
    ] as const) {
      expect(env[name]?.valueFrom?.secretKeyRef).toEqual({ name: "overlay-etcd-tls", key, optional: true });
    }
    // The names are the ones openStore reads.
    expect(Object.keys(ETCD_TLS_FILES)).toEqual([ETCD_TLS_ENV.ca, ETCD_TLS_ENV.cert, ETCD_TLS_ENV.key]);
  });

  it("names only ConfigMap keys that exist and flags overlayd has", () => {
    const cm = one<V1ConfigMap>("ConfigMap");
    for (const c of [agent, install]) {
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.configMapKeyRef;
        if (ref === undefined) continue;
        expect(ref.name).toBe(cm.metadata?.name);
        expect(Object.keys(cm.data ?? {}), e.name).toContain(ref.key);
      }
    }
    expect(cm.data?.cniVersion).toBe("1.0.0");
    const main = join(REPO_ROOT, "dist", "src", "agent", "main.js");
    const help = (args: string[]) =>
      spawnSync(process.execPath, [main, ...args], { encoding: "utf8" }).stdout;
    for (const [c, text] of [
      [agent, help(["--help"])],
      [install, help(["install-cni", "--help"])],
    ] as const) {
      for (const arg of c.args ?? []) {
        const flag = arg.split("=")[0] as string;
        expect(text, `${c.name} ${flag}`).toContain(`${flag} `);
      }
    }
  });
});
