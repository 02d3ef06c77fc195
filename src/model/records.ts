/**
 * The records the control model keeps in the store, and a validating parser for each. Every
 * record carries `schemaVersion`; a reader that meets a record it cannot parse gets a
 * RecordProblem naming the key and skips the record, so one bad write never stops a cluster.
 */
import type { KeyValue } from "../store/store.js";

export const SCHEMA_VERSION = 1;

export interface NetworkRecord {
  schemaVersion: 1;
  name: string;
  /** Always "private": the overlay network is the cluster's private network. */
  type: "private";
  /** The /16, e.g. "172.30.0.0/16". */
  subnet: string;
  /** Each namespace (or joined group) on its own VNI; false puts every namespace on one. */
  isolateNs: boolean;
  /** Used for pods whose request names no network. */
  isDefault: boolean;
  /** Prefix length of the per-node address blocks carved from the subnet. */
  blockPrefix: number;
  networkGroup: string;
  createdAt: string;
}

/** "repair": rebuilt by `dctl network overlay check --repair` from a record that failed validation. */
export type NamespaceSource = "builtin" | "dctl" | "pod" | "kubernetes" | "repair";
export const NAMESPACE_SOURCES: readonly NamespaceSource[] = [
  "builtin",
  "dctl",
  "pod",
  "kubernetes",
  "repair",
];

export interface NamespaceRecord {
  schemaVersion: 1;
  network: string;
  name: string;
  /** The namespace's VNI under isolation; GLOBAL_VNI for a global namespace. */
  vni: number;
  /** Who made the namespace known; it stays while any source remains. */
  sources: NamespaceSource[];
  createdAt: string;
}

export interface EndpointRecord {
  schemaVersion: 1;
  network: string;
  namespace: string;
  pod: string;
  ip: string;
  /** Prefix length of the pod's address: the overlay subnet's. */
  prefixLength: number;
  gateway: string;
  mac: string;
  node: string;
  /** The block the address came from, e.g. "172.30.8.0/24". */
  block: string;
  tier: string;
  containerId: string;
  ifname: string;
  netns: string;
  createdAt: string;
}

export interface BlockRecord {
  schemaVersion: 1;
  network: string;
  cidr: string;
  node: string;
  claimedAt: string;
}

export interface AddressOwner {
  namespace: string;
  pod: string;
  containerId: string;
  ifname: string;
}

export interface AddressRecord {
  schemaVersion: 1;
  network: string;
  ip: string;
  block: string;
  node: string;
  owner: AddressOwner;
  allocatedAt: string;
}

export interface NodeRecord {
  schemaVersion: 1;
  name: string;
  /** The address peers send VXLAN to. */
  underlayIp: string;
  /** The node's management network, e.g. "10.0.0.0/24"; the overlay must not overlap it. */
  managementCidr?: string;
  /** The data-plane offloads the node's switch found and uses (reported, not configured). */
  offloads?: Offload[];
  /**
   * The bound of the switch's adaptive poll window, microseconds; 0 = its packet threads sleep as
   * soon as a batch is done (reported, not configured). A field of its own rather than an entry
   * of `offloads`, whose readers refuse names they do not know.
   */
  pollUs?: number;
  /**
   * Where the node's agent serves its operator API and metrics (`overlayd --metrics-listen`),
   * as IPV4:PORT; absent when it serves none. Optional, so readers that predate it ignore it.
   */
  apiAddress?: string;
  registeredAt: string;
}

export const OFFLOADS = ["tso", "uso", "udp-gso", "udp-gro", "multi-queue"] as const;
export type Offload = (typeof OFFLOADS)[number];

export interface DataNetworkRecord {
  schemaVersion: 1;
  name: string;
  cidr: string;
}

export interface RecordProblem {
  key: string;
  problem: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: RecordProblem };

/** Reads fields of one JSON object, remembering the first thing that is wrong with it. */
class Fields {
  problem: string | undefined;
  constructor(private readonly obj: Record<string, unknown>) {}

