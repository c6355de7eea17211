import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/files.js';
import { html } from './html.js';

/** The system's "open this in the default browser" command. */
export function systemOpener(platform: NodeJS.Platform = process.platform): string {
  return platform === 'darwin' ? 'open' : platform === 'win32' ? 'explorer' : 'xdg-open';
}

export interface LoginRedirect {
  /** The page to hand to the browser: it holds the login URL, the command line does not. */
  readonly path: string;
  remove(): void;
}

/**
 * A page (0600, in the home) that sends the browser on to the login URL. Handing the opener this
 * file instead of the URL keeps the one-time token off a command line, where `ps` shows it to
 * every local user until the browser has read it: Jupyter's way, for the same reason.
 */
export function writeLoginRedirect(dir: string, url: string): LoginRedirect {
  const path = join(dir, `console-login-${process.pid}.html`);
  const page = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="0;url=${url}"><title>Diane console</title></head>
<body><p><a href="${url}">Open the Diane console</a></p></body></html>
`;
  writeFileAtomic(path, page.text, 0o600);
  return { path, remove: () => rmSync(path, { force: true }) };
}

/** Starts `opener` on `target` and leaves it; `onFailure` hears when it cannot be run. */
export function openWith(opener: string, target: string, onFailure: (message: string) => void): void {
  const failed = () => onFailure(`could not run ${opener}; open the link yourself`);
  try {
    const child = spawn(opener, [target], { stdio: 'ignore', detached: true });
    child.on('error', failed);
    child.unref();
  } catch {
    failed();
  }
}
