//! Least privilege: the NATS rights each part of jetflow needs
//! ([`roles`]), written out for nats-server configs and `nsc` ([`render`]).

pub mod render;
pub mod roles;
