//! Which local `distant-server` to upload to an ssh remote.
//!
//! The remote says what it is (`uname -s`, `uname -m`); the bridge looks
//! for a server built for exactly that, in this order, the first usable one
//! winning (`<os>-<arch>` is e.g. `linux-x86_64`, `linux-aarch64`):
//!
//! 1. `options.serversDir/<os>-<arch>/distant-server` (a connect option);
//! 2. `$DISTANT_SERVERS_DIR/<os>-<arch>/distant-server`;
//! 3. `servers/<os>-<arch>/distant-server` in the bridge executable's
//!    directory, then in its parent (a VS Code extension's `bin/` and
//!    `servers/`; a workspace's `target/debug/` next to `target/servers/`,
//!    where `scripts/build-servers` puts them);
//! 4. `${XDG_DATA_HOME:-~/.local/share}/distant/servers/<os>-<arch>/distant-server`;
//! 5. the bridge's own `distant-server` (`--server-binary`, next to the
//!    bridge, `$PATH`).
//!
//! A candidate is used only if it is for that OS and architecture (read
//! from its ELF / Mach-O header), statically linked when it is an ELF (no
//! `PT_INTERP`: it must run whatever libc the remote has), and carries this
//! bridge's version mark (`DISTANT-SERVER-VERSION=<v>;`, which the server
//! embeds). Files that exist but fail a check are named in the error, and
//! the error says which file to put where and the command that builds it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::jsonrpc::{ErrorKind, RpcError};

/// This bridge's version.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Name of the server binary in every place.
const SERVER_NAME: &str = "distant-server";
/// The mark the server embeds (server/src/main.rs).
const MARK: &[u8] = b"DISTANT-SERVER-VERSION=";
/// Largest server we are willing to read (and upload).
const MAX_SIZE: u64 = 256 * 1024 * 1024;
/// Environment variable naming a directory of `<os>-<arch>/distant-server`.
pub const SERVERS_DIR_ENV: &str = "DISTANT_SERVERS_DIR";

/// An OS and architecture, normalised (`Linux`/`Darwin`/…, `x86_64`/
/// `aarch64`/…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl Platform {
    pub fn from_uname(os: &str, arch: &str) -> Self {
        let arch = match arch {
            "x86_64" | "amd64" => "x86_64",
            "aarch64" | "arm64" | "aarch64_be" => "aarch64",
            "i386" | "i486" | "i586" | "i686" | "x86" => "x86",
            a if a.starts_with("armv") || a == "arm" => "arm",
            a => a,
        };
        Self {
            os: os.to_owned(),
            arch: arch.to_owned(),
        }
    }

    /// Reads a binary's header (ELF or Mach-O); `None` if unrecognised.
    pub fn of_binary(header: &[u8]) -> Option<Self> {
        if header.len() >= 20 && header.starts_with(b"\x7fELF") {
            let le = header[5] == 1;
            let machine = if le {
                u16::from_le_bytes([header[18], header[19]])
            } else {
                u16::from_be_bytes([header[18], header[19]])
            };
            let arch = match machine {
                0x3e => "x86_64",
                0xb7 => "aarch64",
                0x03 => "x86",
                0x28 => "arm",
                0xf3 => "riscv64",
                0x15 => "ppc64",
                0x16 => "s390x",
                _ => return None,
            };
            let os = match header[7] {
                9 => "FreeBSD",
                12 => "OpenBSD",
                2 => "NetBSD",
                _ => "Linux",
            };
            return Some(Self::from_uname(os, arch));
        }
        if header.len() >= 8 && header[..4] == [0xcf, 0xfa, 0xed, 0xfe] {
            let cpu = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let arch = match cpu {
                0x0100_0007 => "x86_64",
                0x0100_000c => "aarch64",
                _ => return None,
            };
            return Some(Self::from_uname("Darwin", arch));
        }
        None
    }

    /// The Rust target that builds an uploadable server for this platform
    /// (static on Linux: musl).
    pub fn rust_target(&self) -> String {
        match (self.os.as_str(), self.arch.as_str()) {
            ("Linux", "arm") => "armv7-unknown-linux-musleabihf".into(),
            ("Linux", "x86") => "i686-unknown-linux-musl".into(),
            ("Linux", "riscv64") => "riscv64gc-unknown-linux-musl".into(),
            ("Linux", a) => format!("{a}-unknown-linux-musl"),
            ("Darwin", a) => format!("{a}-apple-darwin"),
            ("FreeBSD", a) => format!("{a}-unknown-freebsd"),
            (os, a) => format!("{a} {os}"),
        }
    }

    /// The directory name of this platform's server: `linux-x86_64`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.os.to_lowercase(), self.arch)
    }

    pub fn shown(&self) -> String {
        format!("{} {}", self.os, self.arch)
    }
}

