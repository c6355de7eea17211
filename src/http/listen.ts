import type { AddressInfo, Server } from 'node:net';
import { DianeError, ExitCode } from '../errors.js';

/** Listens, turning the errors a person can fix (port taken, address not ours) into clear ones. */
export function listenOn(server: Server, host: string, port: number, flag: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
      if (err.code === 'EADDRINUSE') {
        reject(
          new DianeError(
            `cannot listen on ${where} (${flag}): the address is already in use`,
            ExitCode.config,
          ),
        );
      } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'EACCES') {
        reject(new DianeError(`cannot listen on ${where} (${flag}): ${err.message}`, ExitCode.config));
      } else reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}
