/** How the masters use the bus (`diane serve --bus`); one defaults object, below. */
export interface BusSettings {
  /** NATS server URLs (`--bus`, `DIANE_BUS`), e.g. `nats://127.0.0.1:4222`. */
  servers: string[];
  /** First token of every subject and the presence bucket's name: masters of one cluster share it. */
  prefix: string;
  /** A presence entry lives this long unless its holder renews it. */
  presenceTtlMs: number;
  /** How often a holder renews its presence entries (well under the TTL). */
  presenceHeartbeatMs: number;
  /**
   * How often a holder says a forwarded call is still running. Every master of a cluster must
   * use the same timing: the caller's `keepaliveTimeoutMs` counts on it.
   */
  keepaliveMs: number;
  /** A call whose holder said nothing for this long fails as `Host X is not available`. */
  keepaliveTimeoutMs: number;
  /** How long a catalogue fetch may take before it is tried again. */
  catalogTimeoutMs: number;
  /** Holder side: the longest a forwarded call may run here, whatever its caller asked. */
  maxCallMs: number;
  /** Pause between two attempts to reach NATS at start (afterwards the client reconnects by itself). */
  connectRetryMs: number;
  /**
   * How often the paired hosts are read from the store again, as agents are (AgentService): a
   * revocation whose link event was lost still cuts the holder's link and stops the other
   * masters routing the host within this time, whatever the presence bucket says.
   */
  storeRefreshMs: number;
}

export const DEFAULT_BUS_SETTINGS: Omit<BusSettings, 'servers'> = {
  prefix: 'diane',
  presenceTtlMs: 15_000,
  presenceHeartbeatMs: 5_000,
  keepaliveMs: 1_000,
  keepaliveTimeoutMs: 3_500,
  catalogTimeoutMs: 5_000,
  maxCallMs: 10 * 60_000,
  connectRetryMs: 2_000,
  storeRefreshMs: 5_000,
};
