import net from 'node:net';
import { StartError } from '@blog/common/process';

function listenOnce(port: number, host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => resolve(server));
  });
}

function closeQuietly(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Binds like the services do: on `::` (every address, IPv4 too), or `0.0.0.0` where IPv6 is off. */
async function bindAny(port: number): Promise<net.Server> {
  try {
    return await listenOnce(port, '::');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL') return listenOnce(port, '0.0.0.0');
    throw err;
  }
}

/** Whether nothing listens on the port (on any address). */
export async function isPortFree(port: number): Promise<boolean> {
  try {
    await closeQuietly(await bindAny(port));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return false;
    throw err;
  }
}

/** `count` distinct ports that are free right now (children cannot be told "port 0", so we pick). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await bindAny(0));
    return servers.map((server) => (server.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map(closeQuietly));
  }
}

/** Throws a StartError naming every service whose port is taken. */
export async function assertPortsFree(ports: Partial<Record<string, number>>): Promise<void> {
  const busy: [string, number][] = [];
  for (const [name, port] of Object.entries(ports)) {
    if (port !== undefined && !(await isPortFree(port))) busy.push([name, port]);
  }
  const [first] = busy;
  if (!first) return;
  throw new StartError(
    `Port already in use: ${busy.map(([name, port]) => `${port} (${name})`).join(', ')}. Another ` +
      `\`npm start\`, \`docker compose up\` or a service started by hand may still be running: find it ` +
      `with \`ss -ltnp 'sport = :${first[1]}'\` (or \`lsof -i :${first[1]}\`), stop it, and try again.`,
  );
}
