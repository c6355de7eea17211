import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { DialPlan, pinnedLookup } from '../../src/cluster/dialPlan.js';
import { mastersToDial, parseMasterList, wsUrlOf } from '../../src/cluster/masterList.js';
import { type SlaveCredentials, SlaveCredentialsSchema } from '../../src/cluster/slaveCredentials.js';

const PEM = (label: string) => `-----BEGIN ${label}-----\nAAAA\n-----END ${label}-----\n`;
const legacy: SlaveCredentials = {
  host_id: 'ws1',
  master_url: 'https://main:8765',
  ws_url: 'wss://main:8765/slave/connect',
  client_cert: PEM('CERTIFICATE'),
  client_key: PEM('PRIVATE KEY'),
  ca_cert: PEM('CERTIFICATE'),
  issued_at: '2026-01-01T00:00:00.000Z',
  expires_at: '2026-02-01T00:00:00.000Z',
};

/** A fake resolver: fixed answers per name, and a record of what was asked. */
function fakeResolver(table: Record<string, LookupAddress[]>) {
  const asked: string[] = [];
  const resolve = async (host: string) => {
    asked.push(host);
    const answer = table[host];
    if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return answer;
  };
  return { asked, resolve };
}

async function take(plan: DialPlan, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = await plan.next();
    out.push(t.address ? `${t.wsUrl}@${t.address}` : t.wsUrl);
  }
  return out;
}

describe('master list', () => {
  it('parses repeated flags and comma lists into https origins, in order, without duplicates', () => {
    expect(
      parseMasterList(['https://m1:8765,https://m2:8765/', ' https://m1:8765 ', 'https://[::1]:9000']),
    ).toEqual(['https://m1:8765', 'https://m2:8765', 'https://[::1]:9000']);
    expect(() => parseMasterList(['http://m1:8765'])).toThrow(/https/);
    expect(() => parseMasterList(['not a url'])).toThrow(/invalid --master/);
    expect(wsUrlOf('https://m1:8765')).toBe('wss://m1:8765/slave/connect');
  });

  it('keeps old credentials working: one ws_url, dialed as paired', () => {
    expect(SlaveCredentialsSchema.parse(legacy).masters).toBeUndefined();
    expect(mastersToDial(legacy)).toEqual([{ master: 'https://main:8765', wsUrl: legacy.ws_url }]);
  });

  it('dials the recorded masters, or those given at start instead', () => {
    const creds = { ...legacy, masters: ['https://m1:8765', 'https://m2:8765'] };
    expect(mastersToDial(creds).map((m) => m.wsUrl)).toEqual([
      'wss://m1:8765/slave/connect',
      'wss://m2:8765/slave/connect',
    ]);
    expect(mastersToDial(creds, ['https://m3:9000'])).toEqual([
      { master: 'https://m3:9000', wsUrl: 'wss://m3:9000/slave/connect' },
    ]);
    expect(() => SlaveCredentialsSchema.parse({ ...legacy, masters: [] })).toThrow();
  });
});

describe('dial plan', () => {
  it('moves to the next master on every attempt and wraps around', async () => {
    const { resolve } = fakeResolver({});
    const plan = new DialPlan(
      mastersToDial(legacy, ['https://10.0.0.1:8765', 'https://10.0.0.2:8765', 'https://[fd00::3]:8765']),
      resolve,
    );
    expect(plan.masterCount).toBe(3);
    expect(await take(plan, 4)).toEqual([
      'wss://10.0.0.1:8765/slave/connect',
      'wss://10.0.0.2:8765/slave/connect',
      'wss://[fd00::3]:8765/slave/connect',
      'wss://10.0.0.1:8765/slave/connect',
    ]);
  });

  it('dials each address of a name in turn, then the next master, and resolves again each round', async () => {
    const { asked, resolve } = fakeResolver({
      masters: [
        { address: '10.0.0.1', family: 4 },
        { address: '10.0.0.2', family: 4 },
        { address: '10.0.0.1', family: 4 },
        { address: 'fd00::3', family: 6 },
      ],
      backup: [{ address: '10.1.0.1', family: 4 }],
    });
    const plan = new DialPlan(
      mastersToDial(legacy, ['https://masters:8765', 'https://backup:8765']),
      resolve,
    );
    expect(await take(plan, 5)).toEqual([
      'wss://masters:8765/slave/connect@10.0.0.1',
      'wss://masters:8765/slave/connect@10.0.0.2',
      'wss://masters:8765/slave/connect@fd00::3',
      'wss://backup:8765/slave/connect@10.1.0.1',
      'wss://masters:8765/slave/connect@10.0.0.1',
    ]);
    expect(asked).toEqual(['masters', 'backup', 'masters']);
  });

  it('dials a name that does not resolve as it is, so the dial reports the error', async () => {
    const { resolve } = fakeResolver({});
    const plan = new DialPlan(mastersToDial(legacy, ['https://gone:8765']), resolve);
    const target = await plan.next();
    expect(target).toEqual({ master: 'https://gone:8765', wsUrl: 'wss://gone:8765/slave/connect' });
    expect(pinnedLookup(target)).toBeUndefined();
  });

  it('pins the socket to the chosen address whichever way Node asks', () => {
    const lookup = pinnedLookup({
      master: 'https://m:1',
      wsUrl: 'wss://m:1/',
      address: 'fd00::3',
      family: 6,
    })!;
    const answers: unknown[] = [];
    lookup('m', {}, (err, address, family) => answers.push([err, address, family]));
    lookup('m', { all: true }, (err, address) => answers.push([err, address]));
    expect(answers).toEqual([
      [null, 'fd00::3', 6],
      [null, [{ address: 'fd00::3', family: 6 }]],
    ]);
  });
});
