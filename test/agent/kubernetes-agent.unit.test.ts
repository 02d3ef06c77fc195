/**
 * The agent with a Kubernetes API (`overlayd --kubeconfig`): a real Agent with a fake switch and
 * plumbing (test/agent/fakes.ts), an in-memory store, and the test kit's API server reached
 * through @kubernetes/client-node. No root.
 *
 * - Namespaces: the sync runs in the agent's lifecycle, fed by its view of the store.
 * - Pod annotations: when the runtime passes none, ADD reads the pod from the API, bounded by a
 *   short timeout, and fails with code 106 saying why.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeApi } from "../../src/agent/kubeapi.js";
import { CNI_ERR, type AgentRequest, type AgentResponse } from "../../src/agent/protocol.js";
import { ENDPOINT_ANNOTATION } from "../../src/cni/request.js";
import { listEndpoints } from "../../src/model/endpoints.js";
import { listNamespaces } from "../../src/model/namespaces.js";
import { createNetwork } from "../../src/model/network.js";
import type { Store } from "../../src/store/store.js";
import { FakeKubeApi } from "../kit/kubeapi.js";
import { memoryStore } from "../model/helpers.js";
import { startFakeAgent, type FakePlumbing } from "./fakes.js";

let api: FakeKubeApi;
let store: Store;
let plumbing: FakePlumbing;
let stop: () => Promise<void>;
let handle: (r: AgentRequest) => Promise<AgentResponse>;

beforeEach(async () => {
  api = await FakeKubeApi.start();
  store = await memoryStore();
  await createNetwork(store, { name: "red", subnet: "172.30.0.0/16", setDefault: true });
  await createNetwork(store, { name: "blue", subnet: "172.31.0.0/16" }).catch(() => undefined);
  const a = await startFakeAgent(store, { kubernetes: KubeApi.load(api.kubeconfig), podReadTimeoutMs: 300 });
  ({ plumbing, stop } = a);
  handle = (r) => a.agent.handle(r);
  plumbing.namespaces.add("/run/netns/p1");
});

afterEach(async () => {
  await stop();
  await store.close();
  await api.close();
});

function add(extra: Partial<Extract<AgentRequest, { podName: string; netns: string }>> = {}): AgentRequest {
  return {
    op: "ADD",
    containerId: "ctr-1",
    netns: "/run/netns/p1",
    ifName: "eth0",
    podNamespace: "coffee",
    podName: "nginx-1",
    kubernetesPod: true,
    annotationsGiven: false,
    ...extra,
  };
}

async function endpointTier(): Promise<string | undefined> {
  return (await listEndpoints(store, "red")).entries[0]?.value.tier;
}

describe("the agent with a Kubernetes API", () => {
  it("registers the cluster's namespaces as they come", async () => {
    api.createNamespace("coffee");
    await expect
      .poll(async () => (await listNamespaces(store, "red")).entries.map((e) => e.value.name))
      .toContain("coffee");
  });

  it("reads the pod's annotation from the API when the runtime passed none", async () => {
    api.createNamespace("coffee");
    api.putPod("coffee", "nginx-1", { [ENDPOINT_ANNOTATION]: '{"network":"red","perfTier":"high"}' });
    const r = await handle(add());
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(await endpointTier()).toBe("high");
    expect(api.requests.filter((q) => q.resource === "pods")).toEqual([
      { verb: "get", resource: "pods", path: "/api/v1/namespaces/coffee/pods/nginx-1" },
    ]);
  });

  it("does not ask when the runtime passed annotations, nor for pods of runtimes without Kubernetes", async () => {
    expect((await handle(add({ annotationsGiven: true }))).ok).toBe(true);
    expect((await handle(add({ containerId: "ctr-2", podName: "web_1", kubernetesPod: false }))).ok).toBe(
      true,
    );
    expect(api.requests.filter((q) => q.resource === "pods")).toEqual([]);
  });

  it("a pod without the annotation gets the defaults", async () => {
    api.putPod("coffee", "nginx-1");
    expect((await handle(add())).ok).toBe(true);
    expect(await endpointTier()).toBe("best-effort");
  });

  it.each([
    ["does not answer in time", () => api.delay("pods", 2000), "no answer within 300 ms"],
    ["forbids it (RBAC)", () => api.forbid("get", "pods"), "HTTP 403"],
    ["does not know the pod", () => undefined, "HTTP 404"],
  ])("fails with code 106, before writing anything, when the API %s", async (_what, arrange, why) => {
    arrange();
    const started = Date.now();
    const r = await handle(add());
    expect(Date.now() - started).toBeLessThan(1500);
    if (r.ok) throw new Error("expected an error");
    expect(r.error.code).toBe(CNI_ERR.podUnreadable);
    expect(r.error.msg).toContain("cannot read pod coffee/nginx-1");
    expect(r.error.msg).toContain(api.url);
    expect(r.error.msg).toContain(why);
    expect((await listEndpoints(store, "red")).entries).toEqual([]);
  });

  it("refuses a malformed annotation read from the API with code 7", async () => {
    api.putPod("coffee", "nginx-1", { [ENDPOINT_ANNOTATION]: '{"perftier":"high"}' });
    const r = await handle(add());
    if (r.ok) throw new Error("expected an error");
    expect(r.error.code).toBe(CNI_ERR.invalidConfig);
    expect(r.error.msg).toContain("pod coffee/nginx-1 (Kubernetes API)");
  });
});
