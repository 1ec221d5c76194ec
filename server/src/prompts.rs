//! TODO: prompts
