//! Who may be probed (`target_policy`): host-name globs checked before a
//! name is resolved, address ranges checked on every address a probe is
//! about to connect to — after resolution, on every redirect hop — so DNS
//! rebinding and redirects cannot get around them.
//!
//! A policy passes a target when no deny rule matches and, if it has allow
//! rules, one of them does. A [`TargetPolicy`] is the top-level policy and
//! the module's together: a target must pass both.
//!
//! A unix prober's target is a socket path: entries starting with `/` are
//! path globs, checked (case-sensitively) against it; host and address
//! rules say nothing about a path.
//!
//! The glob matcher is ours: the rule is one wildcard (`*`, any run of
//! characters, dots and slashes included), which the path-oriented glob
//! crates do not express (their `*` stops at a separator).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::address::{Cidr, unbracket};

/// One `allow` or `deny` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A CIDR, or a single address (`/32`, `/128`).
    Net(Cidr),
    /// A host-name glob, lowercased, without a trailing dot.
    Name(String),
    /// A unix socket path glob (an entry starting with `/`).
    Path(String),
}

impl Rule {
    /// Parse an entry: `10.0.0.0/8`, `::1`, `[::1]`, `*.example.com`,
    /// `/run/app/*.sock`.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty entry".into());
        }
        if text.starts_with('/') {
            return Ok(Rule::Path(text.to_string()));
        }
        if text.contains('/') || unbracket(text).parse::<IpAddr>().is_ok() {
            return Cidr::parse(text).map(Rule::Net);
        }
        let name = text.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*'));
        if !valid {
            return Err(format!(
                "{text:?} is neither a CIDR, an IP address nor a host-name glob"
            ));
        }
        Ok(Rule::Name(name))
    }

    fn matches_name(&self, name: Option<&str>) -> bool {
        match (self, name) {
            (Rule::Name(glob), Some(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                glob_match(glob.as_bytes(), name.as_bytes())
            }
            _ => false,
        }
    }

    fn matches_path(&self, path: &str) -> bool {
        matches!(self, Rule::Path(glob) if glob_match(glob.as_bytes(), path.as_bytes()))
    }

    fn matches_addr(&self, addr: Option<IpAddr>) -> bool {
        match (self, addr) {
            (Rule::Net(net), Some(ip)) => net.contains(ip),
            _ => false,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Net(net) => write!(f, "{net}"),
            Rule::Name(glob) | Rule::Path(glob) => f.write_str(glob),
        }
    }
}

/// `*` matches any run of characters (dots and slashes included); the
/// rest matches exactly (host names are lowercased by the caller).
fn glob_match(g: &[u8], n: &[u8]) -> bool {
    let (mut gi, mut ni) = (0, 0);
    // Where the last `*` was, and how much of the name it has taken.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ni));
            gi += 1;
        } else if gi < g.len() && g[gi] == n[ni] {
            gi += 1;
            ni += 1;
        } else if let Some((sg, sn)) = star {
            // Let the last `*` take one more character and retry.
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|b| *b == b'*')
}

/// One `target_policy` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow: Vec<Rule>,
    pub deny: Vec<Rule>,
    /// Where it comes from, for messages (`target_policy`,
    /// `modules.x.target_policy`, `the built-in policy`).
    pub origin: String,
}

impl Policy {
    /// The policy in force when the config has no top-level
    /// `target_policy`: link-local and cloud-metadata addresses are refused.
    pub fn builtin() -> Self {
        let net = |s: &str| Cidr::parse(s).map(Rule::Net);
        let deny = ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"]
            .iter()
            .filter_map(|s| net(s).ok())
            .collect();
        Policy {
            allow: Vec::new(),
            deny,
            origin: "the built-in target_policy".into(),
        }
    }

    /// The verdict with what is known so far (`addr` None: not resolved
    /// yet). Ok(None): cannot tell before the address is known.
    fn verdict(&self, name: Option<&str>, addr: Option<IpAddr>) -> Result<Option<()>, Refusal> {
        if let Some(rule) = self
            .deny
            .iter()
            .find(|r| r.matches_name(name) || r.matches_addr(addr))
        {
            return Err(Refusal::Denied {
                rule: rule.to_string(),
                origin: self.origin.clone(),
            });
        }
        if self.allow.is_empty()
            || self
                .allow
                .iter()
                .any(|r| r.matches_name(name) || r.matches_addr(addr))
        {
            return Ok(Some(()));
        }
        // An address rule may still admit the target once it is resolved.
        let pending = addr.is_none() && self.allow.iter().any(|r| matches!(r, Rule::Net(_)));
        if pending {
            return Ok(None);
        }
        Err(Refusal::NotAllowed {
            origin: self.origin.clone(),
        })
    }
}

