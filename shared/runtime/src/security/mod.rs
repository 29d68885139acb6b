//! Least privilege: the NATS rights each part of jetflow needs
//! ([`roles`]), written out for nats-server configs and `nsc` ([`render`]).

mod grants;
pub mod render;
pub mod roles;
