import { isIPv4, isIPv6 } from 'node:net';

/**
 * The network a pairing request comes from, for the caps: one machine rarely holds a single
 * address (DHCP, IPv6 privacy addresses), but it rarely holds more than a /24 of IPv4 or a /64
 * of IPv6 either. An IPv4 peer on a dual-stack socket (`::ffff:192.0.2.1`) counts as IPv4.
 * Anything unparseable is its own prefix.
 */
export function sourcePrefix(address: string): string {
  const bare = address.split('%')[0]!.toLowerCase();
  const v4 = bare.startsWith('::ffff:') && isIPv4(bare.slice(7)) ? bare.slice(7) : bare;
  if (isIPv4(v4)) return `${v4.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIPv6(bare)) return `${expandIPv6(bare).slice(0, 4).join(':')}::/64`;
  return address;
}

/** The eight groups of an IPv6 address, without leading zeros. */
function expandIPv6(address: string): string[] {
  let text = address;
  // A trailing dotted quad (::1.2.3.4 and the like) is two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -dotted[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...zeros, ...tailGroups].map((g) => Number.parseInt(g, 16).toString(16));
}
