//! What the server says about itself and its machine.
//!
//! Owns the `Version` reply (software version, protocol version,
//! capabilities) and the `SystemInfo` reply (OS, architecture, working
//! directory, user and login shell).

use std::ffi::CStr;

use distant_protocol::msg::{SystemInfo, VersionInfo, CAPABILITIES};

/// Capabilities this build serves: everything the protocol defines.
pub fn capabilities() -> Vec<String> {
    CAPABILITIES.iter().map(|c| c.to_string()).collect()
}

/// `Version`.
pub fn version() -> VersionInfo {
    VersionInfo {
        server: format!("distant-server {}", env!("CARGO_PKG_VERSION")),
        protocol: distant_protocol::PROTOCOL_VERSION,
        capabilities: capabilities(),
    }
}

/// The passwd entry of the effective user: (name, shell).
fn passwd_entry() -> Option<(String, String)> {
    // SAFETY: getpwuid_r writes only into the buffers we pass, and `pwd`
    // is only read when it reports success with a non-null result.
    unsafe {
        let uid = libc::geteuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() {
            return None;
        }
        let name = if pwd.pw_name.is_null() {
            String::new()
        } else {
            CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned()
        };
        let shell = if pwd.pw_shell.is_null() {
            String::new()
        } else {
            CStr::from_ptr(pwd.pw_shell).to_string_lossy().into_owned()
        };
        Some((name, shell))
    }
}

/// `SystemInfo`.
pub fn system_info() -> SystemInfo {
    let (pw_name, pw_shell) = passwd_entry().unwrap_or_default();
    let username = if pw_name.is_empty() {
        std::env::var("USER").unwrap_or_default()
    } else {
        pw_name
    };
    let shell = std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| Some(pw_shell).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "/bin/sh".to_string());
    SystemInfo {
        os: std::env::consts::OS.to_string(),
        family: std::env::consts::FAMILY.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        current_dir: std::env::current_dir()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default(),
        separator: "/".to_string(),
        username,
        shell,
    }
}
