import type { Netns } from "./netns.js";

/**
 * One ICMP echo, from Perl with a raw socket: neither the host nor the guest
 * image ships `ping`, and both have perl-base. Exit 0 on a reply from the
 * target within 3 s, 1 otherwise. Runs as root (raw sockets).
 */
export const PING_PL = `
use Socket;
my $dst = inet_aton($ARGV[0]) or die "bad address\\n";
socket(my $s, PF_INET, SOCK_RAW, 1) or die "socket: $!\\n";
my $id = $$ & 0xffff;
sub cksum { my $d = shift; $d .= "\\0" if length($d) % 2; my $c = 0; $c += $_ for unpack("n*", $d); $c = ($c >> 16) + ($c & 0xffff); $c += $c >> 16; return ~$c & 0xffff }
my $body = pack("n n a*", $id, 1, "banger-ping");
my $pkt = pack("C C n", 8, 0, cksum(pack("C C n", 8, 0, 0) . $body)) . $body;
send($s, $pkt, 0, pack_sockaddr_in(0, $dst)) or die "send: $!\\n";
my $rin = ""; vec($rin, fileno($s), 1) = 1;
my $end = time + 3;
while ((my $left = $end - time) > 0) {
  my $n = select(my $rout = $rin, undef, undef, $left);
  last if $n <= 0;
  my $from = recv($s, my $buf, 1500, 0);
  my $ihl = (unpack("C", $buf) & 15) * 4;
  my ($type, $code, $sum, $rid) = unpack("C C n n", substr($buf, $ihl));
  my (undef, $addr) = unpack_sockaddr_in($from);
  if ($type == 0 && $rid == $id && $addr eq $dst) { print "reply\\n"; exit 0 }
}
print "no reply\\n";
exit 1;
`;

/** A shell command that pings `ip` once with the script above (for `vm ssh -- …`). */
export function pingCommand(ip: string): string {
  return `echo ${Buffer.from(PING_PL).toString("base64")} | base64 -d > /tmp/banger-ping.pl && perl /tmp/banger-ping.pl ${ip}`;
}

export async function pingFrom(ns: Netns, ip: string): Promise<boolean> {
  const r = await ns.exec("perl", ["-e", PING_PL, ip], { allowFailure: true, timeoutMs: 15_000 });
  return r.code === 0;
}
