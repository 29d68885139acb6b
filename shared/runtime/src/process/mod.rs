//! A service as a process: its flags, `main`, signals, logs and traces,
//! metrics, and the micro service that reports what it is doing.

pub mod activity;
pub mod config;
pub mod metrics;
pub mod micro;
pub mod probes;
pub mod service;
pub mod signals;
pub mod telemetry;
pub mod trace;