impl Policy {
    /// A unix socket path: path rules decide; an allow list without one
    /// admits no path.
    fn path_verdict(&self, path: &str) -> Result<(), Refusal> {
        if let Some(rule) = self.deny.iter().find(|r| r.matches_path(path)) {
            return Err(Refusal::Denied {
                rule: rule.to_string(),
                origin: self.origin.clone(),
            });
        }
        if self.allow.is_empty() || self.allow.iter().any(|r| r.matches_path(path)) {
            return Ok(());
        }
        Err(Refusal::NotAllowed {
            origin: self.origin.clone(),
        })
    }
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Denied { rule: String, origin: String },
    NotAllowed { origin: String },
}

/// A target refused by the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target {target} is forbidden: {}", describe(.refusal))]
pub struct Forbidden {
    /// The host name, or `name (address)` once resolved.
    pub target: String,
    pub refusal: Refusal,
}

fn describe(r: &Refusal) -> String {
    match r {
        Refusal::Denied { rule, origin } => format!("{origin} denies {rule}"),
        Refusal::NotAllowed { origin } => format!("{origin} allows it nowhere"),
    }
}

/// The policies a probe must pass: the top level (or the built-in one) and
/// the module's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetPolicy {
    layers: Vec<Arc<Policy>>,
}

impl TargetPolicy {
    pub fn new(layers: Vec<Arc<Policy>>) -> Self {
        Self { layers }
    }

    /// No policy at all (`target_policy: {deny: []}` and none in the
    /// module).
    pub fn is_open(&self) -> bool {
        self.layers
            .iter()
            .all(|p| p.allow.is_empty() && p.deny.is_empty())
    }

