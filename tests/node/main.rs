//! The tests on a real node: the operator's own image as a pod installed with Helm (kubelet, containerd).

#[path = "../support/mod.rs"]
mod support;

mod helm_node;
