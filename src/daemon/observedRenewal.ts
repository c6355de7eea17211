import {
  RenewalRefusedError,
  type RenewalRequest,
  RenewalService,
  type RenewalServiceDeps,
} from '../cluster/renewal.js';
import type { RenewResult } from '../cluster/renewalWire.js';

export interface RenewalObserver {
  issued(hostId: string): void;
  /** `reason`: the refusal of the wire contract, or `error` when the master itself failed. */
  failed(hostId: string, reason: string): void;
}

/**
 * The master's renewal rules, unchanged, telling an observer (the metrics) how each renewal
 * ended. A subclass rather than a hook, so that the rules themselves stay as they are.
 */
export class ObservedRenewalService extends RenewalService {
  constructor(
    deps: RenewalServiceDeps,
    private readonly observer: RenewalObserver,
  ) {
    super(deps);
  }

  override async renew(request: RenewalRequest): Promise<RenewResult> {
    let result: RenewResult;
    try {
      result = await super.renew(request);
    } catch (err) {
      this.observer.failed(request.hostId, err instanceof RenewalRefusedError ? err.reason : 'error');
      throw err;
    }
    this.observer.issued(request.hostId);
    return result;
  }
}
