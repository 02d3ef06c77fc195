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

export function checkPodName(name: string): void {
  if (!isDnsSubdomain(name)) throw invalid(`invalid pod name "${name}": must be ${SUBDOMAIN_RULE}`, { name });
}

export function checkNodeName(name: string): void {
  if (!isDnsSubdomain(name))
    throw invalid(`invalid node name "${name}": must be ${SUBDOMAIN_RULE}`, { name });
}
