//! PLACEHOLDER: demo (written next).
