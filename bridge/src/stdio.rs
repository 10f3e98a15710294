//! PLACEHOLDER: stdio (written next).
