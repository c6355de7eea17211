import {
  type ConfigIssue,
  configFingerprint,
  loadMcpServersConfig,
  type UpstreamServerConfig,
} from '../config/mcpServers.js';
import type { Logger } from '../log.js';
import { Exposure } from './exposure.js';
import type { Router } from './router.js';
import { SupervisedUpstream, type SupervisorSettings } from './supervisedUpstream.js';

export interface ApplyResult {
  added: string[];
  removed: string[];
  restarted: string[];
  unchanged: string[];
  configErrors: ConfigIssue[];
}

interface Running {
  upstream: SupervisedUpstream;
  fingerprint: string;
}

/**
 * Keeps the running upstreams in step with `mcp-servers.json`: on start and on every reload it
 * starts new servers, stops removed ones and restarts only those whose entry changed. A change
 * of `expose` or `hide` alone restarts nothing: the router applies it at once.
 */
export class UpstreamManager {
  private readonly running = new Map<string, Running>();
  private disabledNames: string[] = [];
  private errors: ConfigIssue[] = [];
  private warnings: ConfigIssue[] = [];
  private reloading: Promise<ApplyResult> = Promise.resolve(emptyResult());

  constructor(
    private readonly configPath: string,
    private readonly router: Router,
    private readonly settings: SupervisorSettings,
    private readonly logger: Logger,
    /** Names the servers may not take (reserved words, paired slave hosts). */
    private readonly isNameTaken: (name: string) => string | undefined = () => undefined,
  ) {}

  /** Reads the file and applies it. Reloads run one at a time, in order. */
  reload(): Promise<ApplyResult> {
    this.reloading = this.reloading.then(
      () => this.applyFromFile(),
      () => this.applyFromFile(),
    );
    return this.reloading;
  }

  private async applyFromFile(): Promise<ApplyResult> {
    // A file that cannot be read or parsed at all keeps the servers that run now.
    const parsed = loadMcpServersConfig(this.configPath);
    return this.apply(parsed.servers, parsed.errors, parsed.warnings);
  }

  async apply(
    servers: UpstreamServerConfig[],
    errors: ConfigIssue[],
    warnings: ConfigIssue[],
  ): Promise<ApplyResult> {
    const result = emptyResult();
    const wanted = new Map<string, UpstreamServerConfig>();
    const allErrors = [...errors];
    this.disabledNames = [];
    for (const server of servers) {
      const taken = this.isNameTaken(server.name);
      if (taken) {
        allErrors.push({ server: server.name, path: `mcpServers.${server.name}`, message: taken });
        continue;
      }
      if (!server.enabled) {
        this.disabledNames.push(server.name);
        continue;
      }
      wanted.set(server.name, server);
    }
    for (const issue of allErrors) {
      this.logger.error({ path: issue.path }, `mcp-servers.json: ${issue.path}: ${issue.message}`);
    }
    for (const issue of warnings) this.logger.warn(`mcp-servers.json: ${issue.path}: ${issue.message}`);
    this.errors = allErrors;
    this.warnings = warnings;

    const stopping: Promise<void>[] = [];
    for (const [name, run] of this.running) {
      const next = wanted.get(name);
      if (next && configFingerprint(next) === run.fingerprint) {
        result.unchanged.push(name);
        wanted.delete(name);
        this.router.setExposure(name, Exposure.from(next));
        continue;
      }
      this.router.remove(name);
      this.running.delete(name);
      stopping.push(run.upstream.stop());
      if (next) result.restarted.push(name);
      else result.removed.push(name);
    }
    await Promise.all(stopping);
    for (const [name, config] of wanted) {
      const upstream = new SupervisedUpstream(config, this.settings, this.logger);
      this.running.set(name, { upstream, fingerprint: configFingerprint(config) });
      this.router.add(upstream, { timeoutMs: config.timeoutMs, exposure: Exposure.from(config) });
      upstream.start();
      if (!result.restarted.includes(name)) result.added.push(name);
    }
    result.configErrors = allErrors;
    if (result.added.length || result.removed.length || result.restarted.length) {
      this.logger.info(
        { added: result.added, removed: result.removed, restarted: result.restarted },
        'applied mcp-servers.json',
      );
    }
    return result;
  }

  disabled(): string[] {
    return [...this.disabledNames];
  }

  configErrors(): ConfigIssue[] {
    return [...this.errors];
  }

  configWarnings(): ConfigIssue[] {
    return [...this.warnings];
  }

  names(): string[] {
    return [...this.running.keys()];
  }

  async stopAll(): Promise<void> {
    const all = [...this.running.values()];
    this.running.clear();
    for (const run of all) this.router.remove(run.upstream.name);
    await Promise.all(all.map((r) => r.upstream.stop()));
  }
}

function emptyResult(): ApplyResult {
  return { added: [], removed: [], restarted: [], unchanged: [], configErrors: [] };
}
