//! runnel-protocol (skeleton).
