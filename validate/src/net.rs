//! IPv4 and IPv6 addresses and subnets; `HOST[:PORT]` as a client dials it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{invalid, Invalid, Problem};

/// An IPv4 subnet: its network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The network address, as a number.
    pub network: u32,
    /// The prefix length, 0 to 32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// The subnet of `prefix` bits that holds `addr`.
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Ipv4Net {
        let prefix = prefix.min(32);
        Ipv4Net { network: u32::from(addr) & mask(prefix), prefix }
    }

    /// The netmask, as a number.
    pub fn mask(self) -> u32 {
        mask(self.prefix)
    }

    /// Whether `ip` lies inside the subnet.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network
    }

    /// The broadcast address, as a number.
    pub fn broadcast(self) -> u32 {
        self.network | !self.mask()
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// An IPv4 address in dotted-quad form.
pub fn ipv4_address(s: &str) -> Result<Ipv4Addr, Invalid> {
    s.parse().map_err(|_| invalid(s, "IPv4 address", Problem::Other("write it like \"10.17.3.10\"".into())))
}

/// An IPv4 subnet in CIDR form, written with its network address (`10.17.3.0/24`, not
/// `10.17.3.5/24`: the host bits of a subnet are zero, and saying so catches a typo).
pub fn ipv4_subnet(s: &str) -> Result<Ipv4Net, Invalid> {
    const KIND: &str = "IPv4 subnet";
    let (addr, prefix) =
        s.split_once('/').ok_or_else(|| invalid(s, KIND, Problem::Other("write it like \"10.17.3.0/24\"".into())))?;
    let addr: Ipv4Addr =
        addr.parse().map_err(|_| invalid(s, KIND, Problem::Other(format!("{addr:?} is not an IPv4 address"))))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| invalid(s, KIND, Problem::Other("the prefix length must be 0 to 32".into())))?;
    let net = Ipv4Net::containing(addr, prefix);
    if net.network != u32::from(addr) {
        // The suggestion first: it is the fix, and it stays on the first line of a wrapped message.
        return Err(invalid(s, KIND, Problem::Other(format!("did you mean \"{net}\"? Its host bits must be zero"))));
    }
    Ok(net)
}

/// An IPv6 subnet: its network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Net {
    /// The network address, as a number.
    pub network: u128,
    /// The prefix length, 0 to 128.
    pub prefix: u8,
}

impl Ipv6Net {
    /// The subnet of `prefix` bits that holds `addr`.
    pub fn containing(addr: Ipv6Addr, prefix: u8) -> Ipv6Net {
        let prefix = prefix.min(128);
        Ipv6Net { network: u128::from(addr) & mask6(prefix), prefix }
    }

    /// Whether `ip` lies inside the subnet.
    pub fn contains(self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.prefix) == self.network
    }

    /// The address `n` places after the network address (`1`: the first host address).
    pub fn nth(self, n: u128) -> Ipv6Addr {
        Ipv6Addr::from(self.network.wrapping_add(n))
    }
}

impl std::fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.network), self.prefix)
    }
}

fn mask6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

/// An IPv6 address (`fd00:17:3::10`), without brackets or a zone, written in its canonical form
/// (RFC 5952: lower case, no leading zeros, the longest run of zeros as `::`): the form libvirt,
/// guests and Terraform's state show it in, so that a configuration never differs from what is
/// read back only by its spelling.
pub fn ipv6_address(s: &str) -> Result<Ipv6Addr, Invalid> {
    let ip: Ipv6Addr =
        s.parse().map_err(|_| invalid(s, "IPv6 address", Problem::Other("write it like \"fd00:17:3::10\"".into())))?;
    if ip.to_string() != s {
        return Err(invalid(s, "IPv6 address", Problem::Other(format!("write it as \"{ip}\", its canonical form"))));
    }
    Ok(ip)
}

/// An IPv6 subnet in CIDR form, written with its network address (`fd00:17:3::/64`), as
/// [`ipv4_subnet`] wants for IPv4, and in canonical form as [`ipv6_address`] wants.
pub fn ipv6_subnet(s: &str) -> Result<Ipv6Net, Invalid> {
    const KIND: &str = "IPv6 subnet";
    let (addr, prefix) =
        s.split_once('/').ok_or_else(|| invalid(s, KIND, Problem::Other("write it like \"fd00:17:3::/64\"".into())))?;
    let addr: Ipv6Addr =
        addr.parse().map_err(|_| invalid(s, KIND, Problem::Other(format!("{addr:?} is not an IPv6 address"))))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 128)
        .ok_or_else(|| invalid(s, KIND, Problem::Other("the prefix length must be 0 to 128".into())))?;
    let net = Ipv6Net::containing(addr, prefix);
    if net.network != u128::from(addr) {
        return Err(invalid(s, KIND, Problem::Other(format!("did you mean \"{net}\"? Its host bits must be zero"))));
    }
    if net.to_string() != s {
        return Err(invalid(s, KIND, Problem::Other(format!("write it as \"{net}\", its canonical form"))));
    }
    Ok(net)
}

