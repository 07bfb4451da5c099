import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, parseSecretKey, type SecretKey } from '../nix/signing.ts';
import { isInstanceId } from '../wire/txt-record.ts';
import { createFileExclusive, readStateFile, writeStateFile } from '../base/state-file.ts';

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
  let text: string | null;
  if (keyFile) {
    // A path the user named (often a link into a secrets manager's directory) is followed.
    try {
      text = readFileSync(keyFile, 'utf8');
    } catch (e) {
      throw new Error(`cannot use secret key file ${keyFile}: ${(e as Error).message}`);
    }
  } else {
    keyFile = join(stateDir, 'secret-key');
    text = readStateFile(keyFile, { maxBytes: 4096 });
    if (text === null) {
      const pair = generateKeyPair(`${hostName}-peernix-1`);
      // Exclusive, so two processes starting at once can't overwrite each other's fresh key.
      if (createFileExclusive(keyFile, pair.secretKeyText, 0o600)) writeStateFile(join(stateDir, 'public-key'), pair.publicKeyText, 0o644);
      text = readStateFile(keyFile, { maxBytes: 4096 }) ?? '';
    }
  }
  let key: SecretKey;
  try {
    key = parseSecretKey(text);
  } catch (e) {
    // The parser quotes the key's name; the file's content stays out of every message.
    throw new Error(`cannot use secret key file ${keyFile}: ${(e as Error).message.replace(/"[^"]*"/g, '(name)')}`);
  }
  return { key, keyFile, instanceId: loadInstanceId(stateDir), hostName };
}

function loadInstanceId(stateDir: string): string {
  const file = join(stateDir, 'instance-id');
  const id = readStateFile(file, { maxBytes: 4096 })?.trim();
  if (id && isInstanceId(id)) return id;
  // First start (or a file that holds no id): make one.
  const fresh = randomBytes(12).toString('hex');
  writeStateFile(file, fresh, 0o644);
  return fresh;
}

function safeHostName(): string {
  const h = hostname()
    .split('.')[0]
    .replace(/[^A-Za-z0-9-]/g, '-')
    .slice(0, 40);
  return h || 'peernix';
}
