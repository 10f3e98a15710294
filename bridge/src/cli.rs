//! PLACEHOLDER: cli (written next).
