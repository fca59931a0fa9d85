//! runnel-storage (skeleton).
