//! TODO(owner): auth
