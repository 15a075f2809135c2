//! The client's address, and which peers are believed. Only peers in `--trusted-proxies` may
//! name the user (`--auth-header`) or the client (`X-Forwarded-For`). Each proxy appends the
//! address it got the request from, so the client is the rightmost hop that is not a trusted
//! proxy: every hop left of it was written by someone who is not trusted.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The `--trusted-proxies` networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// `10.0.0.0/8, 192.168.1.7, ::1`: networks, or single addresses.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = part
                .parse::<IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{part:?} is not an address or a network like 10.0.0.0/8"))?;
            nets.push(net);
        }
        Ok(Self(nets))
    }
}

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client behind `peer`: the peer itself, or, when the peer is a trusted proxy, the
/// rightmost `X-Forwarded-For` hop that is not one (the leftmost hop when all are).
pub fn client_addr<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    if !trusted.contains(peer) {
        return canonical(peer);
    }
    let hops: Vec<IpAddr> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    let mut client = canonical(peer);
    for hop in hops.into_iter().rev() {
        client = canonical(hop);
        if !trusted.contains(hop) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted: TrustedProxies = "127.0.0.1/32, 10.0.0.0/8".parse().unwrap();
        // A spoofed leftmost hop changes nothing.
        assert_eq!(
            client_addr(ip("127.0.0.1"), ["10.9.9.9, 203.0.113.7"], &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_addr(
                ip("127.0.0.1"),
                ["1.2.3.4, 203.0.113.7, 10.0.0.5"],
                &trusted
            ),
            ip("203.0.113.7")
        );
        // Several headers are one list.
        assert_eq!(
            client_addr(ip("127.0.0.1"), ["1.2.3.4", "203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            client_addr(ip("198.51.100.2"), ["203.0.113.7"], &trusted),
            ip("198.51.100.2")
        );
        // All hops trusted: the leftmost.
        assert_eq!(
            client_addr(ip("127.0.0.1"), ["10.1.1.1, 10.2.2.2"], &trusted),
            ip("10.1.1.1")
        );
        // No header: the peer.
        assert_eq!(
            client_addr(ip("127.0.0.1"), std::iter::empty(), &trusted),
            ip("127.0.0.1")
        );
        assert!(trusted.contains(ip("::ffff:10.3.4.5")));
    }

    #[test]
    fn networks_parse_and_mistakes_are_named() {
        let t: TrustedProxies = "::1, 192.168.1.7".parse().unwrap();
        assert!(t.contains(ip("::1")) && t.contains(ip("192.168.1.7")));
        assert!(!t.contains(ip("192.168.1.8")));
        let e = "10.0.0.0/33".parse::<TrustedProxies>().unwrap_err();
        assert!(e.contains("10.0.0.0/33"), "{e}");
    }
}
