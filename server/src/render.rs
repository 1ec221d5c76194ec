//! TODO: render
