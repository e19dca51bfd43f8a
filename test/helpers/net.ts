import { createServer, type Socket } from 'node:net';

/** A loopback port free right now (the OS picks it; a small race with other binders remains). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('could not allocate a port');
  return addr.port;
}

/**
 * Splice two connections both ways, tracking them in `open` so a test can cut them; an
 * error on either side tears down both, as a real network failure would.
 */
export function splice(inbound: Socket, outbound: Socket, open: Set<Socket>): void {
  for (const s of [inbound, outbound]) {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {
      inbound.destroy();
      outbound.destroy();
    });
  }
  inbound.pipe(outbound).pipe(inbound);
}