    /// Before resolution: refuse a name a deny glob matches, or one that no
    /// allow rule can admit whatever it resolves to. An IP literal is
    /// checked as an address.
    pub fn check_name(&self, host: &str) -> Result<(), Forbidden> {
        let host = unbracket(host);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.check_address(host, ip);
        }
        for layer in &self.layers {
            layer
                .verdict(Some(host), None)
                .map_err(|refusal| Forbidden {
                    target: host.to_string(),
                    refusal,
                })?;
        }
        Ok(())
    }

    /// A unix socket path, before it is connected to.
    pub fn check_path(&self, path: &str) -> Result<(), Forbidden> {
        for layer in &self.layers {
            layer.path_verdict(path).map_err(|refusal| Forbidden {
                target: path.to_string(),
                refusal,
            })?;
        }
        Ok(())
    }

    /// After resolution, for the address about to be dialled: the whole
    /// rule set, with the name the address came from (an IP literal has
    /// none).
    pub fn check_address(&self, host: &str, addr: IpAddr) -> Result<(), Forbidden> {
        let host = unbracket(host);
        // An IPv4-mapped IPv6 address is the IPv4 address it maps.
        let addr = addr.to_canonical();
        let name = match host.parse::<IpAddr>() {
            Ok(_) => None,
            Err(_) => Some(host),
        };
        for layer in &self.layers {
            let verdict = layer
                .verdict(name, Some(addr))
                .map_err(|refusal| Forbidden {
                    target: match name {
                        Some(n) => format!("{n} ({addr})"),
                        None => addr.to_string(),
                    },
                    refusal,
                })?;
            debug_assert!(verdict.is_some(), "an address always decides");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_glob(glob: &str, name: &str) -> bool {
        Rule::Name(glob.to_string()).matches_name(Some(name))
    }

    #[test]
    fn path_rules_decide_for_socket_paths_only() {
        assert_eq!(
            Rule::parse("/run/app/*.sock"),
            Ok(Rule::Path("/run/app/*.sock".into()))
        );
        // An allow list of paths admits its paths and no host; an allow
        // list of hosts admits no path; a deny path leaves hosts alone.
        let p = policy(&["/run/app/*.sock"], &["/run/app/admin.sock"]);
        assert!(p.check_path("/run/app/web.sock").is_ok());
        assert!(p.check_path("/run/app/sub/dir.sock").is_ok());
        assert!(p.check_path("/run/app/admin.sock").is_err());
        assert!(p.check_path("/var/run/docker.sock").is_err());
        assert!(p.check_path("/RUN/app/web.sock").is_err(), "case-sensitive");
        assert!(p.check_name("example.com").is_err());
        let hosts = policy(&["*.example.com", "10.0.0.0/8"], &[]);
        assert!(hosts.check_path("/run/app/web.sock").is_err());
        let deny = policy(&[], &["/var/run/docker.sock"]);
        assert!(deny.check_path("/var/run/docker.sock").is_err());
        assert!(deny.check_path("/run/app/web.sock").is_ok());
        assert!(deny.check_name("example.com").is_ok());
        // The built-in policy (addresses only) leaves paths open.
        let builtin = TargetPolicy::new(vec![Arc::new(Policy::builtin())]);
        assert!(builtin.check_path("/run/app/web.sock").is_ok());
    }

    fn policy(allow: &[&str], deny: &[&str]) -> TargetPolicy {
        let rules = |list: &[&str]| list.iter().map(|s| Rule::parse(s).unwrap()).collect();
        TargetPolicy::new(vec![Arc::new(Policy {
            allow: rules(allow),
            deny: rules(deny),
            origin: "target_policy".into(),
        })])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn globs() {
        assert!(name_glob("*.example.com", "a.b.example.com"));
        assert!(name_glob("*.example.com", "WWW.Example.COM."));
        assert!(!name_glob("*.example.com", "example.com"));
        assert!(name_glob("*example.com", "example.com"));
        assert!(name_glob("*", "anything.at.all"));
        assert!(name_glob("api-*.internal", "api-7.internal"));
        assert!(!name_glob("api-*.internal", "api-7.internal.evil"));
        assert!(name_glob("a*b*c", "axxbyyc"));
        assert!(!name_glob("a*b*c", "axxbyy"));
        assert!(name_glob("localhost", "localhost."));
    }

    #[test]
    fn rules_parse() {
        assert!(matches!(Rule::parse("10.0.0.0/8"), Ok(Rule::Net(_))));
        assert!(matches!(Rule::parse("127.0.0.1"), Ok(Rule::Net(_))));
        assert!(matches!(Rule::parse("[::1]"), Ok(Rule::Net(_))));
        assert_eq!(
            Rule::parse("*.Example.com."),
            Ok(Rule::Name("*.example.com".into()))
        );
        assert!(Rule::parse("10.0.0.0/33").is_err());
        assert!(Rule::parse("10.0.0/8").is_err());
        assert!(Rule::parse("exa mple.com").is_err());
        assert!(Rule::parse("").is_err());
    }

    #[test]
    fn deny_wins_allow_restricts() {
        let p = policy(&[], &["169.254.0.0/16", "*.internal.example.com"]);
        assert!(p.check_name("api.internal.example.com").is_err());
        assert!(p.check_name("example.com").is_ok());
        assert!(p.check_address("metadata", ip("169.254.169.254")).is_err());
        assert!(p.check_address("x", ip("::ffff:169.254.169.254")).is_err());
        assert!(p.check_name("169.254.169.254").is_err());
        assert!(p.check_name("[::ffff:a9fe:a9fe]").is_err());
        assert!(p.check_address("x", ip("10.0.0.1")).is_ok());

        let p = policy(&["10.0.0.0/8", "*.corp"], &["10.9.0.0/16"]);
        // A name no glob admits may still resolve into an allowed range.
        assert!(p.check_name("db.example.com").is_ok());
        assert!(p.check_address("db.example.com", ip("10.1.2.3")).is_ok());
        assert!(
            p.check_address("db.example.com", ip("192.168.1.1"))
                .is_err()
        );
        assert!(p.check_address("db.corp", ip("192.168.1.1")).is_ok());
        assert!(p.check_address("db.corp", ip("10.9.1.1")).is_err());

        // Only globs allowed: a name outside them is refused before lookup.
        let p = policy(&["*.corp"], &[]);
        assert!(p.check_name("example.com").is_err());
        assert!(p.check_name("10.0.0.1").is_err());
        assert!(p.check_name("a.corp").is_ok());
    }

    #[test]
    fn every_layer_must_pass() {
        let top = Arc::new(Policy::builtin());
        let module = Arc::new(Policy {
            allow: vec![Rule::parse("127.0.0.0/8").unwrap()],
            deny: vec![],
            origin: "module".into(),
        });
        let p = TargetPolicy::new(vec![top, module]);
        assert!(p.check_address("localhost", ip("127.0.0.1")).is_ok());
        assert!(p.check_address("x", ip("10.0.0.1")).is_err());
        assert!(p.check_address("x", ip("169.254.1.1")).is_err());
        let e = p.check_address("x", ip("169.254.1.1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "target x (169.254.1.1) is forbidden: the built-in target_policy denies 169.254.0.0/16"
        );
    }

    #[test]
    fn builtin_denies_link_local_and_metadata() {
        let p = TargetPolicy::new(vec![Arc::new(Policy::builtin())]);
        for bad in [
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.0.1",
        ] {
            assert!(p.check_name(bad).is_err(), "{bad}");
        }
        for good in ["127.0.0.1", "::1", "10.0.0.1", "fd00:ec2::253"] {
            assert!(p.check_name(good).is_ok(), "{good}");
        }
        assert!(TargetPolicy::new(vec![Arc::new(Policy::default())]).is_open());
    }
}
