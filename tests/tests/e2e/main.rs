//! End-to-end tests: real nats-server, real services, a mock agents API
//! over real HTTP. One module per behaviour.

mod auth;
mod backpressure;
mod bench_smoke;
mod breaker;
mod chaos;
mod cli;
mod dependencies;
mod deploy_files;
mod deploy_nats;
mod flow_control;
mod gc;
mod handlers;
mod job_source;
mod least_privilege;
mod live_config;
mod logs;
mod metrics;
mod nats_faults;
mod operations;
mod overlap;
mod pipeline;
mod poison;
mod polyglot;
mod priority;
mod processes;
mod rate_limits;
mod reductions;
mod rejection;
mod replay;
mod results;
mod stopping;
mod traces;
mod watch;
mod workers;
