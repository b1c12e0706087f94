//! The CSMS REST protocol shared by the API server and the `csms` client: wire bodies and the AK/SK
//! request signature.

pub mod signer;
pub mod wire;
