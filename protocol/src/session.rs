//! TODO(owner): session
