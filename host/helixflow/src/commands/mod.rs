//! The client commands, one module per group: each holds its clap arguments or
//! subcommand enum and the handler that calls the node (paths from [`crate::routes`],
//! requests through [`crate::client::Client`]) and prints the result.

pub mod admin;
pub mod dev;
pub mod doctor;
pub mod events;
pub mod functions;
pub mod keys;
pub mod models;
pub mod openapi;
pub mod scaffold;
pub mod tenants;
pub mod usage;
