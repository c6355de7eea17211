/**
 * True when `der` is one DER SEQUENCE whose length covers the buffer exactly. ASN.1 parsers stop
 * after the first value and ignore what follows; for input we are about to sign, trailing bytes
 * mean someone is trying something, so they are refused rather than dropped.
 */
export function isSingleDerSequence(der: Uint8Array): boolean {
  if (der.length < 2 || der[0] !== 0x30) return false;
  const first = der[1]!;
  if (first < 0x80) return 2 + first === der.length;
  const lengthBytes = first & 0x7f;
  if (lengthBytes === 0 || lengthBytes > 4 || der.length < 2 + lengthBytes) return false;
  let length = 0;
  for (let i = 0; i < lengthBytes; i++) length = length * 256 + der[2 + i]!;
  return 2 + lengthBytes + length === der.length;
}
