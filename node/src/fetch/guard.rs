//! Address policy: which schemes, host names and IP addresses an input reference may reach.
//!
//! Only `http` and `https` are fetched. Every address that is not public unicast is refused:
//! loopback, private, shared (CGNAT), link-local (cloud metadata), unspecified, multicast,
//! broadcast, reserved, documentation and benchmarking ranges, and in IPv6 also unique local,
//! site-local and the forms that embed an IPv4 address (mapped, NAT64, 6to4), which are judged by
//! the address they embed. Host names of cloud metadata services are refused by name. The
//! allowlist (CIDRs, addresses or host names) admits destinations the policy would refuse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use url::{Host, Url};
use wpsmesh_proto::text;

/// Host names of cloud metadata services (and their subdomains), refused before any lookup.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Why a reference's destination is refused. Carried through reqwest's resolver and redirect
/// policy as an error source, then wrapped with the input id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("scheme {:?} is not allowed: only http and https references are fetched", text::shown(.0))]
    Scheme(String),
    #[error("the reference has no host")]
    NoHost,
    #[error("address {ip} is not allowed ({kind})")]
    Address { ip: IpAddr, kind: String },
    #[error(
        "host {} resolves only to addresses that are not allowed: {}",
        text::shown(host),
        list(.refused)
    )]
    Resolved {
        host: String,
        refused: Vec<(IpAddr, String)>,
    },
    #[error("host {} is not allowed (cloud metadata service)", text::shown(.0))]
    MetadataHost(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("redirect to {url} refused: {reason}")]
    Redirect { url: String, reason: Box<Refusal> },
}

impl Refusal {
    /// Every [`Refusal::kind`], for metrics that show each one from the start.
    pub const KINDS: [&'static str; 7] = [
        "scheme",
        "no_host",
        "address",
        "resolved",
        "metadata_host",
        "too_many_redirects",
        "redirect",
    ];

    /// The kind of refusal, a bounded label (the address or host stays out of it).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Scheme(_) => "scheme",
            Self::NoHost => "no_host",
            Self::Address { .. } => "address",
            Self::Resolved { .. } => "resolved",
            Self::MetadataHost(_) => "metadata_host",
            Self::TooManyRedirects(_) => "too_many_redirects",
            Self::Redirect { .. } => "redirect",
        }
    }
}

fn list(refused: &[(IpAddr, String)]) -> String {
    let items: Vec<String> = refused
        .iter()
        .map(|(ip, kind)| format!("{ip} ({kind})"))
        .collect();
    items.join(", ")
}

/// The address policy with its allowlist.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl Policy {
    /// Builds the policy from allowlist entries: CIDRs (`10.1.0.0/16`), single addresses
    /// (`127.0.0.1`, `::1`) or host names (`files.example.org`).
    pub fn new(allow: &[String]) -> Result<Self, String> {
        let mut policy = Self::default();
        for entry in allow {
            let entry = entry.trim();
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.nets.push(net.trunc());
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else {
                let host = normalize_host(entry);
                let valid = !host.is_empty()
                    && host.len() <= 253
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
                if !valid {
                    return Err(format!(
                        "allowlist entry {entry:?} is neither a cidr, an address nor a host name"
                    ));
                }
                policy.hosts.push(host);
            }
        }
        Ok(policy)
    }

    /// Whether the allowlist names this host.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.hosts.contains(&host)
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.nets
            .iter()
            .any(|n| n.contains(&ip) || mapped.is_some_and(|m| n.contains(&m)))
    }

    /// Checks one address: allowed when public or allowlisted.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        match forbidden_kind(ip) {
            Some(kind) if !self.ip_allowed(ip) => Err(Refusal::Address { ip, kind }),
            _ => Ok(()),
        }
    }

    /// Checks what can be checked of a URL without a lookup: the scheme, an IP-literal host
    /// (reqwest connects to those without asking the resolver) and metadata host names.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(Refusal::Scheme(other.to_owned())),
        }
        match url.host() {
            None => Err(Refusal::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => self.check_name(name),
        }
    }

    /// Refuses metadata host names unless the allowlist names them.
    pub fn check_name(&self, name: &str) -> Result<(), Refusal> {
        let host = normalize_host(name);
        let metadata = METADATA_HOSTS
            .iter()
            .any(|m| host == *m || host.strip_suffix(m).is_some_and(|p| p.ends_with('.')));
        if metadata && !self.host_allowed(&host) {
            return Err(Refusal::MetadataHost(host));
        }
        Ok(())
    }

    /// Keeps the resolved addresses of `host` that may be reached (all of them when the host
    /// is allowlisted by name); refuses when none is left.
    pub fn filter(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        self.check_name(host)?;
        let by_name = self.host_allowed(host);
        let mut kept = Vec::new();
        let mut refused = Vec::new();
        for addr in addrs {
            match self.check_ip(addr.ip()) {
                Err(Refusal::Address { ip, kind }) if !by_name => refused.push((ip, kind)),
                _ => kept.push(addr),
            }
        }
        if kept.is_empty() {
            return Err(Refusal::Resolved {
                host: normalize_host(host),
                refused,
            });
        }
        Ok(kept)
    }
}

