//! Keeping a namespace tidy: removing finished jobs, dead-lettering strays.

pub mod gc;
pub mod janitor;
