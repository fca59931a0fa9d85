//! runnel-metadata (skeleton).
