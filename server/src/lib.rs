//! distant-server library: request handlers.
// placeholder: replaced by C1's version on merge

pub mod limits;
pub mod proc;
pub mod reply;
pub mod search;
pub mod watch;
