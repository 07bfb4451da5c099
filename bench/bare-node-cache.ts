// The least a Node HTTP server can do for a binary cache: every file of a flat-file cache held in
// memory, answered by URL, nothing checked. The benchmarks print it next to Peernix so that Node's
// own floor is visible beside nginx.
//
//   node bench/bare-node-cache.ts DIR PORT
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const [dir, port] = process.argv.slice(2);
const files = new Map<string, Buffer>();
for (const name of readdirSync(dir)) if (name.endsWith('.narinfo') || name === 'nix-cache-info') files.set(`/${name}`, readFileSync(`${dir}/${name}`));
const notFound = Buffer.from('not found\n');

createServer({ keepAliveTimeout: 30_000, noDelay: true }, (req, res) => {
  const body = files.get(req.url ?? '');
  res.writeHead(body ? 200 : 404, { 'Content-Length': String((body ?? notFound).length), 'Content-Type': 'text/plain' });
  res.end(body ?? notFound);
}).listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
