import type { ClientSessionOptions } from './clientSession.js';
import { type AgentRequestHandler, CATALOG_KINDS, type UpstreamEvent } from './upstream.js';

/** The listeners of one upstream, and the ClientSession hooks that feed them. */
export class UpstreamEvents {
  private readonly listeners = new Set<(event: UpstreamEvent) => void>();

  subscribe(listener: (event: UpstreamEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: UpstreamEvent): void {
    for (const l of this.listeners) l(event);
  }

  /** Announces that every list may have changed (the upstream came or went). */
  emitWholeCatalog(): void {
    for (const kind of CATALOG_KINDS) this.emit({ type: 'catalog', kind });
  }

  /**
   * The session callbacks every upstream wires the same way. `agentRequests` is read at the
   * time of each request, because the router sets it after the upstream was built.
   */
  sessionHooks(
    agentRequests: () => AgentRequestHandler | undefined,
  ): Pick<ClientSessionOptions, 'onCatalogChanged' | 'onLog' | 'onResourceUpdated' | 'onAgentRequest'> {
    return {
      onCatalogChanged: (kind) => this.emit({ type: 'catalog', kind }),
      onLog: (params) => this.emit({ type: 'log', params }),
      onResourceUpdated: (uri) => this.emit({ type: 'resource-updated', uri }),
      onAgentRequest: (request, signal) => {
        const handler = agentRequests();
        if (!handler) return Promise.reject(new Error('no agent is connected'));
        return handler(request, signal);
      },
    };
  }
}
