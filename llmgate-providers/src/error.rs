//! The crate's error: why a provider could not be built. A leaf, so that the builder and the
//! adapters' constructors can both return it.

/// Why a provider could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The description cannot make a provider (a bad URL or header, a family without a default base URL).
    #[error("provider `{name}`: {reason}")]
    Invalid {
        /// The configured provider name.
        name: String,
        /// What is wrong, for the operator.
        reason: String,
    },
}
