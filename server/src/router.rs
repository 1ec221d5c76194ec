//! TODO: router