  private fail(field: string, expected: string): void {
    this.problem ??= `field "${field}" must be ${expected}`;
  }

  str(field: string, opts: { nonEmpty?: boolean } = { nonEmpty: true }): string {
    const v = this.obj[field];
    if (typeof v !== "string" || (opts.nonEmpty !== false && v === "")) {
      this.fail(field, opts.nonEmpty !== false ? "a non-empty string" : "a string");
      return "";
    }
    return v;
  }

  has(field: string): boolean {
    return this.obj[field] !== undefined;
  }

  optStr(field: string): string | undefined {
    const v = this.obj[field];
    if (v === undefined) return undefined;
    if (typeof v !== "string") this.fail(field, "a string when present");
    return typeof v === "string" ? v : undefined;
  }

  bool(field: string): boolean {
    const v = this.obj[field];
    if (typeof v !== "boolean") this.fail(field, "true or false");
    return v === true;
  }

  int(field: string, min: number, max: number): number {
    const v = this.obj[field];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(field, `an integer from ${min} to ${max}`);
      return min;
    }
    return v;
  }

  oneOf<T extends string>(field: string, allowed: readonly T[]): T {
    const v = this.obj[field];
    if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
      this.fail(field, `one of ${allowed.join(", ")}`);
      return allowed[0] as T;
    }
    return v as T;
  }

  listOf<T extends string>(field: string, allowed: readonly T[]): T[] {
    const v = this.obj[field];
    if (
      !Array.isArray(v) ||
      !v.every((x) => typeof x === "string" && (allowed as readonly string[]).includes(x))
    ) {
      this.fail(field, `a list of ${allowed.join(", ")}`);
      return [];
    }
    return v as T[];
  }

  object(field: string): Fields {
    const v = this.obj[field];
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      this.fail(field, "an object");
      return new Fields({});
    }
    const inner = new Fields(v as Record<string, unknown>);
    return inner;
  }

  adopt(inner: Fields, prefix: string): void {
    if (inner.problem !== undefined) this.problem ??= inner.problem.replace('field "', `field "${prefix}.`);
  }
}

function parseWith<T>(kv: Pick<KeyValue, "key" | "value">, build: (f: Fields) => T): Parsed<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(kv.value);
  } catch (e) {
    return { ok: false, problem: { key: kv.key, problem: `not JSON: ${(e as Error).message}` } };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, problem: { key: kv.key, problem: "not a JSON object" } };
  }
  const obj = raw as Record<string, unknown>;
  const version = obj.schemaVersion;
  if (version !== SCHEMA_VERSION) {
    const problem =
      typeof version === "number" && version > SCHEMA_VERSION
        ? `schemaVersion ${version} is newer than this program understands (${SCHEMA_VERSION})`
        : `schemaVersion must be ${SCHEMA_VERSION}, found ${JSON.stringify(version)}`;
    return { ok: false, problem: { key: kv.key, problem } };
  }
  const fields = new Fields(obj);
  const value = build(fields);
  if (fields.problem !== undefined) return { ok: false, problem: { key: kv.key, problem: fields.problem } };
  return { ok: true, value };
}

export function parseNetwork(kv: Pick<KeyValue, "key" | "value">): Parsed<NetworkRecord> {
  return parseWith(kv, (f) => ({
    schemaVersion: 1,
    name: f.str("name"),
    type: f.oneOf("type", ["private"] as const),
    subnet: f.str("subnet"),
    isolateNs: f.bool("isolateNs"),
    isDefault: f.bool("isDefault"),
    blockPrefix: f.int("blockPrefix", 1, 32),
    networkGroup: f.str("networkGroup", { nonEmpty: false }),
    createdAt: f.str("createdAt"),
  }));
}

export function parseNamespace(kv: Pick<KeyValue, "key" | "value">): Parsed<NamespaceRecord> {
  return parseWith(kv, (f) => ({
    schemaVersion: 1,
    network: f.str("network"),
    name: f.str("name"),
    vni: f.int("vni", 1, 0xffffff),
    sources: f.listOf("sources", NAMESPACE_SOURCES),
    createdAt: f.str("createdAt"),
  }));
}

