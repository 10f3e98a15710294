//! TODO(owner): driver
