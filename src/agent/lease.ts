/**
 * The node's registration: its record under a lease that the agent renews at a third of its TTL.
 * A lease that lapsed (the store was away longer than the TTL) is replaced by a new registration.
 * On stop the lease is left to lapse rather than revoked, so a restart within its TTL is not seen
 * by peers as the node leaving.
 */
import type { Logger } from "pino";
import { registerLeasedNode, type RegisterNodeInput } from "../model/nodes.js";
import type { Lease, Store } from "../store/store.js";

export class NodeLease {
  private lease: Lease | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** When the registration was last written or renewed (ms since the epoch); undefined before. */
  renewedAt: number | undefined;

  constructor(
    private readonly store: Store,
    private readonly ttlSeconds: number,
    /** The record to register, read at each registration (offloads are known once the switch runs). */
    private readonly record: () => RegisterNodeInput,
    private readonly log: Logger,
  ) {}

  async register(): Promise<void> {
    this.lease = await registerLeasedNode(this.store, this.record(), this.ttlSeconds);
    this.renewedAt = Date.now();
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.keepAlive(), Math.max(1000, (this.ttlSeconds * 1000) / 3));
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async keepAlive(): Promise<void> {
    try {
      const alive = (await this.lease?.keepAlive()) ?? false;
      if (alive) this.renewedAt = Date.now();
      if (!alive && !this.stopped) {
        this.log.warn("node lease lapsed; registering again");
        await this.register();
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, "cannot renew node lease");
    }
  }
}