/// A local binary read for upload.
pub struct Binary {
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub sha256: String,
    pub platform: Option<Platform>,
    /// `Some(false)` for an ELF with an interpreter (dynamically linked).
    pub is_static: Option<bool>,
    /// The embedded version mark, if any.
    pub version: Option<String>,
}

impl Binary {
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Reads and describes `path`.
pub fn inspect(path: &Path) -> std::io::Result<Binary> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut data = Vec::new();
    file.take(MAX_SIZE + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_SIZE {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_SIZE >> 20
        )));
    }
    let sha256 = hex::encode(Sha256::digest(&data));
    Ok(Binary {
        path: path.to_path_buf(),
        sha256,
        platform: Platform::of_binary(&data[..data.len().min(64)]),
        is_static: elf_is_static(&data),
        version: version_mark(&data),
        data,
    })
}

/// Whether an ELF has no `PT_INTERP` program header; `None` if not an ELF
/// (or its headers are cut short).
pub fn elf_is_static(data: &[u8]) -> Option<bool> {
    if data.len() < 52 || !data.starts_with(b"\x7fELF") {
        return None;
    }
    let is64 = data[4] == 2;
    let le = data[5] == 1;
    let u16_at = |o: usize| -> Option<u64> {
        let b = data.get(o..o + 2)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        } as u64)
    };
    let u32_at = |o: usize| -> Option<u64> {
        let b: [u8; 4] = data.get(o..o + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as u64)
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = data.get(o..o + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(32)?, u16_at(54)?, u16_at(56)?)
    } else {
        (u32_at(28)?, u16_at(42)?, u16_at(44)?)
    };
    const PT_INTERP: u64 = 3;
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).ok()?;
        if u32_at(at)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// The version in the binary's `DISTANT-SERVER-VERSION=<v>;` mark.
pub fn version_mark(data: &[u8]) -> Option<String> {
    let at = data.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let rest = &data[at..data.len().min(at + 64)];
    let end = rest.iter().position(|b| *b == b';')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Where a server for `platform` is looked for, in order (see the module
/// docs); the last entry is the bridge's own server, if there is one.
pub fn places(platform: &Platform, option_dir: Option<&Path>) -> Vec<PathBuf> {
    let sub = Path::new(&platform.dir_name()).join(SERVER_NAME);
    let mut out = Vec::new();
    if let Some(dir) = option_dir {
        out.push(dir.join(&sub));
    }
    if let Some(dir) = std::env::var_os(SERVERS_DIR_ENV).filter(|d| !d.is_empty()) {
        out.push(PathBuf::from(dir).join(&sub));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join("servers").join(&sub));
        if let Some(parent) = dir.parent() {
            out.push(parent.join("servers").join(&sub));
        }
    }
    out.push(data_dir().join("distant/servers").join(&sub));
    out
}

/// `$XDG_DATA_HOME`, else `~/.local/share`.
fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| Path::new(d).is_absolute()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".local/share")
}

/// Why `binary` cannot be uploaded to `platform`, if it cannot.
fn unusable(binary: &Binary, platform: &Platform) -> Option<String> {
    match &binary.platform {
        Some(p) if p != platform => return Some(format!("it is for {}", p.shown())),
        None => return Some("it is not an executable this bridge recognises".into()),
        Some(_) => {}
    }
    if binary.is_static == Some(false) {
        return Some("it is dynamically linked (it needs this machine's libc)".into());
    }
    match binary.version.as_deref() {
        Some(VERSION) => None,
        Some(v) => Some(format!("it is version {v}, not {VERSION}")),
        None => Some("it carries no distant-server version mark".into()),
    }
}