/// `HOST` or `HOST:PORT` as a client dials it: the host a DNS name or an IP address, an IPv6
/// address in brackets (`[2001:db8::1]:9000`), the port 1 to 65535; no scheme, path, query, user
/// or spaces. Gives the host (without brackets) and the port, or why not, as a phrase for the
/// caller's message (k3s' S3 endpoint and its server URL both use this rule).
pub fn host_port(s: &str) -> Result<(&str, Option<u16>), &'static str> {
    if s.contains(['/', '?', '#', '@']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("expected only HOST[:PORT], without path, query, user or spaces");
    }
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed [ in an IPv6 host")?;
        if h.parse::<Ipv6Addr>().is_err() {
            return Err("the bracketed host is not an IPv6 address");
        }
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or("expected :PORT after ]")?)),
        }
    } else {
        if s.parse::<Ipv6Addr>().is_ok() {
            return Err("write an IPv6 address in brackets, e.g. [2001:db8::1]:9000");
        }
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    if !s.starts_with('[') && host.parse::<IpAddr>().is_err() && crate::dns_name(host).is_err() {
        return Err("the host is neither an IP address nor a DNS name");
    }
    let port = match port.map(str::parse::<u16>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(n),
        Some(_) => return Err("the port must be a number from 1 to 65535"),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let net = ipv4_subnet("10.17.3.0/24").unwrap();
        assert_eq!(net.to_string(), "10.17.3.0/24");
        assert!(net.contains(Ipv4Addr::new(10, 17, 3, 200)));
        assert!(!net.contains(Ipv4Addr::new(10, 17, 4, 1)));
        assert_eq!(Ipv4Addr::from(net.broadcast()), Ipv4Addr::new(10, 17, 3, 255));
        assert_eq!(ipv4_subnet("0.0.0.0/0").unwrap().mask(), 0);
        assert_eq!(ipv4_subnet("10.0.0.7/32").unwrap().broadcast(), u32::from(Ipv4Addr::new(10, 0, 0, 7)));
        for (bad, says) in [
            ("10.17.3.5/24", "did you mean \"10.17.3.0/24\""),
            ("10.17.3.0", "write it like"),
            ("300.1.1.0/24", "\"300.1.1.0\" is not an IPv4 address"),
            ("10.0.0.0/33", "0 to 32"),
            ("10.0.0.0/x", "0 to 32"),
        ] {
            let e = ipv4_subnet(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("IPv4 subnet"), "{bad}: {e}");
        }
    }

    #[test]
    fn ipv6_subnets_and_addresses() {
        let net = ipv6_subnet("fd00:17:3::/64").unwrap();
        assert_eq!(net.to_string(), "fd00:17:3::/64");
        assert_eq!(net.nth(1), "fd00:17:3::1".parse::<Ipv6Addr>().unwrap());
        assert!(net.contains("fd00:17:3::abcd".parse().unwrap()));
        assert!(!net.contains("fd00:17:4::1".parse().unwrap()));
        assert_eq!(ipv6_subnet("::/0").unwrap().network, 0);
        for (bad, says) in [
            ("fd00:17:3::5/64", "did you mean \"fd00:17:3::/64\""),
            ("fd00:17:3::", "write it like"),
            ("10.0.0.0/8", "\"10.0.0.0\" is not an IPv6 address"),
            ("fd00::/129", "0 to 128"),
            ("FD00:17:3::/64", "write it as \"fd00:17:3::/64\""),
            ("fd00:17:3:0::/64", "write it as \"fd00:17:3::/64\""),
        ] {
            let e = ipv6_subnet(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("IPv6 subnet"), "{bad}: {e}");
        }
        assert!(ipv6_address("fd00::1").is_ok());
        for bad in ["10.0.0.1", "[fd00::1]", "fd00::1%eth0", "", "FD00::1", "fd00:0::1", "fd00::0001"] {
            assert!(ipv6_address(bad).unwrap_err().to_string().contains("is not a valid IPv6 address"), "{bad}");
        }
        assert!(ipv6_address("fd00:0:0:1::1").is_ok(), "the longest run of zeros is the one compressed");
        assert!(ipv6_address("FD00::1").unwrap_err().to_string().contains("write it as \"fd00::1\""));
    }

    #[test]
    fn addresses() {
        assert_eq!(ipv4_address("10.17.3.10").unwrap(), Ipv4Addr::new(10, 17, 3, 10));
        for bad in ["10.17.3", "10.17.3.256", "::1", "", " 10.0.0.1"] {
            assert!(ipv4_address(bad).unwrap_err().to_string().contains("is not a valid IPv4 address"), "{bad}");
        }
    }

    #[test]
    fn host_port_table() {
        let ok: &[(&str, &str, Option<u16>)] = &[
            ("minio.example.com", "minio.example.com", None),
            ("minio.example.com:9000", "minio.example.com", Some(9000)),
            ("10.0.0.1:6443", "10.0.0.1", Some(6443)),
            ("[2001:db8::1]", "2001:db8::1", None),
            ("[2001:db8::1]:9000", "2001:db8::1", Some(9000)),
        ];
        for (s, host, port) in ok {
            assert_eq!(host_port(s), Ok((*host, *port)), "{s}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "host is empty"),
            (":9000", "host is empty"),
            ("host/path", "without path"),
            ("user@host", "without path, query, user"),
            ("a host", "spaces"),
            ("2001:db8::1", "in brackets"),
            ("[2001:db8::1", "unclosed ["),
            ("[10.0.0.1]:1", "not an IPv6 address"),
            ("[::1]9000", "expected :PORT"),
            ("bad_host", "neither an IP address nor a DNS name"),
            ("host:0", "1 to 65535"),
            ("host:65536", "1 to 65535"),
            ("host:http", "1 to 65535"),
        ];
        for (s, why) in bad {
            let e = host_port(s).expect_err(s);
            assert!(e.contains(why), "{s}: {e}");
        }
    }
}
