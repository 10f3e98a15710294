//! errors (in progress)
