// The nix.conf lines that make a machine's Nix use its own Peernix and trust this host's key.

export function nixConfLines(substituterUrl: string, publicKey: string): string {
  return `extra-substituters = ${substituterUrl}\nextra-trusted-public-keys = ${publicKey}\n`;
}
