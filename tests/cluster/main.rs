//! The tests that need a real control plane: the operator as a process (and through Helm) against the shared
//! kube-apiserver, with real PostgreSQL and MariaDB where a test needs a database.

#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod argocd_lua;
mod crd_schema;
mod csms_documented;
mod csms_faults;
mod database;
mod day2;
mod events;
mod faults;
mod helm;
mod hostile;
mod leaks;
mod notifications;
mod operator;
mod plugin;
mod serve_rotation;
mod tenancy;
mod trust;
mod workload_identity;
