//! PLACEHOLDER: manager (written next).