fn normalize_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Why an address may not be reached without an allowlist entry; `None` for public unicast.
pub fn forbidden_kind(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4).map(str::to_owned),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

const V4_RANGES: &[(Ipv4Addr, u32, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "unspecified"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared address space"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 169, 254), 32, "cloud metadata"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "protocol assignments"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = ip.to_bits();
    V4_RANGES
        .iter()
        .find(|(net, prefix, _)| (bits ^ net.to_bits()).checked_shr(32 - prefix) == Some(0))
        .map(|(_, _, kind)| *kind)
}

/// How an IPv6 range is judged: refused outright, or by the IPv4 address embedded at a bit
/// offset (counted from the most significant bit).
enum V6Rule {
    Refused(&'static str),
    Embeds(&'static str, u32),
}

const fn v6(a: u16, b: u16, c: u16) -> Ipv6Addr {
    Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0)
}

const V6_RANGES: &[(Ipv6Addr, u32, V6Rule)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, V6Rule::Refused("unspecified")),
    (Ipv6Addr::LOCALHOST, 128, V6Rule::Refused("loopback")),
    (v6(0, 0, 0), 96, V6Rule::Refused("ipv4-compatible")),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        96,
        V6Rule::Embeds("ipv4-mapped", 96),
    ),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0),
        96,
        V6Rule::Refused("ipv4-translated"),
    ),
    (v6(0x64, 0xff9b, 0), 96, V6Rule::Embeds("nat64", 96)),
    (v6(0x64, 0xff9b, 1), 48, V6Rule::Refused("local-use nat64")),
    (v6(0x100, 0, 0), 64, V6Rule::Refused("discard-only")),
    (v6(0x2001, 0, 0), 32, V6Rule::Refused("teredo")),
    (v6(0x2001, 2, 0), 48, V6Rule::Refused("benchmarking")),
    (v6(0x2001, 0x10, 0), 28, V6Rule::Refused("orchid")),
    (v6(0x2001, 0x20, 0), 28, V6Rule::Refused("orchid")),
    (v6(0x2001, 0xdb8, 0), 32, V6Rule::Refused("documentation")),
    (v6(0x2002, 0, 0), 16, V6Rule::Embeds("6to4", 16)),
    (v6(0x3fff, 0, 0), 20, V6Rule::Refused("documentation")),
    (v6(0xfc00, 0, 0), 7, V6Rule::Refused("unique local")),
    (v6(0xfe80, 0, 0), 10, V6Rule::Refused("link-local")),
    (v6(0xfec0, 0, 0), 10, V6Rule::Refused("site-local")),
    (v6(0xff00, 0, 0), 8, V6Rule::Refused("multicast")),
];

fn v6_kind(ip: Ipv6Addr) -> Option<String> {
    let bits = ip.to_bits();
    let (_, _, rule) = V6_RANGES
        .iter()
        .find(|(net, prefix, _)| (bits ^ net.to_bits()).checked_shr(128 - prefix) == Some(0))?;
    match rule {
        V6Rule::Refused(kind) => Some((*kind).to_owned()),
        V6Rule::Embeds(form, offset) => {
            // The 32 bits after `offset` hold the IPv4 address; truncation is intended.
            let v4 = Ipv4Addr::from_bits((bits >> (96 - offset)) as u32);
            v4_kind(v4).map(|kind| format!("{form} {v4}: {kind}"))
        }
    }
}

