//! Errors of loading a topology file.

use std::fmt;
use std::path::PathBuf;

/// One problem found by validation: where (`link[2].b`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The offending field, e.g. `link[2].b` or `link[0].a_to_b.loss`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The issues of an invalid topology, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issues(pub Vec<Issue>);

impl fmt::Display for Issues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// Why a topology could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("reading topology {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing topology: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid topology:\n{0}")]
    Invalid(Issues),
}

impl TopologyError {
    /// The validation issues, if this is a validation error.
    pub fn issues(&self) -> &[Issue] {
        match self {
            TopologyError::Invalid(i) => &i.0,
            _ => &[],
        }
    }
}
