//! TODO: docs
