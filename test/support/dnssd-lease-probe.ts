// Run inside a test namespace (node dnssd-lease-probe.ts <server> <zone> <keyFile> [tamper]): sends one
// TSIG-signed DNS UPDATE carrying the update-lease option (RFC 9664), as a registration does, and prints
// what the server answered as JSON: its rcode, the TSIG error, whether its answer verifies over our MAC,
// and the lease it echoed (null: none). With "tamper", one bit of the lease is flipped after signing, so
// a server that checks the MAC over the OPT record must refuse it (BADSIG).
// The update only deletes a name nobody uses, so it changes nothing in the zone.

import { exchange, parseServer } from '../../src/peers/dns-client.ts';
import { rcodeName, rcodeOf } from '../../src/wire/dns-codec.ts';
import { encodeUpdate } from '../../src/wire/dns-update.ts';
import { encodeLeaseOpt, findUpdateLease, withOpt } from '../../src/wire/dns-update-lease.ts';
import { findTsig, signMessage, TSIG_ERRORS, verifyMessage } from '../../src/wire/tsig.ts';
import { readTsigKeyFile } from '../../src/wire/tsig-key-file.ts';

const [serverText, zone, keyFile, tamper] = process.argv.slice(2);
const server = parseServer(serverText ?? '');
if (!server || !zone || !keyFile) throw new Error('usage: dnssd-lease-probe.ts <server> <zone> <keyFile> [tamper]');
const key = readTsigKeyFile(keyFile);
const now = () => Math.floor(Date.now() / 1000);
const update = encodeUpdate(0x5eed, zone, [{ op: 'delete-rrset', name: `lease-probe.${zone}`, type: 'ANY' }]);
const opt = encodeLeaseOpt({ lease: 3600, keyLease: null });
const { message, mac } = signMessage(withOpt(update, opt), key, now());
// The lease's last byte sits right before the TSIG record.
if (tamper === 'tamper') message[update.length + opt.length - 1] ^= 1;
const answer = await exchange(server, message, { timeoutMs: 2000, tries: 2 });
const tsigError = findTsig(answer)?.error ?? 0;
const check = tsigError === 0 ? verifyMessage(answer, key, now(), mac) : { ok: false, why: 'error' };
process.stdout.write(
  `${JSON.stringify({
    rcode: rcodeName(rcodeOf(answer)),
    tsigError: tsigError ? (TSIG_ERRORS[tsigError] ?? String(tsigError)) : null,
    answerVerifies: check.ok,
    leaseEchoed: findUpdateLease(answer)?.lease ?? null,
    sentBytes: message.length,
  })}\n`,
);
