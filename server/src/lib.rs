//! distant-server library: request handlers (TODO)
