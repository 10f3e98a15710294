//! Destinations an editor can `connect` to: `distant://[:KEY]@HOST:PORT`,
//! `local` and `ssh://[user@]host[:port]` (see [`super::ssh`]).
//!
//! The key never leaves this module in text form except towards the
//! handshake: [`Destination`]'s `Debug` and [`Destination::display`] redact
//! it, and parse errors never echo the input (it may hold the key).

use distant_protocol::auth::{KeyError, StaticKey};

use super::ssh::SshTarget;
use crate::jsonrpc::RpcError;

/// A parsed destination.
#[derive(Clone, PartialEq, Eq)]
pub enum Destination {
    /// A `distant-server` listening on TCP.
    Distant {
        host: String,
        port: u16,
        key: StaticKey,
    },
    /// Start a server on this machine on loopback.
    Local,
    /// The system's ssh to `distant-server proxy`; its options are part of
    /// the destination (another `-F` config is another destination).
    Ssh(SshTarget),
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl Destination {
    /// The destination as shown to people: the key is never included.
    pub fn display(&self) -> String {
        match self {
            Destination::Distant { host, port, .. } => format!("distant://{host}:{port}"),
            Destination::Local => "local".into(),
            Destination::Ssh(t) => t.display(),
        }
    }

    /// `host:port` to dial.
    pub fn address(&self) -> Option<String> {
        match self {
            Destination::Distant { host, port, .. } => Some(format!("{host}:{port}")),
            Destination::Local | Destination::Ssh(_) => None,
        }
    }

    /// Parses a destination; `key` is the optional separate `key` param.
    pub fn parse(destination: &str, key: Option<&str>) -> Result<Self, RpcError> {
        let destination = destination.trim();
        if destination == "local" {
            return Ok(Destination::Local);
        }
        if let Some(rest) = destination.strip_prefix("ssh://") {
            return Ok(Destination::Ssh(SshTarget::parse(rest)?));
        }
        let Some(rest) = destination.strip_prefix("distant://") else {
            return Err(RpcError::invalid_params(
                "parameter `destination` must be distant://[:KEY]@HOST:PORT, ssh://[USER@]HOST[:PORT] or local",
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let url_key = userinfo
            .map(|u| u.strip_prefix(':').unwrap_or(u))
            .filter(|k| !k.is_empty());
        let key_text = match (url_key, key.filter(|k| !k.trim().is_empty())) {
            (Some(a), Some(b)) if a.trim() != b.trim() => {
                return Err(RpcError::invalid_params(
                    "the key in `destination` and the `key` parameter differ; give only one",
                ))
            }
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) => {
                return Err(RpcError::invalid_params(
                    "a key is needed: put it in the destination (distant://:KEY@HOST:PORT) or in the `key` parameter",
                ))
            }
        };
        let key = StaticKey::from_hex(key_text).map_err(|e| {
            RpcError::invalid_params(match e {
                KeyError::Length(n) => {
                    format!("the key must be 64 hex digits, not {n} characters")
                }
                _ => "the key must be 64 hex digits".to_string(),
            })
        })?;
        let (host, port) = split_host_port(hostport).ok_or_else(|| {
            RpcError::invalid_params(
                "parameter `destination` must name a host and a port: distant://[:KEY]@HOST:PORT",
            )
        })?;
        Ok(Destination::Distant { host, port, key })
    }
}

fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        (format!("[{h}]"), p.strip_prefix(':')?)
    } else {
        let (h, p) = s.rsplit_once(':')?;
        (h.to_string(), p)
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn parses_and_redacts() {
        let d = Destination::parse(&format!("distant://:{KEY}@127.0.0.1:4000"), None).unwrap();
        assert_eq!(d.display(), "distant://127.0.0.1:4000");
        assert!(!format!("{d:?}").contains(KEY));
        assert_eq!(d.address().unwrap(), "127.0.0.1:4000");
        let d2 = Destination::parse("distant://127.0.0.1:4000", Some(KEY)).unwrap();
        assert_eq!(d, d2);
        let v6 = Destination::parse("distant://[::1]:5", Some(KEY)).unwrap();
        assert_eq!(v6.address().unwrap(), "[::1]:5");
        assert_eq!(
            Destination::parse("local", None).unwrap(),
            Destination::Local
        );
    }

    #[test]
    fn errors_never_echo_the_key() {
        for (dest, key) in [
            (format!("distant://:{KEY}@host"), None),
            (format!("distant://:{KEY}x@host:1"), None),
            ("distant://host:1".to_string(), None),
            (format!("distant://:{KEY}@host:1"), Some("ab")),
            (format!("distant:/{KEY}"), None),
        ] {
            let e = Destination::parse(&dest, key).unwrap_err();
            assert!(!e.message.contains(KEY), "{}", e.message);
            assert_eq!(e.kind, crate::jsonrpc::ErrorKind::InvalidParams);
        }
    }

    #[test]
    fn ssh_destinations() {
        let d = Destination::parse("ssh://me@example.org:2222", None).unwrap();
        let Destination::Ssh(t) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(t.user.as_deref(), Some("me"));
        assert_eq!(t.host, "example.org");
        assert_eq!(t.port, Some(2222));
        assert_eq!(d.display(), "ssh://me@example.org:2222");
        let d = Destination::parse("ssh://alias/", None).unwrap();
        assert_eq!(d.display(), "ssh://alias");
        let d = Destination::parse("ssh://[::1]:22", None).unwrap();
        let Destination::Ssh(t) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(t.host, "::1");
        assert_eq!(d.display(), "ssh://[::1]:22");
        for bad in [
            "ssh://",
            "ssh://-oProxyCommand=x",
            "ssh://-l@host",
            "ssh://host:0",
            "ssh://host:99999",
            "ssh://ho st",
            "ssh://host;rm",
            "ssh://[::1",
        ] {
            let e = Destination::parse(bad, None).unwrap_err();
            assert_eq!(e.kind, crate::jsonrpc::ErrorKind::InvalidParams, "{bad}");
        }
    }
}
