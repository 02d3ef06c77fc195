/** Name rules for the objects of the control model, each with the message that explains it. */
import { invalid } from "./errors.js";

// Kubernetes' own shapes (DNS-1123): a label, and a subdomain of dot-separated labels ("a..b" is
// none). Names become parts of store keys, so nothing else may pass.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDnsLabel(name: string): boolean {
  return name.length <= 63 && DNS_LABEL.test(name);
}

export function isDnsSubdomain(name: string): boolean {
  return name.length <= 253 && DNS_SUBDOMAIN.test(name);
}

// A container's name as runtimes without Kubernetes allow it (podman, docker: a letter or digit,
// then letters, digits, '_', '.' and '-'), and a container ID (the CNI spec's shape): what such a
// runtime gives as the pod's name. No '/', so it stays one part of a store key.
const RUNTIME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function isRuntimeName(name: string): boolean {
  return name.length <= 253 && RUNTIME_NAME.test(name);
}

const LABEL_RULE =
  "1-63 characters of lowercase letters, digits and '-', starting and ending with a letter or digit";
const SUBDOMAIN_RULE =
  "1-253 characters of lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, with a letter or digit on each side of every '.'";

export function checkNetworkName(name: string): void {
  if (!isDnsLabel(name)) throw invalid(`invalid network name "${name}": must be ${LABEL_RULE}`, { name });
}

export function checkNamespaceName(name: string): void {
  if (!isDnsLabel(name)) throw invalid(`invalid namespace name "${name}": must be ${LABEL_RULE}`, { name });
}

const POD_RULE = `${SUBDOMAIN_RULE} (a Kubernetes pod), or 1-253 letters, digits, '_', '.' and '-' starting with a letter or digit (a container name or ID from a runtime without Kubernetes)`;

/** A Kubernetes pod's name, or what a runtime without Kubernetes names its container by. */
export function checkPodName(name: string): void {
  if (!isDnsSubdomain(name) && !isRuntimeName(name))
    throw invalid(`invalid pod name "${name}": must be ${POD_RULE}`, { name });
}

export function checkNodeName(name: string): void {
  if (!isDnsSubdomain(name))
    throw invalid(`invalid node name "${name}": must be ${SUBDOMAIN_RULE}`, { name });
}
