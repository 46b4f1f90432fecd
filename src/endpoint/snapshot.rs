//! placeholder
/// Why a snapshot could not be restored.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Too short.
    #[error("snapshot truncated")]
    Truncated,
}
