//! secret-rotator: a Kubernetes operator that rotates secrets the way Huawei Cloud CSMS does and keeps
//! Kubernetes Secrets in sync.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod controller;
pub mod crdgen;
pub mod master_key_secret;
pub mod metrics;
pub mod note;
pub mod notify;
pub mod plugin;
pub mod reasons;
pub mod sanitize;
pub mod startup;
pub mod telemetry;
pub mod validation;
