//! Endpoint target: rebuilt on the simulator (in progress).

/// Placeholder while the simulator lands.
pub fn endpoint(_bytes: &[u8]) {}

pub(crate) fn describe(_bytes: &[u8]) -> std::string::String {
    std::string::String::new()
}
