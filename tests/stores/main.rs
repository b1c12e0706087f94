//! The stores, the CSMS API and the databases without a control plane: the conformance suite over every
//! store, corruption and property tests, `serve` over real HTTP, the official SDK, and database logins.

#[path = "../support/mod.rs"]
mod support;

mod api_http;
mod cli_store;
mod csms_iam;
mod database_auth;
mod readme_curl;
mod sdk_interop;
mod serve_limits;
mod store_conformance;
mod store_corruption;
mod store_properties;
