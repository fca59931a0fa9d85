//! runnel-config (skeleton).
