//! runnel-broker (skeleton).
