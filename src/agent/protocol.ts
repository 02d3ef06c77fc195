/**
 * What the CNI plugin and the node agent say to each other over the agent's unix socket, and the
 * typed requests the agent's CNI layer (src/cni) hands its request handlers (requests.ts).
 *
 * The plugin (`overlay-cni`, native/plugin/, C++) is a shim: it moves the runtime's call to the
 * agent unchanged, and the agent does all the CNI work. One request and one reply per connection;
 * native/plugin/protocol.h holds the same description, and the two change together:
 *
 *   request (plugin -> agent)
 *     "OVCNI/1 <env bytes> <stdin bytes>\n"     header, decimal lengths, at most 64 bytes
 *     <env>                                     every CNI_* variable as "NAME=value\0"
 *     <stdin>                                   stdin as the runtime wrote it (any bytes)
 *
 *   reply (agent -> plugin)
 *     "OVCNI/1 <exit code> <stdout bytes>\n"    header; exit code 0..255
 *     <stdout>                                  what the plugin prints: the CNI result or error
 *
 * Lengths above the limits below are refused with a reply carrying CNI error 6.
 */

export const WIRE_MAGIC = "OVCNI/1";
export const MAX_HEADER_BYTES = 64;
export const MAX_ENV_BYTES = 64 * 1024;
/** A network configuration is a few kilobytes; a GC list of every pod on a node stays far below. */
export const MAX_STDIN_BYTES = 1024 * 1024;
export const MAX_STDOUT_BYTES = 1024 * 1024;

/** One plugin invocation as the runtime made it, raw: nothing decoded or checked yet. */
export interface CniCall {
  /** The CNI_* variables; values are bytes, maybe not UTF-8. */
  env: Map<string, Buffer>;
  stdin: Buffer;
}

/** What the plugin prints and its exit code. */
export interface CniReply {
  stdout: string;
  exitCode: number;
}

/** Default path of the agent's socket (root only: the agent creates it with mode 0600). */
export const DEFAULT_AGENT_SOCKET = "/run/overlay/agent.sock";

/** The pod's request, as the annotation `diamanti.com/endpoint0` carries it. */
export interface EndpointRequest {
  network?: string;
  perfTier?: string;
}

export interface AttachmentRef {
  containerId: string;
  ifName: string;
}

/**
 * A call the CNI layer (src/cni/plugin.ts) has decoded and checked, as it asks the agent's
 * request handlers (requests.ts), in-process; they answer with an AgentResponse.
 */
export type AgentRequest =
  | ({
      op: "ADD" | "CHECK";
      containerId: string;
      /** Path of the pod's network namespace (CNI_NETNS). */
      netns: string;
      ifName: string;
      podNamespace: string;
      podName: string;
      /**
       * False when the runtime passed no pod annotations at all (CRI-O; containerd without the
       * io.kubernetes.cri.pod-annotations capability): the agent then reads the pod's annotation
       * from the Kubernetes API, if it has one and the pod is Kubernetes'. Absent: given.
       */
      annotationsGiven?: boolean;
      /**
       * True when the runtime named the pod's namespace (K8S_POD_NAMESPACE): a Kubernetes pod,
       * known to the API by these names. False: a namespace from the network configuration (a
       * runtime without Kubernetes, such as podman).
       */
      kubernetesPod?: boolean;
    } & EndpointRequest)
  | {
      op: "DEL";
      containerId: string;
      ifName: string;
      netns?: string;
      podNamespace?: string;
      podName?: string;
    }
  | { op: "STATUS" }
  /** Releases every attachment of this node that is not in `valid` (CNI GC). */
  | { op: "GC"; valid: AttachmentRef[] };

/** The CNI result the agent builds for ADD (and CHECK compares against prevResult). */
export interface AttachmentResult {
  interfaces: { name: string; mac: string; sandbox: string; mtu: number }[];
  ips: { address: string; gateway: string; interface: number }[];
  routes: { dst: string; gw: string }[];
  dns: Record<string, never>;
}

/**
 * A failure, with a CNI error code (the CNI spec's "Error" section): 4 invalid environment
 * variables, 7 invalid network configuration, 11 try again later, 50 the plugin is not available
 * (STATUS), 100+ this plugin's own (100 address pool exhausted, 101 unknown network, 102 unknown
 * perf tier, 103 store unreachable, 105 CHECK differs from prevResult, 106 the pod could not be read from the
 * Kubernetes API).
 */
export interface AgentError {
  code: number;
  msg: string;
  details?: string;
}

export type AgentResponse = { ok: true; result?: AttachmentResult } | { ok: false; error: AgentError };

export const CNI_ERR = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnv: 4,
  ioError: 5,
  decodeError: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  notAvailable: 50,
  limitedConnectivity: 51,
  poolExhausted: 100,
  unknownNetwork: 101,
  unknownPerfTier: 102,
  storeUnreachable: 103,
  /** CHECK: the attachment differs from the runtime's prevResult. */
  attachmentMismatch: 105,
  /** ADD: the pod's annotations had to come from the Kubernetes API, and it did not answer them. */
  podUnreadable: 106,
} as const;
