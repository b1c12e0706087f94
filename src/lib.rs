//! secret-rotator: a Kubernetes operator that rotates secrets the way Huawei Cloud CSMS does and keeps
//! Kubernetes Secrets in sync.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod controller;
pub mod crdgen;
pub mod database;
pub mod files;
pub mod master_key_secret;
pub mod metrics;
pub mod notify;
pub mod password;
pub mod planner;
pub mod plugin;
pub mod protocol;
pub mod secret_value;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod tls;
pub mod validation;
