import { createInterface } from 'node:readline/promises';
import { Writable } from 'node:stream';
import { DianeError, ExitCode } from '../errors.js';

export function isInteractive(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY);
}

/** Asks a yes/no question on the terminal (stderr, so stdout stays clean); the default is no. */
export async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/**
 * Reads a secret on the terminal without echoing it: readline writes what is typed to a stream
 * that drops it, and the question goes to stderr.
 */
export async function askSecret(question: string): Promise<string> {
  process.stderr.write(question);
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
  const rl = createInterface({ input: process.stdin, output: silent, terminal: true });
  try {
    return await rl.question('');
  } catch {
    // Ctrl+C or Ctrl+D at the prompt: the person changed their mind.
    throw new DianeError('cancelled at the passphrase prompt; nothing was written', ExitCode.usage);
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}
