import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { pairSlave, requestPairing, slavesOf, startSlave, waitForSlaveStatus } from '../helpers/cluster.js';
import { cleanupProcesses, startDaemon } from '../helpers/daemon.js';
import { echoServerEntry, makeHome, writeServersConfig } from '../helpers/home.js';
import { connectHttp, textOf } from '../helpers/mcpClient.js';

afterAll(() => cleanupProcesses());

/** A live link may never outlive the certificate it was opened with. */
describe('a live link ends with its certificate', () => {
  it("re-pairing the host closes the old machine's live link at once, and it exits as superseded", async () => {
    const masterHome = makeHome('lifetime-master');
    writeServersConfig(masterHome, { mcpServers: {} });
    const master = await startDaemon({ home: masterHome });
    const oldHome = makeHome('lifetime-old');
    writeServersConfig(oldHome, { mcpServers: { echo: echoServerEntry({ name: 'old-machine' }) } });
    await pairSlave(master, oldHome, 'workstation');
    const old = startSlave(oldHome);
    const linked = await waitForSlaveStatus(master, 'workstation', 'connected');
    const agent = await connectHttp(master.mcpUrl);
    await expect
      .poll(async () => (await agent.listTools()).tools.map((t) => t.name))
      .toContain('workstation_echo_pid');
    const oldSerial = (await slavesOf(master)).find((s) => s.host_id === 'workstation')!;
    expect((oldSerial as { link_cert_serial?: string }).link_cert_serial).toBe(oldSerial.cert_serial);

    // Another machine pairs as the same host; the admin approves the re-pair.
    const newHome = makeHome('lifetime-new');
    writeServersConfig(newHome, { mcpServers: { echo: echoServerEntry({ name: 'new-machine' }) } });
    const { pair, request } = await requestPairing(master, newHome, 'workstation');
    expect(request.re_pair).toBe(true);
    const approved = await runCli(masterHome, ['slave', 'approve', 'workstation', request.pairing_code]);
    expect(approved.code).toBe(0);
    expect((await pair.exited).code).toBe(0);

    // The old machine's link is cut by the approval itself, not by the new machine connecting.
    const oldExit = await old.exited;
    expect(oldExit.code).toBe(10);
    expect(old.stderr()).toMatch(/Credentials revoked/);
    expect(old.stderr()).toMatch(/superseded/);
    await waitForSlaveStatus(master, 'workstation', 'disconnected');
    const afterApprove = (await slavesOf(master)).find((s) => s.host_id === 'workstation')!;
    expect(afterApprove.cert_serial).not.toBe(linked.cert_serial);
    expect((afterApprove as { link_cert_serial?: string }).link_cert_serial).toBeUndefined();
    const call = await agent.callTool({ name: 'workstation_echo_echo', arguments: { text: 'hi' } });
    expect(call.isError).toBe(true);
    expect(textOf(call)).toBe('Host workstation is not available');

    // The new machine connects with its own certificate and serves its own tools.
    const fresh = startSlave(newHome);
    const now = await waitForSlaveStatus(master, 'workstation', 'connected');
    expect((now as { link_cert_serial?: string }).link_cert_serial).toBe(now.cert_serial);
    await expect
      .poll(async () =>
        textOf(await agent.callTool({ name: 'workstation_echo_echo', arguments: { text: 'new' } })),
      )
      .toBe('new');
    await agent.close();
    fresh.proc.kill('SIGTERM');
    await master.stop();
  });

  it('closes a link when its certificate expires while it is up (a slave that does not renew), and the slave exits as expired', async () => {
    const masterHome = makeHome('lifetime-expiry');
    writeServersConfig(masterHome, { mcpServers: {} });
    // Long enough for pairing and the first link on a loaded machine, short enough to wait out.
    const master = await startDaemon({ home: masterHome, args: ['--cert-validity', '20s'] });
    const slaveHome = makeHome('lifetime-expiring');
    writeServersConfig(slaveHome, { mcpServers: { echo: echoServerEntry() } });
    await pairSlave(master, slaveHome, 'shortlived');
    const slave = startSlave(slaveHome, ['--no-renewal']);
    await waitForSlaveStatus(master, 'shortlived', 'connected');
    const exit = await slave.exited;
    expect(exit.code).toBe(11);
    expect(slave.stderr()).toMatch(/Certificate expired/);
    await waitForSlaveStatus(master, 'shortlived', 'disconnected');
    await master.stop();
  }, 120_000);
});
