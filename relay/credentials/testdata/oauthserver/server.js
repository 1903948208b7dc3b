// Starts oauth2-mock-server on 127.0.0.1 at a free port and prints
// "PORT <n>" once it listens. The Go test (relay/credentials) reads that
// line, runs the authorization-code flow with PKCE and a refresh against
// it, and ends this process by closing its standard input (or a signal).
import { randomUUID } from 'node:crypto';
import { OAuth2Server, Events } from 'oauth2-mock-server';

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
// A jti makes every token unique, even two issued in the same second.
server.service.on(Events.BeforeTokenSigning, (token) => {
  token.payload.jti = randomUUID();
});
await server.start(0, '127.0.0.1');
process.stdout.write(`PORT ${server.address().port}\n`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await server.stop();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
