// Nix's own base-32 ("nix32"): a little-endian bit string read from the most significant 5-bit
// group down, over an alphabet without e, o, t, u. Not RFC 4648.

export const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

// charCode -> digit, -1 for characters outside the alphabet.
const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++) DIGIT[NIX32_ALPHABET.charCodeAt(i)] = i;

/** The value of one nix32 digit given its char code, or -1 when it is not one. */
export function nix32Digit(code: number): number {
  return code < 128 ? DIGIT[code] : -1;
}

export function nix32Length(byteLength: number): number {
  return Math.ceil((byteLength * 8) / 5);
}

export function encodeNix32(bytes: Uint8Array): string {
  const len = nix32Length(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const bit = n * 5;
    const i = bit >> 3;
    const shift = bit & 7;
    let v = bytes[i] >> shift;
    if (i + 1 < bytes.length) v |= bytes[i + 1] << (8 - shift);
    out += NIX32_ALPHABET[v & 31];
  }
  return out;
}

export function decodeNix32(text: string, byteLength: number): Buffer {
  if (!Number.isInteger(byteLength) || byteLength < 0) throw new Error(`nix32: invalid byte length ${byteLength}`);
  if (typeof text !== 'string' || text.length !== nix32Length(byteLength)) {
    throw new Error(`nix32: expected ${nix32Length(byteLength)} characters for ${byteLength} bytes`);
  }
  const out = Buffer.alloc(byteLength);
  const len = text.length;
  for (let p = 0; p < len; p++) {
    const code = text.charCodeAt(len - 1 - p);
    const digit = nix32Digit(code);
    if (digit < 0) throw new Error(`nix32: invalid character ${JSON.stringify(text[len - 1 - p])}`);
    const bit = p * 5;
    const i = bit >> 3;
    const shift = bit & 7;
    out[i] |= (digit << shift) & 0xff;
    const carry = digit >> (8 - shift);
    if (carry) {
      // Only the top group can spill past the end; a non-zero spill means the text encodes a
      // larger number than byteLength bytes can hold.
      if (i + 1 >= byteLength) throw new Error('nix32: value has bits beyond the byte length');
      out[i + 1] |= carry;
    }
  }
  return out;
}
