//! The glob rules every walk and watch of the server shares (search
//! include/exclude, index exclude, watch exclude): globs relative to a root,
//! `*` not crossing `/`, a leading `/` ignored, and a glob without `/` also
//! matching a path's last component (like `.gitignore`). A bad glob is
//! `InvalidParams` naming it.

// Errors are the protocol's `Reply`, built once per request: boxing buys nothing.
#![allow(clippy::result_large_err)]

use distant_protocol::msg::{ErrorKind, Reply};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Compiles `patterns` (`what` names them in errors: "include", "exclude");
/// `None` when there are none.
pub(crate) fn glob_set(patterns: &[String], what: &str) -> Result<Option<GlobSet>, Reply> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p.trim_start_matches('/'))
            .literal_separator(true)
            .build()
            .map_err(|e| {
                Reply::error(
                    ErrorKind::InvalidParams,
                    format!("invalid {what} glob {p:?}: {e}"),
                )
            })?;
        set.add(glob);
    }
    set.build().map(Some).map_err(|e| {
        Reply::error(
            ErrorKind::InvalidParams,
            format!("invalid {what} globs: {e}"),
        )
    })
}

/// A glob matches a relative path when it matches the whole of it, or, for
/// a glob without '/', the last component (like .gitignore).
pub(crate) fn matches(set: &GlobSet, rel: &str) -> bool {
    if set.is_match(rel) {
        return true;
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name != rel && set.is_match(name)
}