/// A URL as shown in logs and errors: without user name and password, [`text::shown`].
pub fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    text::shown(url.as_str()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared address space"),
            ("100.100.100.200", "shared address space"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("192.0.0.192", "protocol assignments"),
            ("192.0.2.7", "documentation"),
            ("198.51.100.1", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::127.0.0.1", "ipv4-compatible"),
            ("::ffff:127.0.0.1", "ipv4-mapped 127.0.0.1: loopback"),
            (
                "::ffff:169.254.169.254",
                "ipv4-mapped 169.254.169.254: cloud metadata",
            ),
            ("::ffff:10.1.2.3", "ipv4-mapped 10.1.2.3: private"),
            ("64:ff9b::a00:1", "nat64 10.0.0.1: private"),
            ("2002:7f00:1::", "6to4 127.0.0.1: loopback"),
            ("2001:db8::1", "documentation"),
            ("2001::1", "teredo"),
            ("fc00::1", "unique local"),
            ("fd00:ec2::254", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("100::1", "discard-only"),
        ] {
            assert_eq!(forbidden_kind(ip(addr)).as_deref(), Some(kind), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.1.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert_eq!(forbidden_kind(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn allowlist_admits_nets_and_names() {
        let policy = Policy::new(&[
            "127.0.0.1/32".into(),
            "10.1.0.0/16".into(),
            "::1".into(),
            "Files.Internal.".into(),
        ])
        .expect("valid allowlist");
        assert!(policy.check_ip(ip("127.0.0.1")).is_ok());
        assert!(policy.check_ip(ip("::ffff:127.0.0.1")).is_ok());
        assert!(policy.check_ip(ip("::1")).is_ok());
        assert!(policy.check_ip(ip("10.1.200.3")).is_ok());
        let err = policy.check_ip(ip("127.0.0.2")).expect_err("not listed");
        assert_eq!(
            err.to_string(),
            "address 127.0.0.2 is not allowed (loopback)"
        );
        assert!(policy.check_ip(ip("10.2.0.1")).is_err());
        let addrs = [SocketAddr::from(([192, 168, 0, 4], 0))];
        assert_eq!(policy.filter("files.internal", addrs), Ok(addrs.to_vec()));
        assert!(Policy::new(&["not a host/!".into()]).is_err());
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let policy = Policy::default();
        let public = SocketAddr::from(([8, 8, 8, 8], 0));
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        assert_eq!(
            policy.filter("dns.example", [local, public]),
            Ok(vec![public])
        );
        let err = policy
            .filter("localhost", [local])
            .expect_err("loopback only");
        assert_eq!(
            err.to_string(),
            "host localhost resolves only to addresses that are not allowed: 127.0.0.1 (loopback)"
        );
    }

    #[test]
    fn urls_are_checked_by_scheme_literal_and_name() {
        let policy = Policy::default();
        let check = |s: &str| policy.check_url(&Url::parse(s).expect("url"));
        assert!(check("https://example.org/a.geojson").is_ok());
        assert_eq!(
            check("file:///etc/passwd"),
            Err(Refusal::Scheme("file".into()))
        );
        assert_eq!(check("ftp://x/"), Err(Refusal::Scheme("ftp".into())));
        assert_eq!(check("gopher://x/"), Err(Refusal::Scheme("gopher".into())));
        assert!(matches!(
            check("http://2130706433/"),
            Err(Refusal::Address { .. })
        ));
        assert!(matches!(
            check("http://0x7f.1/"),
            Err(Refusal::Address { .. })
        ));
        assert!(matches!(
            check("http://[::1]:80/"),
            Err(Refusal::Address { .. })
        ));
        assert_eq!(
            check("http://metadata.google.internal./computeMetadata/v1/"),
            Err(Refusal::MetadataHost("metadata.google.internal".into()))
        );
        assert!(matches!(
            check("http://x.metadata.goog/"),
            Err(Refusal::MetadataHost(_))
        ));
        assert!(check("http://notmetadata.goog/").is_ok());
    }

    #[test]
    fn shown_urls_hide_credentials() {
        let url = Url::parse("https://user:secret@example.org/x?y=1").expect("url");
        assert_eq!(shown(&url), "https://example.org/x?y=1");
    }
}