export function parseEndpoint(kv: Pick<KeyValue, "key" | "value">): Parsed<EndpointRecord> {
  return parseWith(kv, (f) => ({
    schemaVersion: 1,
    network: f.str("network"),
    namespace: f.str("namespace"),
    pod: f.str("pod"),
    ip: f.str("ip"),
    prefixLength: f.int("prefixLength", 0, 32),
    gateway: f.str("gateway"),
    mac: f.str("mac"),
    node: f.str("node"),
    block: f.str("block"),
    tier: f.str("tier"),
    containerId: f.str("containerId"),
    ifname: f.str("ifname"),
    netns: f.str("netns", { nonEmpty: false }),
    createdAt: f.str("createdAt"),
  }));
}

export function parseBlock(kv: Pick<KeyValue, "key" | "value">): Parsed<BlockRecord> {
  return parseWith(kv, (f) => ({
    schemaVersion: 1,
    network: f.str("network"),
    cidr: f.str("cidr"),
    node: f.str("node"),
    claimedAt: f.str("claimedAt"),
  }));
}

export function parseAddress(kv: Pick<KeyValue, "key" | "value">): Parsed<AddressRecord> {
  return parseWith(kv, (f) => {
    const o = f.object("owner");
    const owner: AddressOwner = {
      namespace: o.str("namespace", { nonEmpty: false }),
      pod: o.str("pod", { nonEmpty: false }),
      containerId: o.str("containerId", { nonEmpty: false }),
      ifname: o.str("ifname", { nonEmpty: false }),
    };
    f.adopt(o, "owner");
    return {
      schemaVersion: 1,
      network: f.str("network"),
      ip: f.str("ip"),
      block: f.str("block"),
      node: f.str("node"),
      owner,
      allocatedAt: f.str("allocatedAt"),
    };
  });
}

export function parseNode(kv: Pick<KeyValue, "key" | "value">): Parsed<NodeRecord> {
  return parseWith(kv, (f) => {
    const rec: NodeRecord = {
      schemaVersion: 1,
      name: f.str("name"),
      underlayIp: f.str("underlayIp"),
      registeredAt: f.str("registeredAt"),
    };
    const mgmt = f.optStr("managementCidr");
    if (mgmt !== undefined) rec.managementCidr = mgmt;
    if (f.has("offloads")) rec.offloads = f.listOf("offloads", OFFLOADS);
    if (f.has("pollUs")) rec.pollUs = f.int("pollUs", 0, 1_000_000);
    const api = f.optStr("apiAddress");
    if (api !== undefined) rec.apiAddress = api;
    return rec;
  });
}

export function parseDataNetwork(kv: Pick<KeyValue, "key" | "value">): Parsed<DataNetworkRecord> {
  return parseWith(kv, (f) => ({ schemaVersion: 1, name: f.str("name"), cidr: f.str("cidr") }));
}

/** One parsed record and the stored key-value it came from (for its revisions). */
export interface Entry<T> {
  value: T;
  kv: KeyValue;
}

/** Records of a listing that parsed, the problems of those that did not. */
export interface Listing<T> {
  entries: Entry<T>[];
  problems: RecordProblem[];
  /** The store revision the listing reflects. */
  revision: number;
}

export function parseAll<T>(
  kvs: readonly KeyValue[],
  parse: (kv: KeyValue) => Parsed<T>,
  revision: number,
): Listing<T> {
  const entries: Entry<T>[] = [];
  const problems: RecordProblem[] = [];
  for (const kv of kvs) {
    const parsed = parse(kv);
    if (parsed.ok) entries.push({ value: parsed.value, kv });
    else problems.push(parsed.problem);
  }
  return { entries, problems, revision };
}

export function encode(record: object): string {
  return JSON.stringify(record);
}

export function now(): string {
  return new Date().toISOString();
}
