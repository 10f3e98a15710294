//! `distant-bridge` binary entry point. Subcommands (`stdio`, `lsp`,
//! `manager`, `connect`, …) are not wired up yet; for now this prints usage
//! and exits with status 2.

use std::process::ExitCode;

const USAGE: &str = "\
usage: distant-bridge <command> [options]

commands (not yet implemented in this build):
  stdio                     editor-facing JSON-RPC server on stdin/stdout
  lsp [OPTIONS] -- CMD...   proxy a remote language server, rewriting URIs
  manager                   connection-sharing daemon on a Unix socket
  connect DESTINATION       connect to a remote (distant://… or ssh://…)
";

fn main() -> ExitCode {
    eprint!("{USAGE}");
    ExitCode::from(2)
}
