//! TODO: cache
