export { hashRequestId, normalizePairingCode } from './codes.js';
export { PairingError, type PairingErrorCode } from './errors.js';
export type { PairingEvent, PairingEventType, PairingListener } from './events.js';
export { checkHostId, RESERVED_HOST_IDS } from './hostId.js';
export {
  isJoinTokenShaped,
  joinTokensEqual,
  loadOrCreateJoinToken,
  redactJoinToken,
  rotateJoinTokenFile,
} from './joinToken.js';
export {
  type ApproveResult,
  PairingService,
  type PairingServiceDeps,
  type PairingStatusView,
  type PendingRequestView,
  type SubmitInput,
  type SubmitResult,
} from './pairingService.js';
export { DEFAULT_PAIRING_SETTINGS, type PairingSettings } from './settings.js';
export { sourcePrefix } from './sourcePrefix.js';
