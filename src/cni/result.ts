/**
 * What the plugin prints: the ADD result, the VERSION answer and the error object, each in the
 * version the request speaks (CNI spec 1.1, "Result types").
 */
import { CURRENT_VERSION, SUPPORTED_VERSIONS, type CniVersion } from "./config.js";
import type { CniError } from "./errors.js";
import type { AttachmentResult } from "./protocol.js";

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

export function versionInfo(): VersionOutput {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}
