//! TODO(owner): crypto
