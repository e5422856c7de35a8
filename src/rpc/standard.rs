//! The standard gRPC services every escrowd server runs beside its own:
//! health checking (`grpc.health.v1.Health`, tonic-health) and server
//! reflection (`grpc.reflection.v1` and `v1alpha`, tonic-reflection) over
//! the descriptors of `proto/escrow/v1` ([`crate::proto::FILE_DESCRIPTOR_SET`]).
//! Both sit behind the same authorization layer as the rest (see
//! [`super::authz`] for who may call them).
//!
//! # Layout
//! - Service names: [`PEER_SERVICE`], [`ADMIN_SERVICE`], [`EVENT_SERVICE`],
//!   [`NOTARY_SERVICE`], [`HEALTH_SERVICE`]; [`GATEWAY_SERVICES`].
//! - [`health`], [`reflection_v1`], [`reflection_v1alpha`], [`ReflectionError`].

use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tonic_reflection::server::{v1, v1alpha};

/// `escrow.v1.PeerService`.
pub const PEER_SERVICE: &str = "escrow.v1.PeerService";
/// `escrow.v1.AdminService`.
pub const ADMIN_SERVICE: &str = "escrow.v1.AdminService";
/// `escrow.v1.EventService`.
pub const EVENT_SERVICE: &str = "escrow.v1.EventService";
/// `escrow.v1.NotaryService`.
pub const NOTARY_SERVICE: &str = "escrow.v1.NotaryService";
/// `grpc.health.v1.Health`.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// The services a gateway serves.
pub const GATEWAY_SERVICES: [&str; 3] = [PEER_SERVICE, ADMIN_SERVICE, EVENT_SERVICE];

/// Why a reflection service could not be built (the embedded descriptors
/// do not decode: a build fault).
#[derive(Debug, thiserror::Error)]
#[error("gRPC reflection: {0}")]
pub struct ReflectionError(String);

/// The health service, with the whole server (`""`) and each of `services`
/// SERVING; the reporter flips them (e.g. NOT_SERVING while shutting down).
pub async fn health(services: &[&str]) -> (HealthReporter, HealthServer<impl Health>) {
    let (reporter, server) = tonic_health::server::health_reporter();
    for s in services {
        reporter.set_service_status(s, ServingStatus::Serving).await;
    }
    (reporter, server)
}

fn builder<'b>(services: &[&str]) -> tonic_reflection::server::Builder<'b> {
    let mut b = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(HEALTH_SERVICE);
    for s in services {
        b = b.with_service_name(*s);
    }
    b
}

/// Reflection (v1) advertising `services`, health, and reflection itself.
///
/// # Errors
/// [`ReflectionError`].
pub fn reflection_v1(
    services: &[&str],
) -> Result<v1::ServerReflectionServer<impl v1::ServerReflection>, ReflectionError> {
    builder(services)
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()
        .map_err(|e| ReflectionError(e.to_string()))
}

/// Reflection (v1alpha, what older tools such as grpcurl ask first)
/// advertising `services`, health, and reflection itself.
///
/// # Errors
/// [`ReflectionError`].
pub fn reflection_v1alpha(
    services: &[&str],
) -> Result<v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>, ReflectionError> {
    builder(services)
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()
        .map_err(|e| ReflectionError(e.to_string()))
}
