//! `distant-bridge forward`: port forwards from the command line.
//!
//! - `forward SPEC` opens a tunnel (`tunnel/open`). Through the manager it is
//!   opened with `keep`, so it lives in the manager after the command exits
//!   (like the connection itself); with `--no-manager` the command stays in
//!   the foreground and forwards until Ctrl-C.
//! - `forward --list` prints the tunnels of the connection.
//! - `forward --close LOCAL_PORT` closes the tunnel listening on that port.
//!
//! SPEC is `PORT` (the same port on both sides), `LOCAL:REMOTE_PORT` or
//! `LOCAL:HOST:REMOTE_PORT` (HOST as the remote resolves it; an IPv6
//! address in brackets), like `ssh -L`.

use serde_json::{json, Value};

use super::{CliError, Options, Session, Via};

/// A parsed forward spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub local_port: u16,
    pub remote_host: Option<String>,
    pub remote_port: u16,
}

fn port(s: &str, what: &str, zero_ok: bool) -> Result<u16, CliError> {
    match s.parse::<u16>() {
        Ok(0) if !zero_ok => Err(CliError::new(format!(
            "forward: the {what} must be a port from 1 to 65535, not 0"
        ))),
        Ok(p) => Ok(p),
        Err(_) => Err(CliError::new(format!(
            "forward: {s:?} is not a port number ({what}); use PORT, LOCAL:REMOTE_PORT or LOCAL:HOST:REMOTE_PORT"
        ))),
    }
}

/// Parses `PORT`, `LOCAL:REMOTE_PORT` or `LOCAL:HOST:REMOTE_PORT`.
pub fn parse_spec(spec: &str) -> Result<Spec, CliError> {
    let Some((local, rest)) = spec.split_once(':') else {
        let p = port(spec, "port", false)?;
        return Ok(Spec {
            local_port: p,
            remote_host: None,
            remote_port: p,
        });
    };
    let local_port = port(local, "local port", true)?;
    let (host, remote) = match rest.rsplit_once(':') {
        Some((host, remote)) => (Some(host), remote),
        None => (None, rest),
    };
    let remote_port = port(remote, "remote port", false)?;
    let remote_host = match host {
        None => None,
        Some(h) => {
            let h = h
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(h);
            if h.is_empty() {
                return Err(CliError::new(
                    "forward: the host in LOCAL:HOST:REMOTE_PORT is empty",
                ));
            }
            Some(h.to_string())
        }
    };
    Ok(Spec {
        local_port,
        remote_host,
        remote_port,
    })
}

/// What `forward` was asked to do.
pub enum Action {
    Open(Spec),
    List,
    Close(u16),
}

