// The least a Node proxy can do, as a process of its own so its CPU can be measured: http.get(...)
// piped into the response, no checks at all. Usage: node bench/bare-node-proxy.ts UPSTREAM PORT
import { Agent, createServer, get } from 'node:http';

const [upstream, port] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true });
const server = createServer((req, res) => {
  get(upstream + req.url, { agent }, (up) => {
    const headers: Record<string, string> = {};
    if (up.headers['content-length']) headers['content-length'] = up.headers['content-length'];
    res.writeHead(up.statusCode ?? 502, headers);
    up.pipe(res);
  }).on('error', () => res.destroy());
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
