/**
 * What the plugin prints: the ADD result, the VERSION answer and the error object, each in the
 * version the request speaks (CNI spec 1.1, "Result types").
 */
import { CURRENT_VERSION, isObject, SUPPORTED_VERSIONS, type CniVersion } from "./config.js";
import type { CniError } from "./errors.js";
import type { AttachmentResult } from "../agent/protocol.js";

export interface CniResult {
  cniVersion: CniVersion;
  interfaces: AttachmentResult["interfaces"];
  ips: { address: string; gateway: string; interface: number; version?: "4" | "6" }[];
  routes: AttachmentResult["routes"];
  dns: Record<string, unknown>;
}

export interface CniErrorOutput {
  cniVersion: CniVersion;
  code: number;
  msg: string;
  details?: string;
}

export interface VersionOutput {
  cniVersion: CniVersion;
  supportedVersions: CniVersion[];
}

export function formatResult(version: CniVersion, result: AttachmentResult): CniResult {
  // 0.x results name each address's family; 1.0 dropped the field.
  const legacy = version === "0.4.0";
  return {
    cniVersion: version,
    interfaces: result.interfaces,
    ips: result.ips.map((ip) =>
      legacy ? { ...ip, version: ip.address.includes(":") ? ("6" as const) : ("4" as const) } : { ...ip },
    ),
    routes: result.routes,
    dns: result.dns ?? {},
  };
}

export function formatError(version: CniVersion, err: CniError): CniErrorOutput {
  const out: CniErrorOutput = { cniVersion: version, code: err.code, msg: err.message };
  if (err.details !== undefined && err.details !== "") out.details = err.details;
  return out;
}

/**
 * The plugin's exit status for an error of CNI code `code`: the code itself where it fits (1 to
 * 255), else 1. The plugin binary applies the same rule to the errors it answers by itself.
 */
export function exitCodeFor(code: number): number {
  return Number.isInteger(code) && code >= 1 && code <= 255 ? code : 1;
}

export function versionInfo(): VersionOutput {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/**
 * CHECK: where the runtime's prevResult (what an earlier ADD printed, possibly amended by
 * chained plugins) disagrees with the attachment as it is now, what differs; undefined when it
 * agrees or says nothing about this interface. Only what this plugin set is compared: its
 * interface's MAC and its address with gateway.
 */
export function prevResultMismatch(prev: unknown, ifName: string, now: AttachmentResult): string | undefined {
  if (!isObject(prev)) return undefined;
  const mine = now.interfaces.find((i) => i.name === ifName) ?? now.interfaces[0];
  const nowIp = now.ips[0];
  if (mine === undefined || nowIp === undefined) return undefined;
  const interfaces = Array.isArray(prev.interfaces) ? prev.interfaces : [];
  const index = interfaces.findIndex(
    (i) => isObject(i) && i.name === mine.name && (i.sandbox === undefined || i.sandbox === mine.sandbox),
  );
  if (index < 0) return `prevResult has no interface ${mine.name}`;
  const iface = interfaces[index] as Record<string, unknown>;
  if (typeof iface.mac === "string" && iface.mac.toLowerCase() !== mine.mac.toLowerCase()) {
    return `interface ${mine.name} has MAC ${mine.mac}, prevResult says ${iface.mac}`;
  }
  const ips = (Array.isArray(prev.ips) ? prev.ips : []).filter(
    (ip): ip is Record<string, unknown> =>
      isObject(ip) && (ip.interface === undefined || ip.interface === index),
  );
  const same = ips.find((ip) => ip.address === nowIp.address);
  if (same === undefined) {
    const listed = ips.map((ip) => String(ip.address)).join(", ") || "none";
    return `interface ${mine.name} has address ${nowIp.address}, prevResult says ${listed}`;
  }
  if (typeof same.gateway === "string" && same.gateway !== nowIp.gateway) {
    return `address ${nowIp.address} has gateway ${nowIp.gateway}, prevResult says ${same.gateway}`;
  }
  return undefined;
}
