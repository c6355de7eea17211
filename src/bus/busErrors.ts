import type { BusErrorCode } from './busWire.js';

/** An error another master sent about a call (its words, mapped to local types by the caller). */
export class BusWireError extends Error {
  constructor(
    readonly code: BusErrorCode,
    message: string,
    readonly rpcCode?: number,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'BusWireError';
  }
}

/** A message on the bus that does not follow the wire contract: dropped, logged, never acted on. */
export class BusProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BusProtocolError';
  }
}
