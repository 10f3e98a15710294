//! Which extra ssh arguments (`connect`'s `options.ssh`) may run or load
//! something on this machine, and the refusal of those that were not
//! explicitly allowed.
//!
//! An editor passes `options.ssh` from its settings, and a setting can come
//! from a workspace — files an attacker may control. ssh options that run a
//! local command or load local code (`ProxyCommand`, `LocalCommand` with
//! `PermitLocalCommand`, `KnownHostsCommand`, `Match exec`, `ProxyUseFdpass`,
//! `PKCS11Provider`, `SecurityKeyProvider`, `Include`), another config
//! file (`-F`, which may hold any of them), a PKCS#11 library (`-I`) or a
//! log file written anywhere (`-E`) are therefore refused unless `connect`'s
//! `options.allowLocalCommands` is true: the CLI's own `--ssh-arg` (typed by
//! the user) and the VS Code setting `distant.allowSshCommands` (user
//! settings only) set it. The user's own `~/.ssh/config` is untouched and
//! applies as always.
//!
//! Arguments are read as ssh's `getopt` reads them: bundled flags (`-vF x`),
//! values attached or separate (`-oX=y`, `-o X=y`, `-o "X y"`), option names
//! case-insensitively.

/// ssh's flags that take a value (from OpenSSH's `getopt` string).
const WITH_VALUE: &[u8] = b"bcDeEFiIJlLmOoPpQRSwWB";

/// `-o` options that run or load something locally.
const LOCAL_EXEC_OPTIONS: &[&str] = &[
    "proxycommand",
    "localcommand",
    "permitlocalcommand",
    "knownhostscommand",
    "proxyusefdpass",
    "match",
    "include",
    "pkcs11provider",
    "securitykeyprovider",
];

/// The first argument that could run or load something locally, described
/// for an error message.
pub fn local_exec_arg(args: &[String]) -> Option<String> {
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        let Some(flags) = arg.strip_prefix('-') else {
            continue;
        };
        if flags.is_empty() || flags == "-" {
            continue;
        }
        let bytes = flags.as_bytes();
        for (j, &c) in bytes.iter().enumerate() {
            if !WITH_VALUE.contains(&c) {
                continue;
            }
            let attached = &flags[j + 1..];
            let value = if attached.is_empty() {
                let v = args.get(i).cloned().unwrap_or_default();
                i += 1;
                v
            } else {
                attached.to_owned()
            };
            match c {
                b'o' => {
                    let name = value
                        .trim_start()
                        .split(|ch: char| ch == '=' || ch.is_whitespace())
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    if LOCAL_EXEC_OPTIONS.contains(&name.as_str()) {
                        return Some(format!("-o {}", value.trim()));
                    }
                }
                b'F' => return Some("-F (another ssh config file)".to_owned()),
                b'I' => return Some("-I (a PKCS#11 library)".to_owned()),
                b'E' => return Some("-E (a log file)".to_owned()),
                _ => {}
            }
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_spelling_of_a_local_command_is_found() {
        for args in [
            &["-oProxyCommand=touch /tmp/x"][..],
            &["-o", "ProxyCommand=nc %h %p"],
            &["-o", "proxycommand nc %h %p"],
            &["-o", "  PROXYCOMMAND=x"],
            &["-vo", "LocalCommand=x"],
            &["-voPermitLocalCommand=yes"],
            &["-o", "KnownHostsCommand=/bin/x"],
            &["-o", "Match exec \"x\""],
            &["-o", "ProxyUseFdpass=yes"],
            &["-o", "PKCS11Provider=/tmp/lib.so"],
            &["-o", "SecurityKeyProvider /tmp/x.so"],
            &["-o", "Include /tmp/cfg"],
            &["-F", "/tmp/cfg"],
            &["-F/tmp/cfg"],
            &["-qF", "/tmp/cfg"],
            &["-I", "/tmp/lib.so"],
            &["-E", "/home/u/.bashrc"],
            &["-i", "key", "-p", "22", "-oProxyCommand=x"],
        ] {
            assert!(local_exec_arg(&v(args)).is_some(), "{args:?}");
        }
    }

    #[test]
    fn ordinary_options_pass() {
        for args in [
            &[][..],
            &["-i", "~/.ssh/work"],
            &["-J", "jump"],
            &["-o", "ServerAliveInterval=5"],
            &["-oStrictHostKeyChecking=no", "-v"],
            &["-p", "2222", "-l", "me"],
            // A value that merely names the option is not the option.
            &["-i", "-oProxyCommand=x"],
            &["-l", "-F"],
        ] {
            assert_eq!(local_exec_arg(&v(args)), None, "{args:?}");
        }
    }
}
