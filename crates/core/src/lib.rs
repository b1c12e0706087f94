//! The pure core of secret-rotator: rotation decisions, password policies, templates, name rules and the
//! engine enums. Nothing here talks to Kubernetes, a database or the network, so the planner and the
//! rules it depends on are tested with plain unit tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounts;
pub mod engine;
pub mod files;
pub mod names;
pub mod password;
pub mod planner;
pub mod secret_value;
pub mod template;