/// Finds and reads the server to upload to a `platform` remote (blocking:
/// reads and hashes files). `own` is the bridge's own server, if any.
pub fn find(
    platform: &Platform,
    option_dir: Option<&Path>,
    own: Option<PathBuf>,
) -> Result<Binary, RpcError> {
    let mut candidates = places(platform, option_dir);
    let preferred = candidates
        .iter()
        .find(|p| p.starts_with(data_dir()))
        .cloned()
        .unwrap_or_else(|| candidates[candidates.len() - 1].clone());
    candidates.extend(own);
    let mut rejected = Vec::new();
    for path in &candidates {
        if !path.is_file() {
            continue;
        }
        match inspect(path) {
            Ok(binary) => match unusable(&binary, platform) {
                None => return Ok(binary),
                Some(why) => rejected.push(format!("{} ({why})", path.display())),
            },
            Err(e) => rejected.push(format!("{} (cannot read it: {e})", path.display())),
        }
    }
    let target = platform.rust_target();
    let build = if platform.os == "Linux" {
        format!(
            "scripts/build-servers {target} in distant's source tree (or: rustup target add \
             {target} && cargo build -p distant-server --profile dist --target {target})"
        )
    } else {
        format!("cargo build -p distant-server --profile dist --target {target} on such a machine")
    };
    let mut message = format!(
        "no distant-server {VERSION} for {} to upload: put a static build at {} \
         (or in options.serversDir/{dir}/ or ${SERVERS_DIR_ENV}/{dir}/); build it with {build}",
        platform.shown(),
        preferred.display(),
        dir = platform.dir_name(),
    );
    if !rejected.is_empty() {
        message.push_str(&format!(". Not usable: {}", rejected.join("; ")));
    }
    Err(RpcError::new(ErrorKind::NotFound, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uname(flag: &str) -> String {
        let out = std::process::Command::new("uname")
            .arg(flag)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn platforms_from_uname_and_headers() {
        assert_eq!(
            Platform::from_uname("Linux", "amd64"),
            Platform::from_uname("Linux", "x86_64")
        );
        assert_eq!(Platform::from_uname("Darwin", "arm64").arch, "aarch64");
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[5] = 1;
        elf[18] = 0xb7;
        let p = Platform::of_binary(&elf).unwrap();
        assert_eq!(p, Platform::from_uname("Linux", "aarch64"));
        assert_eq!(p.rust_target(), "aarch64-unknown-linux-musl");
        assert_eq!(p.dir_name(), "linux-aarch64");
        let mut macho = vec![0xcf, 0xfa, 0xed, 0xfe];
        macho.extend_from_slice(&0x0100_000cu32.to_le_bytes());
        let p = Platform::of_binary(&macho).unwrap();
        assert_eq!(p.rust_target(), "aarch64-apple-darwin");
        assert_eq!(Platform::of_binary(b"#!/bin/sh\n"), None);
        // This very test binary is for the machine running it, and (a
        // glibc build) dynamically linked.
        let me = inspect(&std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            me.platform,
            Some(Platform::from_uname(&uname("-s"), &uname("-m")))
        );
        assert_eq!(me.sha256.len(), 64);
        if cfg!(target_env = "gnu") {
            assert_eq!(me.is_static, Some(false));
        }
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn the_version_mark_is_found_and_checked() {
        let mut data = b"junk DISTANT-SERVER-VERSION=".to_vec();
        data.extend_from_slice(VERSION.as_bytes());
        data.extend_from_slice(b"; more");
        assert_eq!(version_mark(&data).as_deref(), Some(VERSION));
        assert_eq!(version_mark(b"DISTANT-SERVER-VERSION=9.9.9"), None);
        assert_eq!(version_mark(b"nothing"), None);
    }

    #[test]
    fn a_missing_server_names_the_file_and_the_command() {
        let dir = std::env::temp_dir().join(format!("distant-servers-{}", std::process::id()));
        let platform = Platform::from_uname("Linux", "riscv64");
        // A file in the option's place that is no server of ours.
        let bad = dir.join("linux-riscv64/distant-server");
        std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
        std::fs::write(&bad, b"#!/bin/sh\necho hi\n").unwrap();
        let e = find(&platform, Some(&dir), None).err().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(
            e.message
                .contains("distant/servers/linux-riscv64/distant-server"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("riscv64gc-unknown-linux-musl"),
            "{}",
            e.message
        );
        assert!(e.message.contains("scripts/build-servers"), "{}", e.message);
        assert!(
            e.message.contains(&format!("{} (it is not", bad.display())),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_dynamic_server_of_our_platform_is_not_uploaded() {
        // This test binary: our platform, dynamically linked, no mark.
        let me = std::env::current_exe().unwrap();
        let platform = Platform::from_uname(&uname("-s"), &uname("-m"));
        match find(&platform, Some(Path::new("/nonexistent")), Some(me.clone())) {
            // A static build in one of the places (a developer's machine).
            Ok(found) => assert_ne!(found.path, me),
            Err(e) => {
                if cfg!(target_env = "gnu") {
                    assert!(e.message.contains("dynamically linked"), "{}", e.message);
                }
                assert!(
                    e.message.contains(&me.display().to_string()),
                    "{}",
                    e.message
                );
            }
        }
    }
}
