//! TODO(owner): msg