/// Runs `forward`.
pub async fn run(options: &Options, action: Action) -> Result<(), CliError> {
    let mut session = Session::open(options).await?;
    let connection = session.connection(options.connection.as_deref()).await?;
    match action {
        Action::List => {
            let list = session
                .call("tunnels", json!({"connection": connection}))
                .await?;
            print!("{}", format_list(&list));
            Ok(())
        }
        Action::Close(local_port) => {
            let list = session
                .call("tunnels", json!({"connection": connection}))
                .await?;
            let tunnel = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t.get("localPort").and_then(Value::as_u64) == Some(local_port.into()))
                .and_then(|t| t.get("tunnel").and_then(Value::as_str))
                .ok_or_else(|| {
                    CliError::new(format!(
                        "forward: no forward listens on local port {local_port} on connection {connection} \
                         (`distant-bridge forward --list` shows them)"
                    ))
                })?
                .to_string();
            session
                .call(
                    "tunnel/close",
                    json!({"connection": connection, "tunnel": tunnel}),
                )
                .await?;
            println!("closed the forward on 127.0.0.1:{local_port}");
            Ok(())
        }
        Action::Open(spec) => {
            let in_process = matches!(session.via, Via::InProcess(_));
            let mut params = json!({
                "connection": connection,
                "remotePort": spec.remote_port,
                "localPort": spec.local_port,
                "keep": !in_process,
            });
            if let Some(h) = &spec.remote_host {
                params["remoteHost"] = h.clone().into();
            }
            let r = session.call("tunnel/open", params).await?;
            let local = r.get("localPort").and_then(Value::as_u64).unwrap_or(0);
            let tunnel = r.get("tunnel").and_then(Value::as_str).unwrap_or("?");
            let host = spec.remote_host.as_deref().unwrap_or("127.0.0.1");
            println!(
                "forwarding 127.0.0.1:{local} -> {host}:{} on the remote (tunnel {tunnel})",
                spec.remote_port
            );
            if !in_process {
                return Ok(());
            }
            // --no-manager: the tunnel lives in this process; serve until
            // interrupted or the tunnel closes.
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            eprintln!("distant-bridge: forwarding until Ctrl-C");
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    note = session.notes.recv() => match note {
                        Some(n) if n.method == "tunnel/state" => {
                            let p = n.params.unwrap_or(Value::Null);
                            if p.get("tunnel").and_then(Value::as_str) == Some(tunnel)
                                && p.get("state").and_then(Value::as_str) == Some("closed")
                            {
                                let why = p.get("reason").and_then(Value::as_str).unwrap_or("closed");
                                return Err(CliError::new(format!("forward: the tunnel closed: {why}")));
                            }
                        }
                        Some(_) => {}
                        None => return Err(CliError::new("forward: the bridge API went away")),
                    },
                }
            }
        }
    }
}

/// The `--list` table.
pub fn format_list(list: &Value) -> String {
    let tunnels = list.as_array().map(Vec::as_slice).unwrap_or_default();
    if tunnels.is_empty() {
        return "no forwards (open one with `distant-bridge forward PORT`)\n".to_string();
    }
    let mut out = format!(
        "{:<7} {:<22} {:<28} {:>5} {:>12} {:>12}\n",
        "TUNNEL", "LOCAL", "REMOTE", "CONNS", "IN", "OUT"
    );
    for t in tunnels {
        let get = |k: &str| t.get(k).cloned().unwrap_or(Value::Null);
        let s = |v: Value| match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        out.push_str(&format!(
            "{:<7} {:<22} {:<28} {:>5} {:>12} {:>12}\n",
            s(get("tunnel")),
            format!("127.0.0.1:{}", s(get("localPort"))),
            format!("{}:{}", s(get("remoteHost")), s(get("remotePort"))),
            s(get("connections")),
            s(get("bytesIn")),
            s(get("bytesOut")),
        ));
        if let Some(e) = t.get("lastError").and_then(Value::as_str) {
            out.push_str(&format!("        last error: {e}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s = |local, host: Option<&str>, remote| Spec {
            local_port: local,
            remote_host: host.map(str::to_string),
            remote_port: remote,
        };
        assert_eq!(parse_spec("8000").unwrap(), s(8000, None, 8000));
        assert_eq!(parse_spec("9000:8000").unwrap(), s(9000, None, 8000));
        assert_eq!(
            parse_spec("9000:localhost:8000").unwrap(),
            s(9000, Some("localhost"), 8000)
        );
        assert_eq!(parse_spec("0:[::1]:8000").unwrap(), s(0, Some("::1"), 8000));
        for bad in [
            "", "0", "x", "80:", ":80", "70000", "1:h:0", "1::80", "1:[]:80",
        ] {
            let e = parse_spec(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} parsed"));
            assert!(e.message.starts_with("forward:"), "{}", e.message);
        }
    }

    #[test]
    fn list_table() {
        assert!(format_list(&json!([])).contains("no forwards"));
        let t = format_list(
            &json!([{"tunnel": "3", "localPort": 9000, "remoteHost": "localhost",
            "remotePort": 8000, "connections": 2, "bytesIn": 10, "bytesOut": 5,
            "lastError": "cannot connect"}]),
        );
        assert!(t.contains("127.0.0.1:9000"), "{t}");
        assert!(t.contains("localhost:8000"), "{t}");
        assert!(t.contains("last error: cannot connect"), "{t}");
    }
}
