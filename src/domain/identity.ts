import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, parseSecretKey, type SecretKey } from '../nix/signing.ts';
import { isInstanceId } from '../wire/txt-record.ts';

// This host's lasting identity: the key that signs what it serves and the id peers know it by.
// Both are created once and reused, because peers' Nix trusts the key by value.

export interface Identity {
  key: SecretKey;
  keyFile: string;
  instanceId: string;
  hostName: string;
}

export function loadIdentity(stateDir: string, secretKeyFile?: string): Identity {
  const hostName = safeHostName();
  let keyFile = secretKeyFile;
  if (!keyFile) {
    keyFile = join(stateDir, 'secret-key');
    if (!existsSync(keyFile)) {
      const pair = generateKeyPair(`${hostName}-peernix-1`);
      // 'wx' so two processes starting at once can't overwrite each other's fresh key.
      try {
        writeFileSync(keyFile, pair.secretKeyText, { mode: 0o600, flag: 'wx' });
        writeFileSync(join(stateDir, 'public-key'), pair.publicKeyText, { mode: 0o644 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
  }
  let key: SecretKey;
  try {
    key = parseSecretKey(readFileSync(keyFile, 'utf8'));
  } catch (e) {
    throw new Error(`cannot use secret key file ${keyFile}: ${(e as Error).message}`);
  }
  return { key, keyFile, instanceId: loadInstanceId(stateDir), hostName };
}

function loadInstanceId(stateDir: string): string {
  const file = join(stateDir, 'instance-id');
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (isInstanceId(id)) return id;
  } catch {
    // first start: fall through and create one
  }
  const id = randomBytes(12).toString('hex');
  writeFileSync(file, id, { mode: 0o644 });
  return id;
}

function safeHostName(): string {
  const h = hostname().split('.')[0].replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40);
  return h || 'peernix';
}
