/** Reading overlay network records (kept apart so that the namespace policy can use it too). */
import type { Store } from "../store/store.js";
import { OverlayError, notFound } from "./errors.js";
import { NETWORKS, networkKey } from "./keys.js";
import { parseNetwork, type Entry, type Listing, type NetworkRecord } from "./records.js";
import { listParsed } from "./storeutil.js";

export async function listNetworks(store: Store): Promise<Listing<NetworkRecord>> {
  return listParsed(store, NETWORKS, parseNetwork);
}

export async function getNetwork(store: Store, name: string): Promise<Entry<NetworkRecord>> {
  const kv = await store.get(networkKey(name));
  if (kv === undefined) throw notFound(`overlay network ${name} not found`, { network: name });
  const parsed = parseNetwork(kv);
  if (!parsed.ok) {
    throw new OverlayError(
      "FAILED_PRECONDITION",
      `bad record ${parsed.problem.key}: ${parsed.problem.problem}`,
      {
        key: parsed.problem.key,
      },
    );
  }
  return { value: parsed.value, kv };
}
