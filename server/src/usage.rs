//! TODO: usage
